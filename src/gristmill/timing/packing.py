"""A stream entry's flat fields packed into one small string, for the delayed store (pure).

The format is a msgpack array of strings, so the sweep script unpacks it with Redis' built-in
cmsgpack (C, not a Lua loop). The field names gristmill writes on every entry are coded as
one-byte integers (1 = schema_id, ...): at tens of millions of waiting entries, a repeated
`schema_id` name would cost more than the entry's own overhead. scripts/delayed_sweep.lua maps
the codes back with the same table; tests pin the two together through a real sweep.

Only msgpack str types are written: Redis' cmsgpack does not read the bin types.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from gristmill.envelope import (
    ATTEMPT,
    ENCODING,
    KEY,
    ORIGIN,
    PAYLOAD,
    SCHEMA_ID,
    TRACEPARENT,
    TRACESTATE,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

# order is the wire format: code = index + 1; append only
FIELD_CODES: tuple[bytes, ...] = (
    SCHEMA_ID,
    PAYLOAD,
    ENCODING,
    KEY,
    ATTEMPT,
    ORIGIN,
    TRACEPARENT,
    TRACESTATE,
)
_CODE_OF = {name: index + 1 for index, name in enumerate(FIELD_CODES)}
_CODE_BYTES = {code: bytes((code,)) for code in _CODE_OF.values()}  # msgpack positive fixint
_ARRAY_FIRST_BYTES = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
COMPACT = 0xC1  # msgpack's unused byte: the first byte of a compact entry
_PACKED_FIRST_BYTES = _ARRAY_FIRST_BYTES | {COMPACT}


def pack_array_header(count: int) -> bytes:
    """The msgpack header of an array of `count` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def pack_uint(value: int) -> bytes:
    """A msgpack unsigned integer (up to 2**53: Lua reads numbers as doubles)."""
    if value < 0x80:
        return bytes((value,))
    if value < 0x100000000:
        return b"\xce" + struct.pack(">I", value)
    return b"\xcf" + struct.pack(">Q", value)


def pack_str(value: bytes) -> bytes:
    """A msgpack str of `value` (raw bytes: Redis' cmsgpack reads str, not bin)."""
    size = len(value)
    if size < 32:
        return bytes((0xA0 | size,)) + value
    if size < 0x100:
        return bytes((0xD9, size)) + value
    if size < 0x10000:
        return b"\xda" + struct.pack(">H", size) + value
    return b"\xdb" + struct.pack(">I", size) + value


def pack_entry(fields: Sequence[bytes]) -> bytes:
    """The flat [f1, v1, f2, v2, ...] fields of a stream entry as one delayed-store member.

    Raises:
        ValueError: If `fields` does not hold name/value pairs.
    """
    count = len(fields)
    if count == 0 or count % 2:
        raise ValueError(f"expected name/value pairs, got {count} fields")
    out = [pack_array_header(count)]
    for index in range(0, count, 2):
        name = fields[index]
        code = _CODE_OF.get(name)
        out.append(pack_str(bytes(name)) if code is None else _CODE_BYTES[code])
        out.append(pack_str(bytes(fields[index + 1])))
    return b"".join(out)


def is_packed_entry(member: bytes) -> bool:
    """True for a packed entry (wire or compact), False for a bucket's member (a decimal)."""
    return bool(member) and member[0] in _PACKED_FIRST_BYTES


def is_compact_entry(member: bytes) -> bool:
    """True for the compact form the bucket layout stores (scripts/lib/packed.lua)."""
    return bool(member) and member[0] == COMPACT


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def pack_varint(value: int) -> bytes:
    """`value` >= 0 as LEB128 (7 bits a byte, low first), as scripts/lib/packed.lua writes it."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def unpack_compact(member: bytes) -> tuple[int, list[bytes], bytes]:
    """(schema ref, the fields after schema_id and payload, payload) of a compact entry.

    Layout: 0xC1, varint(2 * schema ref + 1 if there are extra fields else 0), then if
    there are: varint(len(extra)), extra (a wire entry); then the payload, to the end. The
    ref is resolved through keys.delayed_schema_ids.

    Raises:
        ValueError: If `member` is not a compact entry or is truncated.
    """
    if not is_compact_entry(member):
        raise ValueError("not a compact entry")
    try:
        code, at = _read_varint(member, 1)
        ref, size = code >> 1, 0
        if code & 1:
            size, at = _read_varint(member, at)
    except IndexError as exc:
        raise ValueError("compact entry is truncated") from exc
    if at + size > len(member):
        raise ValueError("compact entry is truncated")
    extra = unpack_entry(member[at : at + size]) if size else []
    return ref, extra, member[at + size :]


def unpack_entry(member: bytes) -> list[bytes]:
    """The flat fields of a packed entry; bytes after the array (a uniqueness suffix) are ignored.

    Raises:
        ValueError: If `member` is not a packed entry.
    """
    try:
        first = member[0]
        if 0x90 <= first <= 0x9F:
            count, at = first & 0x0F, 1
        elif first == 0xDC:
            (count,), at = struct.unpack_from(">H", member, 1), 3
        elif first == 0xDD:
            (count,), at = struct.unpack_from(">I", member, 1), 5
        else:
            raise ValueError(f"not a packed entry (first byte {first:#x})")
        fields: list[bytes] = []
        for _ in range(count):
            kind = member[at]
            if kind < 0x80:
                if not 1 <= kind <= len(FIELD_CODES):
                    raise ValueError(f"unknown field code {kind} at byte {at}")
                fields.append(FIELD_CODES[kind - 1])
                at += 1
                continue
            if 0xA0 <= kind <= 0xBF:
                size, at = kind & 0x1F, at + 1
            elif kind == 0xD9:
                size, at = member[at + 1], at + 2
            elif kind == 0xDA:
                (size,), at = struct.unpack_from(">H", member, at + 1), at + 3
            elif kind == 0xDB:
                (size,), at = struct.unpack_from(">I", member, at + 1), at + 5
            else:
                raise ValueError(f"unexpected msgpack type {kind:#x} at byte {at}")
            if at + size > len(member):
                raise ValueError("packed entry is truncated")
            fields.append(member[at : at + size])
            at += size
    except (IndexError, struct.error) as exc:
        raise ValueError("packed entry is truncated") from exc
    return fields
