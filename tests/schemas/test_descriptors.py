"""Building pools from records: protobuf's TypeErrors become InvalidSchema, limits hold."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from gristmill.errors import InvalidSchema
from gristmill.schemas.build import SchemaBuilder
from gristmill.schemas.descriptors import MAX_FIELDS, MAX_FILES, file_set_of, message_class
from gristmill.schemas.record import MAX_RECORD_BYTES, SchemaRecord
from tests.schemas.people import PERSON, person_schema

_FDP = descriptor_pb2.FieldDescriptorProto


def _file(name: str, *deps: str, message: str = "M") -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name=name, package="p", syntax="proto3")
    file.dependency.extend(deps)
    file.message_type.add(name=message).field.add(
        name="a", number=1, type=_FDP.TYPE_STRING, label=1
    )
    return file


def test_files_in_any_order_build() -> None:
    user = _file("user.proto", "base.proto", message="User")
    user.message_type[0].field.add(
        name="b", number=2, type=_FDP.TYPE_MESSAGE, type_name=".p.M", label=1
    )
    file_set = descriptor_pb2.FileDescriptorSet(file=[user, _file("base.proto")])
    built = message_class(file_set, "p.User")
    assert built.DESCRIPTOR.fields_by_name["b"].message_type.full_name == "p.M"  # type: ignore[union-attr]


def test_a_missing_import_is_invalid() -> None:
    file_set = descriptor_pb2.FileDescriptorSet(file=[_file("a.proto", "gone.proto")])
    with pytest.raises(InvalidSchema, match=r"gone\.proto"):
        message_class(file_set, "p.M")


def test_a_duplicate_symbol_is_invalid() -> None:
    file_set = descriptor_pb2.FileDescriptorSet(file=[_file("a.proto"), _file("b.proto")])
    with pytest.raises(InvalidSchema, match="refused"):
        message_class(file_set, "p.M")


def test_a_repeated_file_name_is_invalid() -> None:
    file_set = descriptor_pb2.FileDescriptorSet(
        file=[_file("a.proto"), _file("a.proto", message="N")]
    )
    with pytest.raises(InvalidSchema, match="repeats a file name"):
        message_class(file_set, "p.M")


def test_duplicate_field_numbers_are_invalid() -> None:
    file = _file("a.proto")
    file.message_type[0].field.add(name="b", number=1, type=_FDP.TYPE_STRING, label=1)
    with pytest.raises(InvalidSchema, match="refused"):
        message_class(descriptor_pb2.FileDescriptorSet(file=[file]), "p.M")


def test_too_many_files_or_fields_are_refused_before_building() -> None:
    many_files = descriptor_pb2.FileDescriptorSet(
        file=[_file(f"f{i}.proto", message=f"M{i}") for i in range(MAX_FILES + 1)]
    )
    with pytest.raises(InvalidSchema, match=f"the limit is {MAX_FILES}"):
        message_class(many_files, "p.M0")
    wide = _file("w.proto")
    for number in range(2, MAX_FIELDS + 2):
        wide.message_type[0].field.add(
            name=f"f{number}", number=number, type=_FDP.TYPE_BOOL, label=1
        )
    with pytest.raises(InvalidSchema, match=f"the limit is {MAX_FIELDS}"):
        message_class(descriptor_pb2.FileDescriptorSet(file=[wide]), "p.M")


def test_an_oversized_record_is_refused() -> None:
    file = _file("big.proto")
    file.message_type[0].field[0].name = "x" * (MAX_RECORD_BYTES + 1)
    record = SchemaRecord.create(descriptor_pb2.FileDescriptorSet(file=[file]), "p.M", "s", 1, 0)
    with pytest.raises(InvalidSchema, match="the limit is"):
        record.to_bytes()
    with pytest.raises(InvalidSchema, match="limit"):
        SchemaRecord.from_bytes(record.schema_id, b"\x00" * (MAX_RECORD_BYTES + 1))


def test_a_record_round_trips() -> None:
    descriptor = person_schema().descriptor(PERSON)
    record = SchemaRecord.create(file_set_of(descriptor), PERSON, "people", 3, 1_700_000_000_000)
    assert SchemaRecord.from_bytes(record.schema_id, record.to_bytes()) == record


def test_each_build_gets_its_own_pool_never_the_default() -> None:
    first, second = person_schema(), person_schema(extra_field=True)
    assert first.pool is not second.pool
    assert first.pool is not descriptor_pool.Default()
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName(PERSON)


def test_the_builder_refuses_contradictions_and_unknown_types() -> None:
    schema = SchemaBuilder("x.proto", package="x")
    message = schema.message("M")
    with pytest.raises(InvalidSchema, match="exclude each other"):
        message.field("a", 1, "string", repeated=True, optional=True)
    with pytest.raises(InvalidSchema, match="unknown type"):
        message.field("b", 2, "strin")
    with pytest.raises(InvalidSchema, match="cannot be a map key"):
        message.map_field("c", 3, "double", "string")  # type: ignore[arg-type]
    message.field("d", 4, "string")
    built = schema.build()["x.M"].DESCRIPTOR
    assert [f.name for f in built.fields] == ["d"]  # refused fields left nothing behind
    assert [m.name for m in built.nested_types] == []


def test_builder_optional_and_oneof_fields_behave() -> None:
    schema = SchemaBuilder("x.proto", package="x")
    message = schema.message("M")
    message.field("note", 1, "string", optional=True)
    message.field("email", 2, "string", oneof="contact")
    message.field("phone", 3, "string", oneof="contact")
    message.field("colors", 4, schema.enum("Color", {"RED": 0, "BLUE": 5}), repeated=True)
    built: Any = schema.build()["x.M"]  # built at run time: no typed constructor
    value = built(phone="1")
    assert value.WhichOneof("contact") == "phone"
    assert not value.HasField("note")
    value.note = ""
    assert value.HasField("note")
    assert [d.name for d in built.DESCRIPTOR.oneofs] == ["contact", "_note"]
    assert schema.build()["x.M"].DESCRIPTOR.oneofs[1].name == "_note"  # builds again, same shape


def test_builder_imports_well_known_types() -> None:
    schema = SchemaBuilder("wk.proto", package="wk")
    event = schema.message("Event")
    event.field("at", 1, "google.protobuf.Timestamp")
    event.field("took", 2, "google.protobuf.Duration")
    event.field("attributes", 3, "google.protobuf.Struct")
    event.field("nothing", 4, "google.protobuf.NullValue")
    event.field("maybe", 5, "google.protobuf.Int64Value")
    built = schema.build()
    assert list(built.file_set.file[0].dependency) == [
        "google/protobuf/timestamp.proto", "google/protobuf/duration.proto",
        "google/protobuf/struct.proto", "google/protobuf/wrappers.proto",
    ]  # fmt: skip
    value: Any = built["wk.Event"]()
    value.took.FromMilliseconds(1500)
    value.attributes.update({"k": [1, "two"]})
    value.maybe.value = 7
    copy: Any = message_class(file_set_of(built.descriptor("wk.Event")), "wk.Event").FromString(
        value.SerializeToString()
    )
    assert copy.took.ToMilliseconds() == 1500
    assert copy.attributes["k"][1] == "two"
    assert copy.maybe.value == 7
