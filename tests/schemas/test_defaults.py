"""Defaults hash as protoc writes them, whatever text another toolchain used."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from google.protobuf import descriptor_pb2

from gristmill.errors import InvalidSchema
from gristmill.schemas.defaults import canonical_default
from gristmill.schemas.ids import schema_id_of
from gristmill.schemas.protofiles import compile_proto

if TYPE_CHECKING:
    from pathlib import Path

# every default kind, in the text a .proto file may use; protoc rewrites most of them
DEFAULTS_PROTO = r"""
syntax = "proto2";
package defaults.v1;
enum Level { LOW = 0; HIGH = 1; }
message Defaults {
  optional double d1 = 1 [default = -1.5e3];
  optional double d2 = 2 [default = 0.1];
  optional double d3 = 3 [default = 1e30];
  optional double d4 = 4 [default = inf];
  optional double d5 = 5 [default = -inf];
  optional double d6 = 6 [default = nan];
  optional double d7 = 7 [default = 123456789012345678];
  optional double d8 = 8 [default = 0.000001];
  optional double d9 = 9 [default = -0.0];
  optional float f1 = 10 [default = 0.1];
  optional float f2 = 11 [default = 1e-7];
  optional float f3 = 12 [default = 3.4028235e38];
  optional float f4 = 13 [default = 16777217];
  optional int32 i1 = 14 [default = 0x10];
  optional int32 i2 = 15 [default = -0];
  optional int64 i3 = 16 [default = 010];
  optional uint64 i4 = 17 [default = 18446744073709551615];
  optional sint32 i5 = 18 [default = -2147483648];
  optional bool b1 = 19 [default = true];
  optional bytes y1 = 20 [default = "\x01\xff\"a'\\\n"];
  optional string s1 = 21 [default = "\x01é\n"];
  optional Level e1 = 22 [default = HIGH];
}
"""


def _defaults_file(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    (tmp_path / "defaults.proto").write_text(DEFAULTS_PROTO)
    return compile_proto(tmp_path / "defaults.proto")


def _fields(
    file_set: descriptor_pb2.FileDescriptorSet,
) -> list[descriptor_pb2.FieldDescriptorProto]:
    (mine,) = [f for f in file_set.file if f.package == "defaults.v1"]
    return list(mine.message_type[0].field)


TYPE_NAMES = {
    getattr(descriptor_pb2.FieldDescriptorProto, f"TYPE_{name.upper()}"): name
    for name in ("double", "float", "int32", "int64", "uint64", "sint32", "bool", "bytes",
                 "string", "enum")
}  # fmt: skip


def test_protoc_s_text_is_already_canonical(tmp_path: Path) -> None:
    # ids computed from protoc descriptors before canonical defaults existed stay the same
    fields = _fields(_defaults_file(tmp_path))
    assert len(fields) == 22
    for field in fields:
        text = field.default_value
        assert canonical_default(TYPE_NAMES[field.type], text) == text, field.name


@pytest.mark.parametrize(
    ("type_name", "written", "canonical"),
    [
        ("double", "-1.5e3", "-1500"),
        ("double", "1E30", "1e+30"),
        ("double", "+.5", "0.5"),
        ("double", "Infinity", "inf"),
        ("double", "-INF", "-inf"),
        ("double", "NaN", "nan"),
        ("double", "0.30000000000000004", "0.30000000000000004"),
        ("float", "0.100000001", "0.1"),
        ("float", "1e39", "inf"),
        ("float", "16777217", "16777216"),
        ("int32", "0x10", "16"),
        ("int64", "-010", "-8"),
        ("uint32", "0", "0"),
        ("bytes", r"\x01\xff", r"\001\377"),
        ("bytes", r"\a\?\1", r"\007?\001"),
        ("bytes", "é", r"\303\251"),
        ("string", " spaced 1.0 ", " spaced 1.0 "),
        ("enum", "HIGH", "HIGH"),
    ],
)
def test_other_spellings_become_protoc_s(type_name: str, written: str, canonical: str) -> None:
    assert canonical_default(type_name, written) == canonical


@pytest.mark.parametrize(
    ("type_name", "written"),
    [
        ("double", "1_000"),
        ("double", "0x10"),
        ("float", ""),
        ("int32", "2147483648"),
        ("uint64", "-1"),
        ("int32", "1.0"),
        ("bool", "True"),
        ("bytes", "\\"),
        ("bytes", r"\q"),
    ],
)
def test_a_default_that_is_not_a_value_of_its_type_is_refused(type_name: str, written: str) -> None:
    with pytest.raises(InvalidSchema):
        canonical_default(type_name, written)


def test_two_spellings_of_one_default_get_one_id(tmp_path: Path) -> None:
    file_set = _defaults_file(tmp_path)
    before = schema_id_of(file_set, "defaults.v1.Defaults")
    respelled = descriptor_pb2.FileDescriptorSet()
    respelled.CopyFrom(file_set)
    (mine,) = [f for f in respelled.file if f.package == "defaults.v1"]
    spelled = {"d1": "-1.5E3", "f1": "0.100000001", "i1": "16", "y1": r"\x01\377\"a\'\\\n"}
    for field in mine.message_type[0].field:
        if field.name in spelled:
            field.default_value = spelled[field.name]
    assert schema_id_of(respelled, "defaults.v1.Defaults") == before
    # and a different value is a different schema
    mine.message_type[0].field[0].default_value = "-1500.5"
    assert schema_id_of(respelled, "defaults.v1.Defaults") != before
