"""Publishing from code that is not a processor: scripts, web handlers, tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill.connect import require_async_client
from gristmill.envelope import seal
from gristmill.keys import DEFAULT_PREFIX
from gristmill.pipeline.upkeep import Retention, trim
from gristmill.replication import DEFAULT_TIMEOUT_MS, add_wait, check_wait, replicated_xadd
from gristmill.schemas.registry import SchemaRegistry
from gristmill.telemetry import tracing
from gristmill.timing.delayed import DelayedStore

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.schemas.descriptors import MessageDescriptor
    from gristmill.settings import Settings


class Publisher:
    """Sends protobuf messages to streams in gristmill's wire format (registering schemas)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        compress_above: int = 4096,
        settings: Settings | None = None,
        replicas: int = 0,
        replica_timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        require_async_client(redis)  # h2: a sync client fails here, not at the first await
        # h8: replicas > 0: publish waits (WAIT) until that many replicas have it (replication.py)
        self.replicas, self.replica_timeout_ms = replicas, replica_timeout_ms
        self.redis = redis
        if settings is not None:
            prefix = settings.key_prefix  # the registry and the store under the same prefix
        self.registry = SchemaRegistry(redis, prefix)
        self.compress_above = compress_above
        self.store = (
            DelayedStore(redis, prefix=prefix)
            if settings is None
            else DelayedStore.from_settings(redis, settings)
        )
        self._ids: dict[MessageDescriptor, bytes] = {}

    async def schema_id(self, descriptor: MessageDescriptor) -> bytes:
        """The schema id of `descriptor`, registered on first use."""
        schema_id = self._ids.get(descriptor)
        if schema_id is None:
            registered = await self.registry.register(descriptor)
            schema_id = self._ids[descriptor] = registered.schema_id.encode()
        return schema_id

    async def fields(
        self, message: Message, *, key: str | None = None, headers: dict[str, str] | None = None
    ) -> list[bytes]:
        """The entry fields that carry `message`."""
        return seal(
            await self.schema_id(message.DESCRIPTOR),
            message.SerializeToString(),
            compress_above=self.compress_above,
            key=key.encode() if key is not None else None,
            headers=headers,
        )

    async def publish(
        self,
        stream: str,
        message: Message,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        maxlen: int | None = None,
        min_age: float | None = None,
    ) -> str:
        """XADD `message` to `stream`; returns the entry id.

        Args:
            stream: The target stream.
            message: Any protobuf message; its schema is registered on first use.
            key: An optional ordering / partition key carried in the entry.
            headers: Optional user headers (strings), readable as `ctx.headers`.

            maxlen: Then trim `stream` to about this many entries, with the guard processor
                outputs have: never an entry one of its groups has not delivered and acked.
            min_age: Then trim entries older than this many seconds, with the same guard.
                Each trim is one more script call: for a busy stream, trim every N publishes.

        Raises:
            ReplicationTimeout: With `replicas`, if fewer replicas had it in time.
        """
        fields = await self.fields(message, key=key, headers=headers)
        traced = tracing.publish_fields(stream)  # telemetry hook: the entry starts a trace
        if traced is not None:
            fields += traced[1]
        send = self.redis.execute_command
        try:
            if self.replicas:  # h8: XADD and WAIT on one connection
                entry_id = await replicated_xadd(
                    self.redis, stream, fields, self.replicas, self.replica_timeout_ms
                )
            else:
                entry_id = await send("XADD", stream, "*", *fields)  # type: ignore[no-untyped-call]
        finally:
            if traced is not None:
                traced[0].end()
        if maxlen or min_age:
            await trim(self.redis, stream, Retention(maxlen or 0, min_age or 0.0))
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def schedule(
        self,
        stream: str,
        message: Message,
        *,
        delay: float | None = None,
        at: datetime | float | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        execution_class: str = "",
    ) -> int:
        """XADD `message` to `stream` later: `delay` seconds from now, or `at` a time.

        It waits in the stream's delayed store and is swept in by the leader sweeper of any
        running gristmill runtime (never early; up to the store's bucket width late).

        Args:
            stream: The target stream.
            message: Any protobuf message; its schema is registered on first use.
            delay: Seconds from now.
            at: An aware datetime, or seconds since the epoch.
            key: An optional ordering / partition key carried in the entry.
            headers: Optional user headers (strings), readable as `ctx.headers`.
            execution_class: Release it into the lane `class_lane(stream, execution_class)`
                (e.g. "long") instead of `stream`, so long jobs never queue before short ones.

        Returns:
            The due time, in milliseconds since the epoch.

        Raises:
            ValueError: Unless exactly one of `delay` and `at` is given.
        """
        fields = await self.fields(message, key=key, headers=headers)
        return await self.store.publish(
            stream, fields, delay=delay, at=at, execution_class=execution_class
        )

    async def publish_many(self, stream: str, messages: Sequence[Message]) -> None:
        """XADD every message to `stream`, pipelined in chunks of 1,000.

        Raises:
            ReplicationTimeout: With `replicas`, if fewer replicas had a chunk in time.
        """
        for start in range(0, len(messages), 1000):
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in messages[start : start + 1000]:
                    pipe.execute_command("XADD", stream, "*", *await self.fields(message))
                if self.replicas:  # h8: one WAIT covers the chunk's writes
                    add_wait(pipe, self.replicas, self.replica_timeout_ms, self.redis, stream)
                replies = await pipe.execute()
            if self.replicas:
                check_wait(replies[-1], self.replicas, self.replica_timeout_ms)
