"""Define protobuf messages in Python at runtime: no .proto file, no protoc, no generated code.

```python
schema = SchemaBuilder("example/people.proto", package="example.people")
tag_list = schema.message("TagList")
tag_list.field("tags", 1, "string", repeated=True)
person = schema.message("Person")
person.field("name", 1, "string")
phone = person.message("PhoneNumber")
kind = phone.enum("PhoneType", ["MOBILE", "HOME", "WORK"])
phone.field("type", 2, kind)
person.field("phones", 4, phone, repeated=True)
person.map_field("tags", 5, "string", tag_list)  # a map of lists, through a wrapper message
person.field("updated_at", 6, "google.protobuf.Timestamp")
Person = schema.build()["example.people.Person"]
```

The result lives in a DescriptorPool of its own (never the default pool), seeded with the
runtime's well-known types, so two builds of the same file name never collide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Union

from google.protobuf import descriptor_pb2

from gristmill.errors import InvalidSchema
from gristmill.schemas.descriptors import BuiltSchema, new_pool
from gristmill.schemas.wellknown import WELL_KNOWN_FILES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


Scalar = Literal[
    "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string",
    "bytes", "uint32", "sfixed32", "sfixed64", "sint32", "sint64",
]  # fmt: skip
MapKey = Literal[
    "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string", "uint32", "sfixed32",
    "sfixed64", "sint32", "sint64",
]  # fmt: skip
FieldType = Union[Scalar, "MessageBuilder", "EnumBuilder", str]

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[str, int] = {
    name.removeprefix("TYPE_").lower(): number
    for name, number in _FDP.Type.items()
    if name not in ("TYPE_GROUP", "TYPE_MESSAGE", "TYPE_ENUM")
}
_WELL_KNOWN_MESSAGES = {
    message.full_name: file.name
    for file in WELL_KNOWN_FILES.values()
    for message in file.message_types_by_name.values()
}
_WELL_KNOWN_ENUMS = {
    enum.full_name: file.name
    for file in WELL_KNOWN_FILES.values()
    for enum in file.enum_types_by_name.values()
}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class EnumBuilder:
    """An enum being defined; pass it as a field's type."""

    def __init__(self, proto: descriptor_pb2.EnumDescriptorProto, full_name: str) -> None:
        self.proto = proto
        self.full_name = full_name

    def value(self, name: str, number: int) -> EnumBuilder:
        """Add the value `name` = `number`."""
        self.proto.value.add(name=name, number=number)
        return self


class MessageBuilder:
    """A message being defined: add fields, nested messages and enums, oneofs and maps."""

    def __init__(
        self, schema: SchemaBuilder, proto: descriptor_pb2.DescriptorProto, full_name: str
    ) -> None:
        self._schema = schema
        self.proto = proto
        self.full_name = full_name
        self._optional: list[_FDP] = []

    def message(self, name: str) -> MessageBuilder:
        """A message nested in this one (`Outer.Inner`)."""
        builder = MessageBuilder(
            self._schema, self.proto.nested_type.add(name=name), f"{self.full_name}.{name}"
        )
        self._schema._messages.append(builder)
        return builder

    def enum(self, name: str, values: Iterable[str] | Mapping[str, int]) -> EnumBuilder:
        """An enum nested in this message; a list of names numbers them from 0."""
        return _enum(self.proto.enum_type.add(name=name), f"{self.full_name}.{name}", values)

    def field(
        self,
        name: str,
        number: int,
        kind: FieldType,
        *,
        repeated: bool = False,
        optional: bool = False,
        oneof: str | None = None,
    ) -> MessageBuilder:
        """Add a field; returns this builder, so calls chain.

        Args:
            name: Field name (snake_case by convention).
            number: Field number, 1 to 536870911, not 19000-19999.
            kind: A scalar name (`"string"`, `"int64"`...), a message or enum of this
                builder, or the full name of a well-known type (`"google.protobuf.Timestamp"`).
            repeated: A list of values.
            optional: proto3 explicit presence (`HasField` works for scalars).
            oneof: The oneof this field belongs to; declared on first use.

        Raises:
            InvalidSchema: If the type is unknown or the options contradict each other.
        """
        if sum((repeated, optional, oneof is not None)) > 1:
            raise InvalidSchema(
                f"{self.full_name}.{name}: repeated, optional, oneof exclude each other"
            )
        draft = _FDP(
            name=name,
            number=number,
            label=_FDP.LABEL_REPEATED if repeated else _FDP.LABEL_OPTIONAL,
            json_name=json_name(
                name
            ),  # as protoc writes it: JSON encoders in other languages need it
        )
        self._schema._set_type(draft, kind, f"{self.full_name}.{name}")  # may refuse: no trace
        self.proto.field.append(draft)
        proto = self.proto.field[-1]  # append copied the draft; later edits go to the real one
        if oneof is not None:
            names = [decl.name for decl in self.proto.oneof_decl]
            if oneof not in names:
                self.proto.oneof_decl.add(name=oneof)
                names.append(oneof)
            proto.oneof_index = names.index(oneof)
        if optional:
            proto.proto3_optional = True
            self._optional.append(proto)
        return self

    def map_field(self, name: str, number: int, key: MapKey, value: FieldType) -> MessageBuilder:
        """Add `map<key, value> name = number`; for a map of lists, make `value` a message
        with one repeated field (protobuf maps cannot hold repeated values directly)."""
        if key not in _SCALARS or key in ("double", "float", "bytes"):
            raise InvalidSchema(f"{self.full_name}.{name}: {key!r} cannot be a map key")
        entry = self.message(f"{_camel(name)}Entry")
        entry.proto.options.map_entry = True
        entry.field("key", 1, key)
        entry.field("value", 2, value)
        return self.field(name, number, entry, repeated=True)

    def reserve(self, *numbers: int, names: Iterable[str] = ()) -> MessageBuilder:
        """Reserve field numbers and names that a removed field used."""
        for number in numbers:
            self.proto.reserved_range.add(start=number, end=number + 1)
        self.proto.reserved_name.extend(names)
        return self

    def _finish(self) -> None:
        # protobuf wants synthetic oneofs (proto3 `optional`) after every real oneof
        for proto in self._optional:
            proto.oneof_index = len(self.proto.oneof_decl)
            self.proto.oneof_decl.add(name=f"_{proto.name}")


def _enum(
    proto: descriptor_pb2.EnumDescriptorProto,
    full_name: str,
    values: Iterable[str] | Mapping[str, int],
) -> EnumBuilder:
    builder = EnumBuilder(proto, full_name)
    numbered = (
        values.items() if hasattr(values, "items") else ((v, i) for i, v in enumerate(values))
    )
    for name, number in numbered:
        builder.value(name, number)
    return builder


class SchemaBuilder:
    """One proto3 file being defined at runtime."""

    def __init__(self, file_name: str, *, package: str = "") -> None:
        self.file = descriptor_pb2.FileDescriptorProto(
            name=file_name, package=package, syntax="proto3"
        )
        self._messages: list[MessageBuilder] = []

    def _full(self, name: str) -> str:
        return f"{self.file.package}.{name}" if self.file.package else name

    def message(self, name: str) -> MessageBuilder:
        """A top-level message of this file."""
        builder = MessageBuilder(self, self.file.message_type.add(name=name), self._full(name))
        self._messages.append(builder)
        return builder

    def enum(self, name: str, values: Iterable[str] | Mapping[str, int]) -> EnumBuilder:
        """A top-level enum; a list of names numbers them from 0."""
        return _enum(self.file.enum_type.add(name=name), self._full(name), values)

    def _set_type(self, proto: _FDP, kind: FieldType, where: str) -> None:
        if isinstance(kind, MessageBuilder):
            proto.type, proto.type_name = _FDP.TYPE_MESSAGE, f".{kind.full_name}"
        elif isinstance(kind, EnumBuilder):
            proto.type, proto.type_name = _FDP.TYPE_ENUM, f".{kind.full_name}"
        elif kind in _SCALARS:
            proto.type = _SCALARS[kind]  # type: ignore[assignment]
        elif kind in _WELL_KNOWN_MESSAGES or kind in _WELL_KNOWN_ENUMS:
            is_message = kind in _WELL_KNOWN_MESSAGES
            proto.type = _FDP.TYPE_MESSAGE if is_message else _FDP.TYPE_ENUM
            proto.type_name = f".{kind}"
            file = (_WELL_KNOWN_MESSAGES if is_message else _WELL_KNOWN_ENUMS)[kind]
            if file not in self.file.dependency:
                self.file.dependency.append(file)
        else:
            raise InvalidSchema(f"{where}: unknown type {kind!r}")

    def build(self) -> BuiltSchema:
        """Build every message of the file into a pool of its own.

        Raises:
            InvalidSchema: If protobuf refuses the file (duplicate numbers or names, ...).
        """
        file = descriptor_pb2.FileDescriptorProto()
        for builder in self._messages:
            builder._finish()
        file.CopyFrom(self.file)
        for builder in self._messages:  # undo, so the builder can grow and build again
            for proto in builder._optional:
                proto.ClearField("oneof_index")
            del builder.proto.oneof_decl[len(builder.proto.oneof_decl) - len(builder._optional) :]
        file_set = descriptor_pb2.FileDescriptorSet(file=[file])
        return BuiltSchema(new_pool(file_set), file_set)


def json_name(name: str) -> str:
    """protoc's default `json_name`: underscores dropped, the letter after each one upper-cased
    (`unit_price_cents` -> `unitPriceCents`, `a__b` -> `aB`, `_x` -> `X`)."""
    out: list[str] = []
    upper = False
    for char in name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out)
