"""Compatibility between versions of a subject, judged on the wire (pure: no Redis).

BACKWARD: a consumer with the new schema reads entries written with the old one.
FORWARD: a consumer still on the old schema reads entries written with the new one.
FULL: both. The `_TRANSITIVE` forms check against every earlier version, the others against
the latest only; NONE checks nothing.

Rules (each refusal names the field and the rule):
- `name_change`: the root message, or a message or enum a field refers to, has another full
  name (package or name changed).
- `kind_change`: a field changed between scalar, enum, message, group and map, or between
  singular and repeated.
- `type_change`: a scalar changed to a type of another wire group. Groups that read each
  other's values: {int32, int64, uint32, uint64, bool}, {sint32, sint64}, {fixed32, sfixed32},
  {fixed64, sfixed64}, {string, bytes}; float and double stand alone.
- `oneof_change`: a field entered, left or changed its oneof.
- `removed_without_reserved`: a field of the old version is gone, and the new version does
  not reserve its number.
- `reserved_reuse`: a new field uses a number the old version reserved.
- `required_added` / `required_removed`: a proto2 required field the reader expects but the
  writer may not write.
- `enum_value_removed`: an enum value number is gone and not reserved.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gristmill.schemas.ids import canonical_types

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from google.protobuf import descriptor_pb2


class Mode(enum.Enum):
    """A subject's compatibility mode."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """True if a new version is checked against every earlier one, not just the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """True if new readers must read old data."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """True if old readers must read new data."""
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_MODE = Mode.BACKWARD

_WIRE_GROUPS = (
    {"int32", "int64", "uint32", "uint64", "bool"},
    {"sint32", "sint64"},
    {"fixed32", "sfixed32"},
    {"fixed64", "sfixed64"},
    {"string", "bytes"},
    {"float"},
    {"double"},
)
_WIRE_GROUP = {name: index for index, group in enumerate(_WIRE_GROUPS) for name in group}


@dataclass(frozen=True)
class Incompatibility:
    """One reason a new version is refused: where, which rule, and what changed."""

    where: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}: {self.detail}"


Schema = tuple["descriptor_pb2.FileDescriptorSet", str]  # (files, root message full name)
_Types = dict[str, dict[str, Any]]


def _in_ranges(number: int, ranges: list[list[int]], closed: bool) -> bool:
    return any(start <= number < end + (1 if closed else 0) for start, end in ranges)


def _kind(field: dict[str, Any], types: _Types) -> str:
    if field["type"] == "message":
        target = types.get(field["type_name"])
        if target is not None and target["map_entry"]:
            return "map"
    kind = field["type"] if field["type"] in ("message", "enum", "group") else "scalar"
    return f"repeated {kind}" if field["label"] == "repeated" else kind


class _Checker:
    def __init__(self, old: _Types, new: _Types) -> None:
        self.old, self.new = old, new
        self.problems: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    def refuse(self, where: str, rule: str, detail: str) -> None:
        self.problems.append(Incompatibility(where, rule, detail))

    def pair(self, where: str, old_name: str, new_name: str, backward: bool, forward: bool) -> None:
        if (old_name, new_name) in self._seen:
            return  # recursive types: each pair of types is compared once
        self._seen.add((old_name, new_name))
        if old_name != new_name:
            self.refuse(where, "name_change", f"{old_name} -> {new_name}")
            return
        old, new = self.old.get(old_name), self.new.get(new_name)
        if old is None or new is None:
            return  # a well-known type: the same in every version
        if old["kind"] == "enum":
            self.enums(old, new)
        else:
            self.messages(old, new, backward, forward)

    def enums(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        new_numbers = {value["number"] for value in new["values"]}
        for value in old["values"]:
            number = value["number"]
            if number not in new_numbers and not (
                _in_ranges(number, new["reserved_ranges"], closed=True)
                or value["name"] in new["reserved_names"]
            ):
                self.refuse(
                    f"{old['name']}.{value['name']}",
                    "enum_value_removed",
                    f"value {number} removed without reserving it",
                )

    def messages(
        self, old: dict[str, Any], new: dict[str, Any], backward: bool, forward: bool
    ) -> None:
        old_fields = {f["number"]: f for f in old["fields"]}
        new_fields = {f["number"]: f for f in new["fields"]}
        for number, field in old_fields.items():
            where = f"{old['name']}.{field['name']} (field {number})"
            if number not in new_fields:
                if not (
                    _in_ranges(number, new["reserved_ranges"], closed=False)
                    or field["name"] in new["reserved_names"]
                ):
                    self.refuse(where, "removed_without_reserved", "add `reserved` for it")
                if forward and field["label"] == "required":
                    self.refuse(where, "required_removed", "old readers require it")
        for number, field in new_fields.items():
            where = f"{new['name']}.{field['name']} (field {number})"
            previous = old_fields.get(number)
            if previous is None:
                if _in_ranges(number, old["reserved_ranges"], closed=False) or (
                    field["name"] in old["reserved_names"]
                ):
                    self.refuse(where, "reserved_reuse", f"number {number} or its name is reserved")
                if backward and field["label"] == "required":
                    self.refuse(where, "required_added", "old writers never wrote it")
                continue
            self.field(where, previous, field, backward, forward)

    def field(
        self, where: str, old: dict[str, Any], new: dict[str, Any], backward: bool, forward: bool
    ) -> None:
        old_kind, new_kind = _kind(old, self.old), _kind(new, self.new)
        if old_kind != new_kind:
            self.refuse(where, "kind_change", f"{old_kind} -> {new_kind}")
            return
        if old["oneof"] != new["oneof"]:
            self.refuse(where, "oneof_change", f"oneof {old['oneof']!r} -> {new['oneof']!r}")
        if old["label"] != new["label"]:
            if backward and new["label"] == "required":
                self.refuse(where, "required_added", "became required")
            if forward and old["label"] == "required":
                self.refuse(where, "required_removed", "old readers require it")
        if old["type_name"] or new["type_name"]:
            self.pair(where, old["type_name"], new["type_name"], backward, forward)
        elif _WIRE_GROUP[old["type"]] != _WIRE_GROUP[new["type"]]:
            self.refuse(where, "type_change", f"{old['type']} -> {new['type']}")


def _types(schema: Schema) -> _Types:
    return {t["name"]: t for t in canonical_types(*schema)}


def incompatibilities(mode: Mode, new: Schema, old: Schema) -> list[Incompatibility]:
    """Every reason `new` may not follow `old` in a subject with `mode` (empty: accepted).

    Raises:
        InvalidSchema: If either schema cannot be described.
    """
    if mode is Mode.NONE:
        return []
    checker = _Checker(_types(old), _types(new))
    checker.pair(new[1], old[1].removeprefix("."), new[1].removeprefix("."), mode.backward,
                 mode.forward)  # fmt: skip
    return checker.problems


def check_compatible(
    mode: Mode,
    file_set: descriptor_pb2.FileDescriptorSet,
    message_name: str,
    previous: Sequence[Schema],
) -> list[str]:
    """Every refusal of `message_name` after `previous` (oldest first) under `mode`.

    Non-transitive modes compare with the last of `previous` only.
    """
    against = previous if mode.transitive else previous[-1:]
    found: Iterator[Incompatibility] = (
        problem
        for old in against
        for problem in incompatibilities(mode, (file_set, message_name), old)
    )
    return list(dict.fromkeys(str(problem) for problem in found))
