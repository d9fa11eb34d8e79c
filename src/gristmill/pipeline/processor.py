"""One processor's loop: read a batch, decode, handle, encode, commit; reclaim; recover.

Two connections per processor overlap the client's work with the server's:

    reads:    XREADGROUP k+1 (prefetched)      XREADGROUP k+2 ...
    client:   [handle batch k ]  [handle batch k+1 ]  ...
    commits:                   EVALSHA k          EVALSHA k+1 ...

The next batch is requested before this one is handled, and a batch's commit is sent without
waiting for its reply before handling the next one: the commit's reply is checked one batch
later. Entries of dead consumers are reclaimed in the same loop every `claim_idle / 2` seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio

from gristmill import keys
from gristmill.context import Context
from gristmill.envelope import Envelope, open_fields
from gristmill.errors import DeadLetter, DecodeError, HandlerSignal
from gristmill.pipeline.consume import Entry, Reader, ensure_groups
from gristmill.pipeline.decode import decode, resolve_unknown
from gristmill.pipeline.encode import encode, returned_messages
from gristmill.pipeline.handle import BatchRunner
from gristmill.pipeline.publish import COMMIT, Commit
from gristmill.pipeline.resp import ReplyError, RespConnection, is_error
from gristmill.pipeline.upkeep import keep_claimed

if TYPE_CHECKING:
    import asyncio

    from google.protobuf.message import Message
    from redis.asyncio import Redis

    from gristmill.app import ProcessorSpec
    from gristmill.schemas.cache import SchemaCache
    from gristmill.settings import Settings

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass
class ProcessorStats:
    """Counters of one processor since start; read by health and metrics."""

    batches: int = 0
    handled: int = 0
    published: int = 0
    dead_lettered: int = 0
    left_pending: int = 0  # failed entries left for redelivery
    skipped: int = 0  # claimed by another consumer before our commit
    reclaimed: int = 0
    lost_deleted: int = 0  # pending entries deleted from the stream before anyone acked them
    incidents: int = 0
    last_error: str = ""
    errors_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Slot:
    """One entry of a batch on its way through the stages."""

    entry: Entry
    envelope: Envelope | None = None
    message: Message | None = None
    context: Context | None = None
    result: object = None
    failure: BaseException | None = None


@dataclass(slots=True)
class _SentCommit:
    """A commit on the wire; its reply is checked one batch later."""

    payload: bytes
    reply: asyncio.Future[Any]


class ProcessorLoop:
    """Runs one declared processor until `stop()`; survives server trouble."""

    def __init__(
        self,
        spec: ProcessorSpec,
        settings: Settings,
        url: str,
        cache: SchemaCache,
        consumer: str,
        redis: Redis,
    ) -> None:
        self.spec = spec
        self.redis = redis
        self.settings = settings
        self.url = url
        self.cache = cache
        self.consumer = consumer
        self.stats = ProcessorStats()
        self.reader = Reader(
            group=spec.group.encode(),
            consumer=consumer.encode(),
            streams=tuple(stream.encode() for stream in spec.inputs),
            count=spec.batch or settings.batch,
            block_ms=settings.block_ms,
        )
        self._read_command = self.reader.read_command()
        self._outputs = tuple(stream.encode() for stream in spec.outputs)
        self._allowed = spec.publishable
        self._dead_lanes = tuple(keys.dead_lane(s, spec.group).encode() for s in spec.inputs)
        self._claim_idle_ms = round((spec.claim_idle or settings.claim_idle) * 1000)
        self._read_timeout = settings.block_ms / 1000 + settings.socket_timeout
        self._runner = BatchRunner(spec.concurrency or settings.concurrency)
        self._connections: list[RespConnection] = []
        self._reads: RespConnection | None = None
        self._stopping = False
        self._reading = False
        self._cursors = [b"0-0"] * len(self.reader.streams)
        self._next_reclaim = 0.0
        self._incident_since: float | None = None
        self._incident_retries = 0
        self.ready = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Process batches until `stop()`, then finish the batches in hand and return."""
        async with anyio.create_task_group() as helpers:
            self._runner.start_helpers(helpers)
            try:
                while not self._stopping:
                    try:
                        await self._run_connected()
                    except (ConnectionError, OSError, TimeoutError, ReplyError) as exc:
                        await self._incident(exc)
            finally:
                helpers.cancel_scope.cancel()
                with anyio.move_on_after(1.0, shield=True):
                    await self._close_connections()

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return (drain)."""
        self._stopping = True

    @property
    def reading_client_id(self) -> int | None:
        """The connection id blocked in XREADGROUP right now (for CLIENT UNBLOCK), if any."""
        if self._reading and self._reads is not None:
            return self._reads.client_id
        return None

    async def _open(self, role: str) -> RespConnection:
        connection = await RespConnection.open(
            self.url, connect_timeout=self.settings.connect_timeout,
            name=f"gristmill:{self.spec.group}:{role}",
        )  # fmt: skip
        self._connections.append(connection)
        return connection

    async def _close_connections(self) -> None:
        connections, self._connections, self._reads = self._connections, [], None
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()

    async def _run_connected(self) -> None:
        reads = self._reads = await self._open("read")
        commits = await self._open("commit")
        await ensure_groups(reads, self.reader.streams, self.reader.group, self.spec.from_beginning)
        await commits.call(b"SCRIPT", b"LOAD", COMMIT.source)
        self._recovered()
        self.ready.set()
        # entries this consumer name holds from before (a reconnect) come first
        entries = self.reader.parse(await reads.call_packed(self.reader.own_pending_command()))
        in_flight: _SentCommit | None = None
        while True:
            if not self._stopping and time.monotonic() >= self._next_reclaim:
                entries += await self._reclaim(reads)
            next_read = None if self._stopping else self._start_read(reads)
            if entries:
                sent = await self._process(commits, entries)
                if in_flight is not None:
                    await self._settle(commits, in_flight)
                in_flight = sent
            if next_read is None:
                break
            try:
                with anyio.fail_after(self._read_timeout):
                    entries = self.reader.parse(_ok(await next_read))
            finally:
                self._reading = False
        if in_flight is not None:
            await self._settle(commits, in_flight)

    def _start_read(self, reads: RespConnection) -> asyncio.Future[Any]:
        self._reading = True
        return reads.send_packed(self._read_command)

    async def _settle(self, commits: RespConnection, sent: _SentCommit) -> None:
        with anyio.fail_after(self.settings.socket_timeout):
            reply = await sent.reply
            if is_error(reply) and str(reply).startswith("NOSCRIPT"):
                await commits.call(b"SCRIPT", b"LOAD", COMMIT.source)  # the server restarted
                reply = await commits.call_packed(sent.payload)
        skipped = _ok(reply)[1:]
        if skipped:
            self.stats.skipped += len(skipped)
            log.warning(
                "%d entries were claimed by another consumer before our commit; their "
                "outputs were dropped (that consumer publishes them)", len(skipped),
                extra={"processor": self.spec.name},
            )  # fmt: skip

    async def _reclaim(self, connection: RespConnection) -> list[Entry]:
        self._next_reclaim = time.monotonic() + self._claim_idle_ms / 2000
        claimed, deleted = await self.reader.reclaim(connection, self._claim_idle_ms, self._cursors)
        if deleted:
            self.stats.lost_deleted += len(deleted)
            log.error(
                "%d pending entries were deleted from the stream before being acked (trimmed "
                "or XDEL'd): they are lost; first ids %s",
                len(deleted), [d.decode() for d in deleted[:5]],
                extra={"processor": self.spec.name, "group": self.spec.group},
            )  # fmt: skip
        if claimed:
            self.stats.reclaimed += len(claimed)
            log.info(
                "reclaimed %d entries idle for over %d ms", len(claimed), self._claim_idle_ms,
                extra={"processor": self.spec.name, "group": self.spec.group},
            )  # fmt: skip
        return claimed

    async def _incident(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        await self._close_connections()
        if isinstance(exc, ReplyError) and exc.code == "NOGROUP":
            # the stream or group was deleted (FLUSHALL, DEL, a server without persistence):
            # recreate it at 0 so entries added since the stream came back are not skipped
            log.error(
                "consumer group %s is gone (%s); recreating it from the stream's start",
                self.spec.group, exc, extra={"processor": self.spec.name},
            )  # fmt: skip
            self.spec = replace(self.spec, from_beginning=True)
        if self._incident_since is None:  # logged once per incident, not once per retry
            self._incident_since = time.monotonic()
            self._incident_retries = 0
            self.stats.incidents += 1
            log.warning(
                "server trouble, retrying with backoff: %s", self.stats.last_error,
                extra={"processor": self.spec.name},
            )  # fmt: skip
        pause = RECONNECT_BACKOFF_S[min(self._incident_retries, len(RECONNECT_BACKOFF_S) - 1)]
        self._incident_retries += 1
        await anyio.sleep(pause)

    def _recovered(self) -> None:
        if self._incident_since is not None:
            log.warning(
                "recovered after %.1f s", time.monotonic() - self._incident_since,
                extra={"processor": self.spec.name},
            )  # fmt: skip
            self._incident_since = None

    # -- one batch ---------------------------------------------------------------------------

    async def _process(self, commits: RespConnection, entries: list[Entry]) -> _SentCommit | None:
        """Decode, handle and encode `entries`; send their commit (its reply is not awaited)."""
        slots = [_Slot(entry) for entry in entries]
        await self._decode(slots)
        runnable = [slot for slot in slots if slot.message is not None]
        async with anyio.create_task_group() as group:
            # sleeps through fast batches (cancelled at the end, it never runs)
            group.start_soon(self._keep_claimed, [slot.entry for slot in runnable])
            await self._runner.run(len(runnable), lambda index: self._handle(runnable[index]))
            group.cancel_scope.cancel()
        commit = await self._build_commit(slots)
        self.stats.batches += 1
        if not len(commit):
            return None
        payload = commit.pack(self.reader.group, self.reader.consumer)
        return _SentCommit(payload, commits.send_packed(payload))

    async def _keep_claimed(self, entries: list[Entry]) -> None:
        """While a batch is in handlers, keep its entries from being claimed by others."""
        interval = self._claim_idle_ms / 3000
        by_stream: dict[int, list[bytes]] = {}
        for index, entry_id, _, _ in entries:
            by_stream.setdefault(index, []).append(entry_id)
        while True:
            await anyio.sleep(interval)
            for index, entry_ids in by_stream.items():
                try:
                    await keep_claimed(
                        self.redis, self.spec.inputs[index], self.spec.group, self.consumer,
                        entry_ids,
                    )  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - best effort; the commit decides
                    log.warning(
                        "could not refresh in-flight entries: %s", exc,
                        extra={"processor": self.spec.name},
                    )  # fmt: skip

    async def _decode(self, slots: list[_Slot]) -> None:
        max_bytes = self.settings.max_entry_bytes
        cache = self.cache
        unknown: set[bytes] = set()
        for slot in slots:
            try:
                slot.envelope = envelope = open_fields(slot.entry[2], max_bytes)
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
        if not unknown:
            return
        failed = await resolve_unknown(cache, unknown)  # one fetch per new schema id
        for slot in slots:
            late = slot.envelope
            if late is None or late.schema_id not in unknown:
                continue
            problem = failed.get(late.schema_id)
            try:
                if problem is not None:
                    raise DecodeError(problem.reason, str(problem))
                slot.message = decode(late, cache)
            except DecodeError as exc:
                slot.failure = exc

    async def _handle(self, slot: _Slot) -> None:
        index, entry_id, _, deliveries = slot.entry
        envelope = slot.envelope
        assert envelope is not None
        assert slot.message is not None
        context = Context(
            self.spec.name, self._allowed, self.spec.inputs[index], entry_id.decode(),
            envelope.attempt + deliveries - 1, envelope.headers,
        )  # fmt: skip
        slot.context = context
        try:
            slot.result = await self.spec.handler(slot.message, context)
        except (Exception, HandlerSignal) as exc:  # noqa: BLE001 - a handler's crash is data here
            slot.failure = exc

    async def _build_commit(self, slots: list[_Slot]) -> Commit:
        commit = Commit()
        streams = self.reader.streams
        published = 0
        for slot in slots:
            index, entry_id, _, _ = slot.entry
            if slot.failure is None:
                try:
                    outputs = await self._encode(slot)
                except Exception as exc:  # noqa: BLE001 - a bad return value fails its entry
                    slot.failure = exc
                else:
                    commit.entry(streams[index], entry_id, outputs)
                    published += len(outputs)
                    continue
            self._fail(commit, slot)
        self.stats.handled += len(commit)
        self.stats.published += published
        return commit

    async def _encode(self, slot: _Slot) -> list[tuple[bytes, list[bytes]]]:
        messages = returned_messages(slot.result, self.spec.name)
        compress_above = self.settings.compress_above
        try:
            return encode(self.cache, messages, self._outputs, slot.context, compress_above)
        except LookupError:  # a message type this process has not registered yet
            await self._register_types(slot, messages)
            return encode(self.cache, messages, self._outputs, slot.context, compress_above)

    async def _register_types(self, slot: _Slot, messages: Any) -> None:
        extra = [m for _, m in slot.context._outputs] if slot.context else []
        for message in [*messages, *extra]:
            if self.cache.cached_id(message.DESCRIPTOR) is None:
                await self.cache.id_for(message.DESCRIPTOR)

    def _fail(self, commit: Commit, slot: _Slot) -> None:
        index, entry_id, fields, _ = slot.entry
        failure = slot.failure
        reason = failure.reason if isinstance(failure, DecodeError | DeadLetter) else None
        label = reason or type(failure).__name__
        self.stats.errors_by_reason[label] = self.stats.errors_by_reason.get(label, 0) + 1
        if reason is not None:
            dead = [*fields, b"dl:reason", reason.encode(), b"dl:detail", str(failure).encode()]
            commit.entry(self.reader.streams[index], entry_id, [(self._dead_lanes[index], dead)])
            self.stats.dead_lettered += 1
            log.warning(
                "entry dead-lettered: %s", reason,
                extra={"processor": self.spec.name, "entry_id": entry_id.decode()},
            )  # fmt: skip
            return
        # left pending: another consumer (or this one) reclaims it after claim_idle
        self.stats.left_pending += 1
        log.warning(
            "handler failed, entry left for redelivery: %s: %s", type(failure).__name__, failure,
            extra={"processor": self.spec.name, "entry_id": entry_id.decode()},
        )  # fmt: skip


def _ok(reply: Any) -> Any:
    if is_error(reply):
        raise ReplyError(str(reply))
    return reply
