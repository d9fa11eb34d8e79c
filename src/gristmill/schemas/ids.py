"""Schema ids: a short content hash of a canonical form that any language can compute.

The canonical form (version 1) describes one root message and every message and enum it
reaches through its fields, with exactly the facts that give bytes on the wire their meaning,
and nothing that merely depends on how a file happened to be written (declaration order, file
names, imports, comments, options other than `packed`, json names, nesting of unrelated types).

Algorithm (docs/wire-format.md repeats it for implementers in other languages):

1. Index every message and enum of every file in the FileDescriptorSet by its full name
   (`package.Outer.Inner`, no leading dot). Files of the well-known types
   (`google/protobuf/*.proto` shipped by every runtime) are skipped; their types are leaves.
2. Starting at the root message, follow each field's `type_name` (which must be fully
   qualified, with a leading dot, as protoc writes it) to collect every reachable type.
3. Describe each reachable type as a JSON object (keys below), sort the types by name and the
   fields by number, and write `{"canonical":1,"root":ROOT,"types":[...]}` as JSON per RFC 8785
   (keys sorted, no whitespace, UTF-8, integers in decimal, strings escaped minimally).
4. `schema_id = "s1" + base64url(sha256(canonical)[:12])` without padding: 18 ASCII chars.

Message: `{"fields":[...],"kind":"message","map_entry":bool,"name":str,"reserved_names":[str],
"reserved_ranges":[[start,end_exclusive]],"syntax":"proto2"|"proto3"}`.
Field: `{"default":str|null,"label":"optional"|"required"|"repeated","name":str,
"number":int,"oneof":str,"packed":bool|null,"proto3_optional":bool,"type":"int32"|...,
"type_name":str}` where `type` is the descriptor.proto type name in lower case without
`TYPE_`, `type_name` the referenced full name without the dot (or ""), `oneof` the name of a
real (not synthetic) oneof (or ""), `default` the proto2 default in `default_value` in the
canonical text of `defaults.py` (or null), `packed` the explicit `[packed=...]` option (or null).
Enum: `{"kind":"enum","name":str,"reserved_names":[str],"reserved_ranges":[[start,end]],
"syntax":str,"values":[{"name":str,"number":int}]}` with values sorted by (number, name).
Reserved names are sorted and deduplicated; reserved ranges sorted and merged (message ranges
are half-open, enum ranges closed, as in descriptor.proto).

Why 96 bits are enough: the id travels in every stream entry, so each byte costs megabytes
across tens of millions of entries. With 96 bits, the chance that any two of a billion
distinct schemas share an id is about 6e-12. A deliberate collision costs about 2**48 hashes,
which is feasible, so the registry stores the full SHA-256 in each record, refuses to register
a different schema under a taken id, and every decoder recomputes the id from the record it
fetched before trusting it.

Editions (`syntax = "editions"`) are refused for now: their resolved features would have to
join the canonical form.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2

from gristmill.errors import InvalidSchema
from gristmill.schemas.defaults import canonical_default
from gristmill.schemas.descriptors import file_set_of
from gristmill.schemas.wellknown import WELL_KNOWN_TYPES, is_well_known_file

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gristmill.schemas.descriptors import MessageDescriptor

CANONICAL_VERSION = 1
ID_PREFIX = "s1"
ID_DIGEST_BYTES = 12  # 96 bits; see the module docstring
ID_LENGTH = len(ID_PREFIX) + ID_DIGEST_BYTES * 4 // 3

_FDP = descriptor_pb2.FieldDescriptorProto
_TYPE_NAMES = {number: name.removeprefix("TYPE_").lower() for name, number in _FDP.Type.items()}
_LABEL_NAMES = {
    _FDP.LABEL_OPTIONAL: "optional",
    _FDP.LABEL_REQUIRED: "required",
    _FDP.LABEL_REPEATED: "repeated",
}
_REFERENCE_TYPES = (_FDP.TYPE_MESSAGE, _FDP.TYPE_ENUM, _FDP.TYPE_GROUP)


def _syntax(file: descriptor_pb2.FileDescriptorProto) -> str:
    if file.syntax in ("", "proto2"):
        return "proto2"
    if file.syntax == "proto3":
        return "proto3"
    raise InvalidSchema(
        f"{file.name}: syntax {file.syntax!r} is not supported; use proto2 or proto3"
    )


def _join(scope: str, name: str) -> str:
    return f"{scope}.{name}" if scope else name


_Indexed = tuple[
    descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto, str
]  # (type, syntax)


def _walk(
    scope: str, message: descriptor_pb2.DescriptorProto, syntax: str
) -> Iterator[tuple[str, _Indexed]]:
    full_name = _join(scope, message.name)
    yield full_name, (message, syntax)
    for enum in message.enum_type:
        yield _join(full_name, enum.name), (enum, syntax)
    for nested in message.nested_type:
        yield from _walk(full_name, nested, syntax)


def _index(file_set: descriptor_pb2.FileDescriptorSet) -> dict[str, _Indexed]:
    index: dict[str, _Indexed] = {}
    for file in file_set.file:
        if is_well_known_file(file.name):
            continue  # every runtime has its own copy; records name these types only
        syntax = _syntax(file)
        found: list[tuple[str, _Indexed]] = [
            (_join(file.package, enum.name), (enum, syntax)) for enum in file.enum_type
        ]
        for message in file.message_type:
            found.extend(_walk(file.package, message, syntax))
        for full_name, entry in found:
            if full_name in index or full_name in WELL_KNOWN_TYPES:
                raise InvalidSchema(f"{file.name}: type {full_name} is defined twice")
            index[full_name] = entry
    return index


def _merged(ranges: list[tuple[int, int]], gap: int) -> list[list[int]]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _field(
    message_name: str, message: descriptor_pb2.DescriptorProto, field: _FDP
) -> dict[str, Any]:
    if field.type not in _TYPE_NAMES or field.label not in _LABEL_NAMES:
        raise InvalidSchema(f"{message_name}.{field.name}: missing or unknown type or label")
    type_name = ""
    if field.type in _REFERENCE_TYPES:
        if not field.type_name.startswith("."):
            raise InvalidSchema(
                f"{message_name}.{field.name}: type name {field.type_name!r} is not fully "
                "qualified (expected a leading dot, as protoc writes it)"
            )
        type_name = field.type_name[1:]
    oneof = ""
    if field.HasField("oneof_index") and not field.proto3_optional:
        if not 0 <= field.oneof_index < len(message.oneof_decl):
            raise InvalidSchema(f"{message_name}.{field.name}: oneof index out of range")
        oneof = message.oneof_decl[field.oneof_index].name
    return {
        "default": (
            canonical_default(_TYPE_NAMES[field.type], field.default_value)
            if field.HasField("default_value")
            else None
        ),
        "label": _LABEL_NAMES[field.label],
        "name": field.name,
        "number": field.number,
        "oneof": oneof,
        "packed": field.options.packed if field.options.HasField("packed") else None,
        "proto3_optional": field.proto3_optional,
        "type": _TYPE_NAMES[field.type],
        "type_name": type_name,
    }


def _message(name: str, message: descriptor_pb2.DescriptorProto, syntax: str) -> dict[str, Any]:
    fields = sorted((_field(name, message, f) for f in message.field), key=lambda f: f["number"])
    return {
        "fields": fields,
        "kind": "message",
        "map_entry": message.options.map_entry,
        "name": name,
        "reserved_names": sorted(set(message.reserved_name)),
        "reserved_ranges": _merged([(r.start, r.end) for r in message.reserved_range], 0),
        "syntax": syntax,
    }


def _enum(name: str, enum: descriptor_pb2.EnumDescriptorProto, syntax: str) -> dict[str, Any]:
    values = sorted(({"name": v.name, "number": v.number} for v in enum.value),
                    key=lambda v: (v["number"], v["name"]))  # fmt: skip
    return {
        "kind": "enum",
        "name": name,
        "reserved_names": sorted(set(enum.reserved_name)),
        "reserved_ranges": _merged([(r.start, r.end) for r in enum.reserved_range], 1),
        "syntax": syntax,
        "values": values,
    }


def canonical_types(
    file_set: descriptor_pb2.FileDescriptorSet, message_name: str
) -> list[dict[str, Any]]:
    """The canonical description of every type reachable from `message_name`, sorted by name.

    Raises:
        InvalidSchema: If the root is missing, a referenced type is missing, a type is
            defined twice, or a file uses an unsupported syntax.
    """
    index = _index(file_set)
    root = message_name.removeprefix(".")
    if root in WELL_KNOWN_TYPES:
        return []
    entry = index.get(root)
    if entry is None or not isinstance(entry[0], descriptor_pb2.DescriptorProto):
        raise InvalidSchema(f"message {root} is not defined in the schema's files")
    described: dict[str, dict[str, Any]] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        if name in described or name in WELL_KNOWN_TYPES:
            continue
        found = index.get(name)
        if found is None:
            raise InvalidSchema(f"type {name} is referenced but not defined (missing import?)")
        proto, syntax = found
        if isinstance(proto, descriptor_pb2.EnumDescriptorProto):
            described[name] = _enum(name, proto, syntax)
            continue
        described[name] = _message(name, proto, syntax)
        pending.extend(f["type_name"] for f in described[name]["fields"] if f["type_name"])
    return [described[name] for name in sorted(described)]


def canonical_form(file_set: descriptor_pb2.FileDescriptorSet, message_name: str) -> bytes:
    """The canonical bytes whose SHA-256 gives the schema id (see the module docstring)."""
    document = {
        "canonical": CANONICAL_VERSION,
        "root": message_name.removeprefix("."),
        "types": canonical_types(file_set, message_name),
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_digest(file_set: descriptor_pb2.FileDescriptorSet, message_name: str) -> bytes:
    """SHA-256 of the canonical form: 32 bytes, stored in the record against collisions."""
    return hashlib.sha256(canonical_form(file_set, message_name)).digest()


def id_of_digest(digest: bytes) -> str:
    """The schema id for a canonical digest: `s1` + 16 base64url characters."""
    return ID_PREFIX + base64.urlsafe_b64encode(digest[:ID_DIGEST_BYTES]).decode("ascii")


def schema_id_of(
    source: MessageDescriptor | descriptor_pb2.FileDescriptorSet, message_name: str | None = None
) -> str:
    """The schema id of a message type.

    Args:
        source: The message's Descriptor, or a FileDescriptorSet holding it.
        message_name: The message's full name; required with a FileDescriptorSet.

    Returns:
        An 18-character ASCII id such as `s1q3Xy...`.

    Raises:
        InvalidSchema: If the schema cannot be described (see `canonical_types`).
    """
    if isinstance(source, descriptor_pb2.FileDescriptorSet):
        if message_name is None:
            raise TypeError("schema_id_of(file_set) needs message_name")
        return id_of_digest(canonical_digest(source, message_name))
    return id_of_digest(canonical_digest(file_set_of(source), source.full_name))


def looks_like_schema_id(value: str) -> bool:
    """True if `value` has the shape of a schema id (prefix, length, alphabet)."""
    if len(value) != ID_LENGTH or not value.startswith(ID_PREFIX):
        return False
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return all(char in alphabet for char in value[len(ID_PREFIX) :])
