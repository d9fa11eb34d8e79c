"""The canonical text of a proto2 field default, as protoc writes it into `default_value`.

`FieldDescriptorProto.default_value` holds "the original text representation of the value"
for numbers and a C-escaped string for bytes, so two toolchains can write the same default
differently (`-1.5e3` and `-1500`, `\\x01` and `\\001`). The schema id hashes this function's
result instead of the raw text, so both get one id. The result is exactly what protoc writes,
so every id computed from a protoc descriptor before this rule existed stays the same:

- `double`: the value parsed as an IEEE double, printed with C's `%.15g`, or `%.17g` when
  that does not read back as the same double; `inf`, `-inf`, `nan`; `-0` for negative zero.
- `float`: the double rounded to the nearest float32, printed with `%.6g`, or `%.9g` when
  that does not read back as the same float32.
- integer types: decimal, from decimal, `0x` hex or `0`-prefixed octal text with an optional
  `-`; it must fit the type.
- `bool`: `true` or `false`. `string` and `enum` (a value name): unchanged.
- `bytes`: C escapes undone (`\\n \\r \\t \\" \\' \\\\ \\? \\a \\b \\f \\v`, octal `\\ooo`,
  hex `\\xHH`), then escaped again: `\\n \\r \\t \\" \\' \\\\` by name, other bytes below
  0x20 or above 0x7e as three octal digits, the rest as they are.
"""

from __future__ import annotations

import math
import re
import struct

from gristmill.errors import InvalidSchema

_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE
)
_INT_TEXT = re.compile(r"(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)")
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1), "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "fixed32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1), "fixed64": (0, 2**64 - 1),
}  # fmt: skip
_NAMED_ESCAPES = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "?": 63,
                  "a": 7, "b": 8, "f": 12, "v": 11}  # fmt: skip
_ESCAPED_BYTES = {10: "\\n", 13: "\\r", 9: "\\t", 34: '\\"', 39: "\\'", 92: "\\\\"}


def canonical_default(type_name: str, text: str) -> str:
    """The canonical form of default `text` of a field of type `type_name` (`"double"`, ...).

    Raises:
        InvalidSchema: If `text` is not a value of that type.
    """
    if type_name in ("double", "float"):
        return _real(type_name, text)
    if type_name in _INT_RANGES:
        return _integer(type_name, text)
    if type_name == "bool":
        if text not in ("true", "false"):
            raise InvalidSchema(f"bool default {text!r}: expected true or false")
        return text
    if type_name == "bytes":
        return "".join(_ESCAPED_BYTES.get(b) or _byte(b) for b in _unescape(text))
    return text


def _real(type_name: str, text: str) -> str:
    if not _FLOAT_TEXT.fullmatch(text):
        raise InvalidSchema(f"{type_name} default {text!r} is not a number")
    value = float(text)
    if math.isnan(value):
        return "nan"
    if type_name == "double":
        short = f"{value:.15g}"
        return short if float(short) == value else f"{value:.17g}"
    single = _float32(value)
    short = f"{single:.6g}"
    return short if _float32(float(short)) == single else f"{single:.9g}"


def _float32(value: float) -> float:
    try:
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    except OverflowError:  # as C's cast: beyond the largest float32 is infinity
        return math.copysign(math.inf, value)


def _integer(type_name: str, text: str) -> str:
    match = _INT_TEXT.fullmatch(text)
    if match is None:
        raise InvalidSchema(f"{type_name} default {text!r} is not an integer")
    sign, digits = match.groups()
    base = 16 if digits[:2] in ("0x", "0X") else 8 if digits.startswith("0") else 10
    value = int(digits[2:] if base == 16 else digits, base) * (-1 if sign else 1)
    low, high = _INT_RANGES[type_name]
    if not low <= value <= high:
        raise InvalidSchema(f"{type_name} default {text} is out of range")
    return str(value)


def _unescape(text: str) -> bytes:
    out = bytearray()
    raw = text.encode("utf-8")
    i = 0
    while i < len(raw):
        byte = raw[i]
        i += 1
        if byte != 92:  # not a backslash
            out.append(byte)
            continue
        if i == len(raw):
            raise InvalidSchema(f"bytes default {text!r} ends in a lone backslash")
        code = chr(raw[i])
        if code in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[code])
            i += 1
        elif code in "01234567":
            end = i
            while end < min(i + 3, len(raw)) and chr(raw[end]) in "01234567":
                end += 1
            out.append(int(raw[i:end], 8) & 0xFF)
            i = end
        elif code in "xX":
            end = i + 1
            while end < min(i + 3, len(raw)) and chr(raw[end]) in "0123456789abcdefABCDEF":
                end += 1
            if end == i + 1:
                raise InvalidSchema(f"bytes default {text!r}: \\x without hex digits")
            out.append(int(raw[i + 1 : end], 16))
            i = end
        else:
            raise InvalidSchema(f"bytes default {text!r}: unknown escape \\{code}")
    return bytes(out)


def _byte(value: int) -> str:
    return chr(value) if 0x20 <= value <= 0x7E else f"\\{value:03o}"
