"""Decode stream entries outside a processor: fields -> message, or -> JSON, via the registry.

    from gristmill import decode
    for entry_id, fields in await redis.xrange("orders"):
        order = await decode(fields, redis)             # the message, of its registered class
        print(await decode(fields, redis, as_json=True))  # {"id": "o-1", "items": [...]}

The schema of each entry is fetched from the registry once per process and id (the classes are
cached per client). Entries without `schema_id` whose payload is JSON (what a pub/sub bridge
writes) decode to that JSON with `as_json=True`.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any, Literal, overload

from gristmill import keys
from gristmill.envelope import PAYLOAD, SCHEMA_ID, open_fields
from gristmill.errors import DecodeError, SchemaError
from gristmill.failures import reasons
from gristmill.pipeline.decode import decode as decode_envelope
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.jsonformat import to_json
from gristmill.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.failures.lanes import DeadEntry
    from gristmill.settings import Settings

__all__ = ("decode", "flat_fields")

DEFAULT_MAX_BYTES = 1 << 20
_caches: weakref.WeakKeyDictionary[Redis, dict[str, SchemaCache]] = weakref.WeakKeyDictionary()


def flat_fields(fields: Mapping[Any, Any] | Sequence[bytes]) -> list[bytes]:
    """[name, value, ...] as bytes, from redis-py's dict or a flat list."""
    items = list(fields.items()) if hasattr(fields, "items") else None
    if items is None:
        return [f if isinstance(f, bytes) else str(f).encode() for f in fields]
    flat: list[bytes] = []
    for name, value in items:
        flat += (
            name if isinstance(name, bytes) else str(name).encode(),
            value if isinstance(value, bytes) else str(value).encode(),
        )
    return flat


def _cache_for(redis: Redis | SchemaCache, prefix: str) -> SchemaCache:
    if isinstance(redis, SchemaCache):
        return redis
    per_prefix = _caches.setdefault(redis, {})
    if prefix not in per_prefix:
        per_prefix[prefix] = SchemaCache(SchemaRegistry(redis, prefix))
    return per_prefix[prefix]


@overload
async def decode(
    fields: Mapping[Any, Any] | Sequence[bytes],
    registry: Redis | SchemaCache,
    *,
    as_json: Literal[False] = False,
    prefix: str = ...,
    max_entry_bytes: int = ...,
) -> Message: ...


@overload
async def decode(
    fields: Mapping[Any, Any] | Sequence[bytes],
    registry: Redis | SchemaCache,
    *,
    as_json: Literal[True],
    prefix: str = ...,
    max_entry_bytes: int = ...,
) -> Any: ...


async def decode(
    fields: Mapping[Any, Any] | Sequence[bytes],
    registry: Redis | SchemaCache,
    *,
    as_json: bool = False,
    prefix: str = keys.DEFAULT_PREFIX,
    max_entry_bytes: int = DEFAULT_MAX_BYTES,
) -> Message | Any:
    """The message an entry carries, resolved through the schema registry.

    Args:
        fields: The entry's fields: redis-py's dict or a flat [name, value, ...] list.
        registry: A client of the server holding the registry (or a SchemaCache).
        as_json: Return protobuf's JSON mapping of the message (a dict) instead of the
            message; a raw JSON entry (no `schema_id`) returns its JSON as parsed.
        prefix: The registry's key prefix (GRISTMILL_KEY_PREFIX).
        max_entry_bytes: Refuse larger entries and payloads (GRISTMILL_MAX_ENTRY_BYTES).

    Raises:
        DecodeError: With the reason a processor would dead-letter the entry for
            (`missing_field`, `unknown_schema`, `decode_error`, `json_invalid`, ...).
    """
    flat = flat_fields(fields)
    names = flat[::2]
    if as_json and SCHEMA_ID not in names and PAYLOAD in names:
        payload = flat[2 * names.index(PAYLOAD) + 1]
        try:
            parsed = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(reasons.JSON_INVALID, f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):  # as a JSON processor refuses it
            raise DecodeError(
                reasons.JSON_INVALID, f"a JSON {type(parsed).__name__}, not an object"
            )
        return parsed
    envelope = open_fields(flat, max_entry_bytes)
    cache = _cache_for(registry, prefix)
    if cache.get(envelope.schema_id) is None:
        try:
            await cache.recheck_misses((envelope.schema_id,))
            await cache.resolve(envelope.schema_id)
        except SchemaError as exc:  # unknown_schema, schema_invalid
            raise DecodeError(exc.reason, str(exc)) from None
    message = decode_envelope(envelope, cache)
    return to_json(message) if as_json else message


_ENVELOPE_FIELDS = frozenset({SCHEMA_ID, PAYLOAD, b"encoding"})


def _printable(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return "0x" + raw.hex()


async def entry_json(
    entry_id: str,
    fields: Mapping[Any, Any] | Sequence[bytes],
    registry: Redis | SchemaCache,
    *,
    prefix: str = keys.DEFAULT_PREFIX,
    max_entry_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """One entry as a JSON object: its id, its decoded message (or why it does not decode),
    and every other field as text (`h:` headers, `attempt`, `dl:` dead-letter fields, ...)."""
    flat = flat_fields(fields)
    line: dict[str, Any] = {"id": entry_id}
    names = flat[::2]
    if SCHEMA_ID in names:
        line["schema_id"] = _printable(flat[2 * names.index(SCHEMA_ID) + 1])
    try:
        line["message"] = await decode(
            flat, registry, as_json=True, prefix=prefix, max_entry_bytes=max_entry_bytes
        )
    except DecodeError as exc:
        line["error"] = {"reason": exc.reason, "detail": exc.detail}
    others = {
        _printable(name): _printable(value)
        for name, value in zip(flat[::2], flat[1::2], strict=False)
        if name not in _ENVELOPE_FIELDS
    }
    if others:
        line["fields"] = others
    return line


async def decoded_payloads(
    redis: Redis, settings: Settings, entries: Sequence[DeadEntry]
) -> list[dict[str, Any]]:
    """For each dead-letter entry, `{"message": <its payload as JSON>}` or `{"error": ...}`
    (why it does not decode), through the registry: what `runtime dlq show` prints."""
    cache = SchemaCache(SchemaRegistry(redis, settings.key_prefix))
    decoded: list[dict[str, Any]] = []
    for entry in entries:
        line = await entry_json(
            entry.entry_id, entry.record.fields, cache, prefix=settings.key_prefix,
            max_entry_bytes=settings.max_entry_bytes,
        )  # fmt: skip
        decoded.append({name: line[name] for name in ("message", "error") if name in line})
    return decoded
