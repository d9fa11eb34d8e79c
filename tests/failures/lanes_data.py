"""Dead-letter entries for the lane and CLI tests, written the way the processor writes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill import keys
from gristmill.failures.deadletter import build_fields

if TYPE_CHECKING:
    import redis as sync_redis
    from redis.asyncio import Redis


def original(n: int) -> list[bytes]:
    """A plausible input entry carrying its sequence number `n` in a header."""
    return [b"schema_id", b"\x01" * 16, b"payload", bytes([8, n % 128]), b"h:n", str(n).encode()]


def dead_fields(n: int, reason: str, *, fields: list[bytes] | None = None) -> list[bytes]:
    try:
        raise ValueError(f"entry {n} is bad")
    except ValueError as exc:
        return build_fields(
            original(n) if fields is None else fields, reason=reason, origin_stream="orders",
            origin_id=f"{n}-0", attempts=3, first_failure_ms=1_000 * n,
            last_failure_ms=1_000 * n + 500, exc=exc,
        )  # fmt: skip


async def add_dead(
    redis: Redis, n: int, reason: str, *, stream: str = "orders", group: str = "billing",
    fields: list[bytes] | None = None,
) -> str:  # fmt: skip
    """XADD one dead-letter entry (as raw items: field order and repeats are kept)."""
    entry_id = await redis.execute_command(  # type: ignore[no-untyped-call]
        "XADD", keys.dead_lane(stream, group), "*", *dead_fields(n, reason, fields=fields)
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def add_dead_sync(
    redis: sync_redis.Redis, n: int, reason: str, *, stream: str = "orders",
    group: str = "billing",
) -> str:  # fmt: skip
    """`add_dead` for synchronous tests (the CLI runs its own event loop)."""
    entry_id = redis.execute_command(  # type: ignore[no-untyped-call]
        "XADD", keys.dead_lane(stream, group), "*", *dead_fields(n, reason)
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def xadd_sync(redis: sync_redis.Redis, key: str, *items: str | bytes) -> str:
    """XADD raw items to `key`; the new entry id."""
    entry_id = redis.execute_command("XADD", key, "*", *items)  # type: ignore[no-untyped-call]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def entries_sync(redis: sync_redis.Redis, key: str) -> list[tuple[str, list[bytes]]]:
    """Every entry of `key` as (id, raw field items), field order and repeats kept."""
    reply = redis.execute_command(b"XRANGE", key, "-", "+")  # type: ignore[no-untyped-call]
    return [(entry_id.decode(), fields) for entry_id, fields in reply]
