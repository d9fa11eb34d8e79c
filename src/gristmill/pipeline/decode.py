"""Stage 2 of 5 (consume -> decode -> handle -> encode -> publish): entry fields -> message.

Schema classes come from the per-process cache; ids it has not seen are resolved (one fetch
per id, however many entries carry it) before the batch is decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError as ProtobufDecodeError

from gristmill.errors import DecodeError, SchemaError

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.envelope import Envelope
    from gristmill.schemas.cache import SchemaCache


async def resolve_unknown(cache: SchemaCache, schema_ids: set[bytes]) -> dict[bytes, SchemaError]:
    """Fetch every id in `schema_ids` the cache lacks; returns the ids that failed, and why."""
    failed: dict[bytes, SchemaError] = {}
    for schema_id in schema_ids:
        if cache.get(schema_id) is None:
            try:
                await cache.resolve(schema_id)
            except SchemaError as exc:
                failed[schema_id] = exc
    return failed


def decode(envelope: Envelope, cache: SchemaCache) -> Message:
    """The message in `envelope`, parsed with its schema's class.

    Raises:
        DecodeError: `unknown_schema`, `decode_depth` or `decode_error`.
    """
    message_class = cache.get(envelope.schema_id)
    if message_class is None:
        raise DecodeError("unknown_schema", f"no schema {envelope.schema_id[:64]!r}")
    try:
        return message_class.FromString(envelope.payload)
    except ProtobufDecodeError as exc:
        reason = "decode_depth" if "Depth" in str(exc) or "nesting" in str(exc) else "decode_error"
        raise DecodeError(reason, str(exc)) from None
