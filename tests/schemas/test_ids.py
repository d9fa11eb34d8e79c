"""Schema ids: the canonical form ignores declaration order and nothing that changes meaning."""

from __future__ import annotations

import hashlib

import pytest
from google.protobuf import descriptor_pb2

from gristmill.errors import InvalidSchema
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.descriptors import file_set_of
from gristmill.schemas.ids import (
    ID_LENGTH,
    canonical_form,
    id_of_digest,
    looks_like_schema_id,
    schema_id_of,
)
from gristmill.schemas.protofiles import load_proto
from tests.schemas.people import PERSON, ROOT, person_schema

_FDP = descriptor_pb2.FieldDescriptorProto


def _tiny(
    file_name: str = "t.proto", *, field_type: int = _FDP.TYPE_STRING
) -> descriptor_pb2.FileDescriptorSet:
    file = descriptor_pb2.FileDescriptorProto(name=file_name, package="t", syntax="proto3")
    message = file.message_type.add(name="M")
    message.field.add(name="a", number=1, type=field_type, label=_FDP.LABEL_OPTIONAL)
    return descriptor_pb2.FileDescriptorSet(file=[file])


def test_the_canonical_form_is_the_documented_json() -> None:
    # docs/wire-format.md quotes this document and its id; another language must match both
    canonical = canonical_form(_tiny(), "t.M")
    assert canonical == (
        b'{"canonical":1,"root":"t.M","types":[{"fields":[{"default":null,"label":"optional",'
        b'"name":"a","number":1,"oneof":"","packed":null,"proto3_optional":false,'
        b'"type":"string","type_name":""}],"kind":"message","map_entry":false,"name":"t.M",'
        b'"reserved_names":[],"reserved_ranges":[],"syntax":"proto3"}]}'
    )
    assert schema_id_of(_tiny(), "t.M") == id_of_digest(hashlib.sha256(canonical).digest())
    assert schema_id_of(_tiny(), "t.M") == "s1fW_Y7qmKvBtUCQBP"


def test_an_id_is_short_ascii() -> None:
    schema_id = schema_id_of(person_schema()[PERSON].DESCRIPTOR)
    assert len(schema_id) == ID_LENGTH <= 24
    assert schema_id.isascii()
    assert looks_like_schema_id(schema_id)
    assert not looks_like_schema_id(schema_id[:-1] + "!")


def test_declaration_order_does_not_change_the_id() -> None:
    forward = person_schema()[PERSON].DESCRIPTOR
    backward = person_schema(reverse=True)[PERSON].DESCRIPTOR
    assert [f.name for f in forward.fields] != [f.name for f in backward.fields]
    assert schema_id_of(forward) == schema_id_of(backward)


def test_a_new_field_changes_the_id() -> None:
    assert schema_id_of(person_schema()[PERSON].DESCRIPTOR) != schema_id_of(
        person_schema(extra_field=True)[PERSON].DESCRIPTOR
    )


def test_file_names_do_not_change_the_id() -> None:
    assert schema_id_of(_tiny("a.proto"), "t.M") == schema_id_of(_tiny("b/c.proto"), "t.M")


def test_a_field_type_changes_the_id() -> None:
    assert schema_id_of(_tiny(), "t.M") != schema_id_of(_tiny(field_type=_FDP.TYPE_BYTES), "t.M")


def test_unreachable_types_do_not_change_the_id() -> None:
    file_set = _tiny()
    file_set.file[0].message_type.add(name="Unused")
    assert schema_id_of(file_set, "t.M") == schema_id_of(_tiny(), "t.M")


def test_reserved_ranges_are_merged_before_hashing() -> None:
    split, whole = _tiny(), _tiny()
    split.file[0].message_type[0].reserved_range.add(start=3, end=5)
    split.file[0].message_type[0].reserved_range.add(start=2, end=3)
    whole.file[0].message_type[0].reserved_range.add(start=2, end=5)
    assert schema_id_of(split, "t.M") == schema_id_of(whole, "t.M")


def test_well_known_types_are_named_not_described() -> None:
    schema = SchemaBuilder("w.proto", package="w")
    schema.message("M").field("at", 1, "google.protobuf.Timestamp")
    descriptor = schema.build()["w.M"].DESCRIPTOR
    assert [f.name for f in file_set_of(descriptor).file] == ["w.proto"]
    assert b"google.protobuf.Timestamp" in canonical_form(file_set_of(descriptor), "w.M")
    assert b"seconds" not in canonical_form(file_set_of(descriptor), "w.M")


def test_relative_type_names_are_refused() -> None:
    file_set = _tiny()
    message = file_set.file[0].message_type[0]
    message.field.add(name="b", number=2, type=_FDP.TYPE_MESSAGE, type_name="M", label=1)
    with pytest.raises(InvalidSchema, match="not fully qualified"):
        schema_id_of(file_set, "t.M")


def test_editions_are_refused() -> None:
    file_set = _tiny()
    file_set.file[0].syntax = "editions"
    with pytest.raises(InvalidSchema, match="editions"):
        schema_id_of(file_set, "t.M")


def test_a_missing_root_or_reference_is_refused() -> None:
    with pytest.raises(InvalidSchema, match="not defined"):
        schema_id_of(_tiny(), "t.Nope")
    file_set = _tiny()
    file_set.file[0].message_type[0].field.add(
        name="b", number=2, type=_FDP.TYPE_MESSAGE, type_name=".t.Gone", label=1
    )
    with pytest.raises(InvalidSchema, match="t.Gone"):
        schema_id_of(file_set, "t.M")


def test_a_type_defined_twice_is_refused() -> None:
    file_set = _tiny("a.proto")
    file_set.file.extend(_tiny("b.proto").file)
    with pytest.raises(InvalidSchema, match="defined twice"):
        schema_id_of(file_set, "t.M")


def test_protoc_and_the_builder_agree_on_the_id() -> None:
    # two independent producers of descriptors: Google's protoc and our builder
    from_file = load_proto(ROOT / "schemas" / "person.proto")
    assert schema_id_of(from_file.descriptor(PERSON)) == schema_id_of(
        person_schema().descriptor(PERSON)
    )
