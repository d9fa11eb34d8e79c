"""The issue's Person schema, defined at runtime, and variations of it for id tests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gristmill.schemas.build import SchemaBuilder

if TYPE_CHECKING:
    from gristmill.schemas.descriptors import BuiltSchema

PERSON = "example.people.Person"
ROOT = Path(__file__).resolve().parents[2]  # the checkout: subprocesses import tests.* from it


def person_schema(*, reverse: bool = False, extra_field: bool = False) -> BuiltSchema:
    """Person with every kind of field; `reverse` declares fields and types in another order."""
    schema = SchemaBuilder("example/people.proto", package="example.people")
    tag_list = schema.message("TagList")
    tag_list.field("tags", 1, "string", repeated=True)
    person = schema.message("Person")
    if reverse:
        phone = person.message("PhoneNumber")
        address = person.message("Address")
    else:
        address = person.message("Address")
        phone = person.message("PhoneNumber")
    kind = phone.enum("PhoneType", ["MOBILE", "HOME", "WORK"])
    fields = [
        ("name", 1, "string"),
        ("id", 2, "int32"),
        ("email", 3, "string"),
        ("phones", 4, phone),
        ("address", 5, address),
        ("updated_at", 7, "google.protobuf.Timestamp"),
    ]
    for name, number, field_kind in reversed(fields) if reverse else fields:
        person.field(name, number, field_kind, repeated=name == "phones")  # type: ignore[arg-type]
    person.map_field("tags", 6, "string", tag_list)
    if extra_field:
        person.field("nickname", 8, "string")
    phone_fields = [("number", 1, "string"), ("type", 2, kind)]
    for name, number, field_kind in reversed(phone_fields) if reverse else phone_fields:
        phone.field(name, number, field_kind)  # type: ignore[arg-type]
    for name, number in [("street", 1), ("city", 2), ("country", 3)]:
        address.field(name, number, "string")
    return schema.build()
