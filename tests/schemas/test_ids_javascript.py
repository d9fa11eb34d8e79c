"""A second implementation of the id, in JavaScript from docs/wire-format.md, agrees."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from typing import TYPE_CHECKING

import pytest

from gristmill.schemas.defaults import canonical_default
from gristmill.schemas.descriptors import file_set_of
from gristmill.schemas.ids import schema_id_of
from gristmill.schemas.protofiles import compile_proto
from tests.schemas.people import PERSON, ROOT, person_schema

if TYPE_CHECKING:
    from pathlib import Path

    from google.protobuf import descriptor_pb2

NODE = shutil.which("node")
SCRIPT = ROOT / "tests" / "schemas" / "schema_id.mjs"

_ODD_PROTO = """
syntax = "proto2";
package odd.v1;
import "google/protobuf/struct.proto";
enum Level { LOW = -1; MID = 0; HIGH = 7; reserved 3 to 5, 9; reserved "OLD"; }
message Odd {
  required string id = 1 [default = "x\\ty \\"q\\""];
  optional int32 count = 2 [default = -3];
  repeated int64 samples = 3 [packed = true];
  optional Level level = 4 [default = HIGH];
  oneof pick { string a = 5; Odd child = 6; }
  map<int64, google.protobuf.Struct> extra = 7;
  optional group Legacy = 8 { optional bytes blob = 9; }
  reserved 10 to 12, 15, 13 to 14, 300 to max;
  reserved "gone", "also_gone";
  extensions 100 to 199;
}
"""


def _node_id(tmp_path: Path, file_set: descriptor_pb2.FileDescriptorSet, name: str) -> str:
    assert NODE is not None
    path = tmp_path / "set.pb"
    path.write_bytes(file_set.SerializeToString())
    done = subprocess.run(
        [NODE, str(SCRIPT), str(path), name], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize(
    ("proto", "message"),
    [
        ("person.proto", PERSON),
        ("person.proto", "example.people.TagList"),
        ("orders.proto", "example.orders.Order"),
        ("orders.proto", "example.orders.Receipt"),
    ],
)
def test_javascript_computes_the_same_id(tmp_path: Path, proto: str, message: str) -> None:
    file_set = compile_proto(ROOT / "schemas" / proto)
    assert _node_id(tmp_path, file_set, message) == schema_id_of(file_set, message)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_javascript_agrees_on_proto2_defaults_groups_enums_and_ranges(tmp_path: Path) -> None:
    (tmp_path / "odd.proto").write_text(_ODD_PROTO)
    file_set = compile_proto(tmp_path / "odd.proto")
    assert _node_id(tmp_path, file_set, "odd.v1.Odd") == schema_id_of(file_set, "odd.v1.Odd")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_javascript_agrees_on_the_builder_s_descriptors(tmp_path: Path) -> None:
    descriptor = person_schema(reverse=True).descriptor(PERSON)
    file_set = file_set_of(descriptor)
    assert _node_id(tmp_path, file_set, PERSON) == schema_id_of(descriptor)


def _random_defaults(count: int) -> list[tuple[str, str]]:
    """Default texts of every kind: random doubles and floats from random bits (every
    magnitude, subnormals included), their %.17g/%.9g/%.6g spellings, integers, bytes."""
    rng = random.Random(20261202)
    cases: list[tuple[str, str]] = []
    while len(cases) < count:
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        single = struct.unpack("<f", rng.getrandbits(32).to_bytes(4, "little"))[0]
        if math.isfinite(value):
            cases += [("double", repr(value)), ("double", f"{value:.17e}"), ("float", repr(value))]
        if math.isfinite(single):
            cases += [("float", f"{single:.9g}"), ("float", f"{single:.6g}")]
        cases += [("double", f"{rng.randint(-10**6, 10**6) / 8}"),  # ties at the last digit
                  ("float", f"{rng.randint(1, 10**7)}5e-1")]  # fmt: skip
        integer = rng.randint(-(2**63), 2**63 - 1)
        cases += [("int64", str(integer)), ("int64", f"{'-' if integer < 0 else ''}{abs(integer):#x}"),
                  ("sint32", f"-0{rng.randint(0, 2**31):o}")]  # fmt: skip
        blob = rng.randbytes(rng.randint(0, 12))
        cases.append(("bytes", "".join(f"\\x{b:02x}" if b > 0x7E or b < 0x20 else chr(b)
                                       for b in blob if b != 0x5C)))  # fmt: skip
    return cases + [("double", text) for text in ("-0", "1e308", "4.9e-324", "2.5", "1234565")]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_javascript_writes_every_default_as_python_does() -> None:
    assert NODE is not None
    cases = _random_defaults(20_000)
    done = subprocess.run(
        [NODE, str(SCRIPT), "--defaults"], input=json.dumps(cases),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    javascript = json.loads(done.stdout)
    differ = [
        (case, mine, theirs)
        for case, theirs in zip(cases, javascript, strict=True)
        if (mine := canonical_default(*case)) != theirs
    ]
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[:5]}"
