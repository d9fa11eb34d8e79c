"""Compatibility modes, table-driven: each case is an old and a new schema and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from google.protobuf import descriptor_pb2

from gristmill.schemas.compat import Mode, check_compatible, incompatibilities

_FDP = descriptor_pb2.FieldDescriptorProto
_LABELS = {"optional": 1, "required": 2, "repeated": 3}


@dataclass(frozen=True)
class F:
    """A field of the message under test, `t.M` (or of its nested `t.M.Item`)."""

    name: str
    number: int
    kind: str  # a scalar name, "message" (t.M.Item), "enum" (t.M.Color) or "map"
    label: str = "optional"
    oneof: str = ""


@dataclass(frozen=True)
class S:
    """A schema: fields of t.M, what it reserves, its package, and its nested types."""

    fields: tuple[F, ...]
    reserved: tuple[int, ...] = ()
    reserved_names: tuple[str, ...] = ()
    package: str = "t"
    syntax: str = "proto3"
    item_fields: tuple[F, ...] = (F("x", 1, "int32"),)
    item_name: str = "Item"
    colors: tuple[str, ...] = ("RED", "GREEN")
    color_reserved: tuple[int, ...] = field(default=())

    def build(self) -> tuple[descriptor_pb2.FileDescriptorSet, str]:
        file = descriptor_pb2.FileDescriptorProto(
            name="t.proto", package=self.package, syntax=self.syntax
        )
        message = file.message_type.add(name="M")
        item = message.nested_type.add(name=self.item_name)
        for spec in self.item_fields:
            self._field(item, spec, f".{self.package}.M")
        entry = message.nested_type.add(name="MapEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_FDP.TYPE_STRING, label=1)
        entry.field.add(name="value", number=2, type=_FDP.TYPE_STRING, label=1)
        color = message.enum_type.add(name="Color")
        for number, name in enumerate(self.colors):
            if name:
                color.value.add(name=name, number=number)
        for number in self.color_reserved:
            color.reserved_range.add(start=number, end=number)
        for spec in self.fields:
            self._field(message, spec, f".{self.package}.M")
        for number in self.reserved:
            message.reserved_range.add(start=number, end=number + 1)
        message.reserved_name.extend(self.reserved_names)
        return descriptor_pb2.FileDescriptorSet(file=[file]), f"{self.package}.M"

    def _field(self, message: descriptor_pb2.DescriptorProto, spec: F, scope: str) -> None:
        proto = message.field.add(name=spec.name, number=spec.number, label=_LABELS[spec.label])
        if spec.kind == "message":
            proto.type, proto.type_name = _FDP.TYPE_MESSAGE, f"{scope}.{self.item_name}"
        elif spec.kind == "enum":
            proto.type, proto.type_name = _FDP.TYPE_ENUM, f"{scope}.Color"
        elif spec.kind == "map":
            proto.type, proto.type_name = _FDP.TYPE_MESSAGE, f"{scope}.MapEntry"
            proto.label = _FDP.LABEL_REPEATED
        else:
            proto.type = _FDP.Type.Value(f"TYPE_{spec.kind.upper()}")
        if spec.oneof:
            names = [decl.name for decl in message.oneof_decl]
            if spec.oneof not in names:
                message.oneof_decl.add(name=spec.oneof)
                names.append(spec.oneof)
            proto.oneof_index = names.index(spec.oneof)


A = F("a", 1, "int32")
B = F("b", 2, "string")
BASE = S((A, B))
P2 = "proto2"

# (case, mode, old, new, the refused field and rule, or None when accepted)
CASES: list[tuple[str, Mode, S, S, str | None]] = [
    ("add a field", Mode.BACKWARD, BASE, S((A, B, F("c", 3, "bool"))), None),
    ("remove a field unreserved", Mode.BACKWARD, BASE, S((A,)),
     "t.M.b (field 2): removed_without_reserved"),
    ("remove a field, reserve its number", Mode.BACKWARD, BASE, S((A,), reserved=(2,)), None),
    ("remove a field, reserve its name", Mode.BACKWARD, BASE, S((A,), reserved_names=("b",)),
     None),
    ("int32 to int64", Mode.BACKWARD, BASE, S((F("a", 1, "int64"), B)), None),
    ("int32 to string", Mode.BACKWARD, BASE, S((F("a", 1, "string"), B)),
     "t.M.a (field 1): type_change: int32 -> string"),
    ("string to bytes", Mode.FULL, BASE, S((A, F("b", 2, "bytes"))), None),
    ("sint32 to int32 (zigzag)", Mode.BACKWARD, S((F("a", 1, "sint32"),)),
     S((F("a", 1, "int32"),)), "t.M.a (field 1): type_change: sint32 -> int32"),
    ("fixed32 to float", Mode.BACKWARD, S((F("a", 1, "fixed32"),)), S((F("a", 1, "float"),)),
     "type_change: fixed32 -> float"),
    ("fixed64 to sfixed64", Mode.FULL, S((F("a", 1, "fixed64"),)),
     S((F("a", 1, "sfixed64"),)), None),
    ("string to message", Mode.BACKWARD, BASE, S((A, F("b", 2, "message"))),
     "t.M.b (field 2): kind_change: scalar -> message"),
    ("singular to repeated", Mode.BACKWARD, BASE, S((A, F("b", 2, "string", "repeated"))),
     "kind_change: scalar -> repeated scalar"),
    ("repeated message to map", Mode.BACKWARD, S((F("m", 3, "message", "repeated"),)),
     S((F("m", 3, "map"),)), "t.M.m (field 3): kind_change: repeated message -> map"),
    ("enum to int32", Mode.BACKWARD, S((F("c", 3, "enum"),)), S((F("c", 3, "int32"),)),
     "kind_change: enum -> scalar"),
    ("into a oneof", Mode.BACKWARD, BASE, S((A, F("b", 2, "string", oneof="pick"))),
     "t.M.b (field 2): oneof_change"),
    ("oneof renamed", Mode.BACKWARD, S((F("b", 2, "string", oneof="x"),)),
     S((F("b", 2, "string", oneof="y"),)), "oneof_change: oneof 'x' -> 'y'"),
    ("package renamed", Mode.BACKWARD, BASE, S((A, B), package="u"),
     "name_change: t.M -> u.M"),
    ("nested type renamed", Mode.BACKWARD, S((F("i", 3, "message"),)),
     S((F("i", 3, "message"),), item_name="Thing"), "name_change: t.M.Item -> t.M.Thing"),
    ("nested field type changed", Mode.BACKWARD, S((F("i", 3, "message"),)),
     S((F("i", 3, "message"),), item_fields=(F("x", 1, "double"),)),
     "t.M.Item.x (field 1): type_change: int32 -> double"),
    ("field renamed", Mode.FULL, BASE, S((F("alpha", 1, "int32"), B)), None),
    ("reserved number reused", Mode.BACKWARD, S((A,), reserved=(2,)),
     S((A, F("c", 2, "bytes"))), "t.M.c (field 2): reserved_reuse"),
    ("required added, backward", Mode.BACKWARD, S((A,), syntax=P2),
     S((A, F("r", 5, "string", "required")), syntax=P2), "t.M.r (field 5): required_added"),
    ("required added, forward", Mode.FORWARD, S((A,), syntax=P2),
     S((A, F("r", 5, "string", "required")), syntax=P2), None),
    ("required removed, forward", Mode.FORWARD, S((A, F("r", 5, "string", "required")),
     syntax=P2), S((A,), reserved=(5,), syntax=P2), "t.M.r (field 5): required_removed"),
    ("required removed, backward", Mode.BACKWARD, S((A, F("r", 5, "string", "required")),
     syntax=P2), S((A,), reserved=(5,), syntax=P2), None),
    ("enum value removed", Mode.BACKWARD, S((F("c", 3, "enum"),)),
     S((F("c", 3, "enum"),), colors=("RED", "")), "t.M.Color.GREEN: enum_value_removed"),
    ("enum value removed, reserved", Mode.BACKWARD, S((F("c", 3, "enum"),)),
     S((F("c", 3, "enum"),), colors=("RED", ""), color_reserved=(1,)), None),
    ("enum value added", Mode.FULL, S((F("c", 3, "enum"),)),
     S((F("c", 3, "enum"),), colors=("RED", "GREEN", "BLUE")), None),
    ("anything goes with NONE", Mode.NONE, BASE, S((F("a", 1, "string"),), package="u"), None),
    ("FULL refuses a type change", Mode.FULL, BASE, S((F("a", 1, "double"), B)),
     "type_change: int32 -> double"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "old", "new", "refusal"),
    [pytest.param(mode, old, new, refusal, id=case) for case, mode, old, new, refusal in CASES],
)
def test_compatibility(mode: Mode, old: S, new: S, refusal: str | None) -> None:
    problems = check_compatible(mode, *new.build(), [old.build()])
    if refusal is None:
        assert problems == []
    else:
        assert len(problems) == 1, problems
        assert refusal in problems[0]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert {mode for _, mode, *_ in CASES} >= {Mode.NONE, Mode.BACKWARD, Mode.FORWARD, Mode.FULL}


def test_a_refusal_is_structured() -> None:
    (problem,) = incompatibilities(Mode.BACKWARD, S((F("a", 1, "string"), B)).build(),
                                   BASE.build())  # fmt: skip
    assert (problem.where, problem.rule) == ("t.M.a (field 1)", "type_change")


# v1 -> v2 changed a type while the subject was NONE; v3 only adds a field to v2
V1, V2 = BASE, S((F("a", 1, "string"), B))
V3 = S((F("a", 1, "string"), B, F("c", 3, "bool")))


@pytest.mark.parametrize(
    ("mode", "refused"),
    [
        (Mode.BACKWARD, False),
        (Mode.BACKWARD_TRANSITIVE, True),
        (Mode.FORWARD, False),
        (Mode.FORWARD_TRANSITIVE, True),
        (Mode.FULL, False),
        (Mode.FULL_TRANSITIVE, True),
    ],
)
def test_transitive_modes_check_every_earlier_version(mode: Mode, refused: bool) -> None:
    problems = check_compatible(mode, *V3.build(), [V1.build(), V2.build()])
    assert bool(problems) is refused
    if refused:
        assert problems == ["t.M.a (field 1): type_change: int32 -> string"]


def test_modes_know_their_directions() -> None:
    assert (Mode.FULL.backward, Mode.FULL.forward, Mode.FULL.transitive) == (True, True, False)
    assert (Mode.FORWARD_TRANSITIVE.backward, Mode.FORWARD_TRANSITIVE.transitive) == (False, True)
    assert Mode.NONE.backward is False
    assert Mode.NONE.forward is False
