"""Typed views of redis-py replies for tests (its stubs type replies as loose unions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def xrange(redis: Redis, stream: str, count: int | None = None) -> Entries:
    """The entries of `stream`, oldest first, fields as a dict."""
    return cast("Entries", await redis.xrange(stream, count=count))


async def raw(redis: Redis, *args: Any) -> Any:
    """Run a command as given (a bytes name skips redis-py's reply callback)."""
    send = redis.execute_command
    return await send(*args)  # type: ignore[no-untyped-call]
