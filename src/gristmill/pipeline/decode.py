"""Stage 2 of 5 (consume -> decode -> handle -> encode -> publish): entry fields -> message.

`decode_batch` owns the whole stage: it opens each entry's envelope, applies the crash-loop
cap (an entry that killed its workers is not run again), and parses the payload. Schema
classes come from the per-process cache; ids it has not seen are resolved (one fetch per id,
however many entries carry it) before those entries are decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError as ProtobufDecodeError

from gristmill.envelope import open_fields
from gristmill.errors import DecodeError, SchemaError
from gristmill.failures.policy import crash_loop
from gristmill.pipeline.batch import Slot
from gristmill.schemas.jsonformat import json_fields, parse_json

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.envelope import Envelope
    from gristmill.failures.policy import RetryPolicy
    from gristmill.pipeline.consume import Entry
    from gristmill.schemas.cache import SchemaCache
    from gristmill.schemas.jsonformat import JsonInput


async def decode_batch(
    entries: list[Entry],
    cache: SchemaCache,
    policy: RetryPolicy,
    max_bytes: int,
    input_type: str | None = None,
    json_in: JsonInput | None = None,
) -> list[Slot]:
    """One slot per entry: its message, or why it will not run (`failure` or `verdict`).

    With `input_type` (a full protobuf name), a message of another type fails as `wrong_type`.
    With `json_in`, payloads are JSON of that type (protobuf's JSON mapping), not protobuf.
    """
    slots = [Slot(entry) for entry in entries]
    unknown: set[bytes] = set()
    if json_in is not None and json_in.schema_id is None:
        json_in.schema_id = await cache.id_for(json_in.message_class.DESCRIPTOR)
    for slot in slots:
        try:
            fields = slot.entry[2]
            if json_in is not None and json_in.schema_id is not None:
                fields = json_fields(fields, json_in.schema_id)  # JSON entries carry no id
            slot.envelope = envelope = open_fields(fields, max_bytes)
        except DecodeError as exc:
            slot.failure = exc
            continue
        # opened first all the same: its record keeps the origin and history it carries
        slot.verdict = crash_loop(slot.entry[3], policy)
        if slot.verdict is not None:
            continue  # it killed workers before: do not run it again
        if json_in is not None:
            try:
                slot.message = parse_json(envelope.payload, json_in)
            except DecodeError as exc:
                slot.failure = exc
            continue
        if cache.get(envelope.schema_id) is None:
            unknown.add(envelope.schema_id)
            continue
        try:
            slot.message = decode(envelope, cache)
        except DecodeError as exc:
            slot.failure = exc
    if unknown:
        await _decode_late(slots, cache, unknown)
    if input_type is not None:
        for slot in slots:
            message = slot.message
            if message is not None and message.DESCRIPTOR.full_name != input_type:
                slot.message = None
                slot.failure = DecodeError(
                    "wrong_type", f"a {message.DESCRIPTOR.full_name}, not a {input_type}"
                )
    return slots


async def _decode_late(slots: list[Slot], cache: SchemaCache, unknown: set[bytes]) -> None:
    failed = await resolve_unknown(cache, unknown)  # one fetch per new schema id
    for slot in slots:
        late = slot.envelope
        if late is None or slot.verdict is not None or late.schema_id not in unknown:
            continue
        problem = failed.get(late.schema_id)
        try:
            if problem is not None:
                raise DecodeError(problem.reason, str(problem))
            slot.message = decode(late, cache)
        except DecodeError as exc:
            slot.failure = exc


async def resolve_unknown(cache: SchemaCache, schema_ids: set[bytes]) -> dict[bytes, SchemaError]:
    """Fetch every id in `schema_ids` the cache lacks; returns the ids that failed, and why."""
    failed: dict[bytes, SchemaError] = {}
    await cache.recheck_misses(schema_ids)  # a schema registered since a miss: fetch it again
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
