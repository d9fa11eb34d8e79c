"""The wire format of one stream entry: flat fields any Redis client and protobuf runtime can read.

    schema_id   content id of the payload's schema (required)
    payload     protobuf bytes, compressed if `encoding` says so (required)
    encoding    `zstd` when the payload is compressed (absent: plain protobuf)
    key         ordering / partition key (optional)
    attempt     1-based run number for entries coming back through a retry lane (absent: 1)
    requeues    how often a handler requeued this entry with ctx.requeue (absent: 0); a
                requeue resets `attempt`, this count keeps growing
    origin      `<stream>/<entry-id>` of the entry this one was made from: set on a retry, so
                its dead-letter record names the input entry (optional)
    failed_at   ms since the epoch of a retried entry's first failure (optional)
    task        `<task name>/<task id>` on a task queue's entries (gristmill.tasks)
    traceparent, tracestate   W3C trace context (optional)
    h:<name>    user headers

docs/wire-format.md describes it for other languages.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

import zstandard

from gristmill.errors import DecodeError

SCHEMA_ID = b"schema_id"
PAYLOAD = b"payload"
ENCODING = b"encoding"
KEY = b"key"
ATTEMPT = b"attempt"
ORIGIN = b"origin"
FAILED_AT = b"failed_at"
REQUEUES = b"requeues"
TASK = b"task"
TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
HEADER_PREFIX = b"h:"
ZSTD = b"zstd"

if TYPE_CHECKING:
    from collections.abc import Mapping

NO_HEADERS: Mapping[str, str] = MappingProxyType({})  # shared: most entries carry none
_compressor = zstandard.ZstdCompressor(level=3)  # stateless per call; safe to share
_decompressor = zstandard.ZstdDecompressor()


class Envelope:
    """One entry's fields, unpacked; the payload is still protobuf bytes (decompressed)."""

    __slots__ = (
        "attempt", "failed_at", "headers", "key", "origin", "payload", "requeues", "schema_id",
        "task", "trace",
    )  # fmt: skip

    def __init__(
        self,
        schema_id: bytes,
        payload: bytes,
        attempt: int = 1,
        key: bytes | None = None,
        origin: bytes | None = None,
        headers: Mapping[str, str] = NO_HEADERS,
        trace: Mapping[str, str] = NO_HEADERS,
        failed_at: int | None = None,
        requeues: int = 0,
        task: bytes | None = None,
    ) -> None:
        self.schema_id = schema_id
        self.payload = payload
        self.attempt = attempt
        self.key = key
        self.origin = origin
        self.headers = headers
        self.trace = trace
        self.failed_at = failed_at
        self.requeues = requeues
        self.task = task


def carried_fields(envelope: Envelope) -> list[bytes]:
    """The fields an entry passes on to the outputs made from it: its key and trace context.

    User headers (`h:<name>`) describe the input and are not carried (see docs/wire-format.md).
    """
    carried: list[bytes] = []
    if envelope.key is not None:
        carried += (KEY, envelope.key)
    for name, value in envelope.trace.items():
        carried += (name.encode(), value.encode())
    return carried


def open_fields(fields: list[bytes], max_bytes: int) -> Envelope:
    """Unpack the flat [f1, v1, f2, v2, ...] fields of an entry.

    Raises:
        DecodeError: `missing_field`, `oversize` or `bad_encoding`, with what was wrong.
    """
    count = len(fields)
    if count == 4 and fields[0] == SCHEMA_ID and fields[2] == PAYLOAD:  # what we write
        payload = fields[3]
        if len(payload) > max_bytes:
            raise DecodeError("oversize", f"payload of {len(payload)} bytes > {max_bytes}")
        return Envelope(fields[1], payload)
    if count == 6 and fields[0] == SCHEMA_ID and fields[2] == PAYLOAD and fields[4] == TASK:
        # a task as enqueued: its name and id ride along
        if len(fields[3]) > max_bytes:
            raise DecodeError("oversize", f"payload of {len(fields[3])} bytes > {max_bytes}")
        return Envelope(fields[1], fields[3], task=fields[5])
    if count == 6 and fields[0] == SCHEMA_ID and fields[2] == PAYLOAD and fields[4] == TRACEPARENT:
        # what a traced producer writes (sampled or not): no dict, no scan for headers
        total = _TRACED_NAMES + len(fields[1]) + len(fields[3]) + len(fields[5])
        if total > max_bytes:
            raise DecodeError("oversize", f"entry of {total} bytes > {max_bytes}")
        if not sampled(fields[5]):
            return Envelope(fields[1], fields[3])
        return Envelope(
            fields[1], fields[3], trace={"traceparent": fields[5].decode("ascii", "replace")}
        )
    return _open_general(fields, max_bytes)


def sampled(traceparent: bytes) -> bool:
    """True if a W3C `traceparent` (`00-<trace>-<span>-<flags>`) has its sampled flag set.

    An unsampled context is not kept: no span is made for it, and the outputs do not carry
    it on (as `Publisher` never writes one), so only sampled traces cost bytes downstream.
    """
    return len(traceparent) >= 55 and traceparent[54:55] in b"13579bdfBDF"


_TRACED_NAMES = len(SCHEMA_ID) + len(PAYLOAD) + len(TRACEPARENT)


def _open_general(fields: list[bytes], max_bytes: int) -> Envelope:
    if len(fields) % 2:
        raise DecodeError("missing_field", "odd number of field items")
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    schema_id = values.get(SCHEMA_ID)
    payload = values.get(PAYLOAD)
    if schema_id is None or payload is None:
        missing = "schema_id" if schema_id is None else "payload"
        raise DecodeError("missing_field", f"the entry has no `{missing}` field")
    # exactly schema_id and payload, in either order: the payload alone, as the fast path
    total = len(payload) if len(fields) == 4 else sum(map(len, fields))
    if total > max_bytes:
        raise DecodeError("oversize", f"entry of {total} bytes > {max_bytes}")
    encoding = values.get(ENCODING)
    if encoding is not None:
        payload = _decompress(encoding, payload, max_bytes)
    try:
        attempt = int(values.get(ATTEMPT, b"1"))
        failed_at = int(values[FAILED_AT]) if FAILED_AT in values else None
        requeues = int(values.get(REQUEUES, b"0"))
    except ValueError:
        raise DecodeError(
            "missing_field", "`attempt`, `failed_at` or `requeues` is not an integer"
        ) from None
    headers: dict[str, str] = {}
    trace: dict[str, str] = {}
    for name, value in values.items():
        if name.startswith(HEADER_PREFIX):
            headers[name[2:].decode(errors="replace")] = value.decode(errors="replace")
        elif name in (TRACEPARENT, TRACESTATE):
            trace[name.decode()] = value.decode(errors="replace")
    if trace and not sampled(values.get(TRACEPARENT, b"")):
        trace = {}  # tracestate alone, or an unsampled context: nothing to carry on
    return Envelope(
        schema_id, payload, max(attempt, 1), values.get(KEY), values.get(ORIGIN), headers, trace,
        failed_at, max(requeues, 0), values.get(TASK),
    )  # fmt: skip


def _decompress(encoding: bytes, payload: bytes, max_bytes: int) -> bytes:
    if encoding != ZSTD:
        raise DecodeError("bad_encoding", f"unknown encoding {encoding[:32]!r}")
    try:
        size = zstandard.frame_content_size(payload)
        if size > max_bytes:  # the frame says how big it is: refuse a bomb before inflating it
            raise DecodeError("oversize", f"zstd payload inflates to {size} bytes > {max_bytes}")
        return _decompressor.decompress(payload, max_output_size=max_bytes)
    except zstandard.ZstdError as exc:
        raise DecodeError("bad_encoding", f"zstd: {exc}") from None


def seal(
    schema_id: bytes,
    payload: bytes,
    *,
    compress_above: int = 0,
    attempt: int | None = None,
    key: bytes | None = None,
    origin: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """The flat fields of an entry carrying `payload`; zstd-compressed above `compress_above`."""
    fields = [SCHEMA_ID, schema_id, PAYLOAD, payload]
    if compress_above and len(payload) > compress_above:
        fields[3] = _compressor.compress(payload)
        fields += (ENCODING, ZSTD)
    if attempt is not None and attempt > 1:
        fields += (ATTEMPT, str(attempt).encode())
    if key is not None:
        fields += (KEY, key)
    if origin is not None:
        fields += (ORIGIN, origin)
    for name, value in (headers or {}).items():
        fields += (HEADER_PREFIX + name.encode(), value.encode())
    return fields


def with_attempt(fields: list[bytes], attempt: int) -> list[bytes]:
    """The same entry fields with `attempt` set (replacing any earlier value); 1: no field."""
    return with_fields(fields, {ATTEMPT: str(attempt).encode() if attempt > 1 else None})


def with_fields(fields: list[bytes], updates: Mapping[bytes, bytes | None]) -> list[bytes]:
    """The same entry fields with each of `updates` set (None: removed), in place of old values."""
    out: list[bytes] = []
    for index in range(0, len(fields) - 1, 2):
        if fields[index] not in updates:
            out += (fields[index], fields[index + 1])
    for name, value in updates.items():
        if value is not None:
            out += (name, value)
    return out
