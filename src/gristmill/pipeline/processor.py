"""One processor's loop: read a batch, decode, handle, encode, commit; reclaim; recover.

Each processor has its own connection (its XREADGROUP blocks). Per batch there are two round
trips: one read, one commit script carrying every output and ack. Reclaiming entries of dead
consumers happens in the same loop every `claim_idle / 2` seconds.
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
from gristmill.pipeline.encode import descriptors_to_register, encode, returned_messages
from gristmill.pipeline.handle import BatchRunner
from gristmill.pipeline.publish import Commit
from gristmill.pipeline.resp import ReplyError, RespConnection

if TYPE_CHECKING:
    from google.protobuf.message import Message

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
    skipped: int = 0  # claimed away by another consumer before our commit
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


class ProcessorLoop:
    """Runs one declared processor until `stop()`; survives server trouble."""

    def __init__(
        self,
        spec: ProcessorSpec,
        settings: Settings,
        url: str,
        cache: SchemaCache,
        consumer: str,
    ) -> None:
        self.spec = spec
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
        self._allowed = frozenset(spec.outputs)
        self._dead_lanes = tuple(keys.dead_lane(s, spec.group).encode() for s in spec.inputs)
        self._claim_idle_ms = round((spec.claim_idle or settings.claim_idle) * 1000)
        self._runner = BatchRunner(spec.concurrency or settings.concurrency)
        self._connection: RespConnection | None = None
        self._stopping = False
        self._reading = False
        self._cursors = [b"0-0"] * len(self.reader.streams)
        self._next_reclaim = 0.0
        self._incident_since: float | None = None
        self._incident_retries = 0
        self.ready = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Process batches until `stop()`, then finish the batch in hand and return."""
        async with anyio.create_task_group() as helpers:
            self._runner.start_helpers(helpers)
            try:
                while not self._stopping:
                    try:
                        await self._run_connected()
                    except (ConnectionError, OSError, TimeoutError, ReplyError) as exc:
                        await self._incident(exc)
            finally:
                if self._connection is not None:
                    self._connection.close()
                helpers.cancel_scope.cancel()

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return (drain)."""
        self._stopping = True

    @property
    def reading_client_id(self) -> int | None:
        """The connection id blocked in XREADGROUP right now (for CLIENT UNBLOCK), if any."""
        if self._reading and self._connection is not None:
            return self._connection.client_id
        return None

    async def _run_connected(self) -> None:
        connection = await RespConnection.open(
            self.url, connect_timeout=self.settings.connect_timeout,
            name=f"gristmill:{self.spec.group}",
        )  # fmt: skip
        self._connection = connection
        await ensure_groups(
            connection, self.reader.streams, self.reader.group, self.spec.from_beginning
        )
        self._recovered()
        self.ready.set()
        # entries this consumer name held before (a restart of the same process) come first
        own = self.reader.parse(await connection.call_packed(self.reader.own_pending_command()))
        if own:
            await self._process(connection, own)
        while not self._stopping:
            if time.monotonic() >= self._next_reclaim:
                await self._reclaim(connection)
            self._reading = True
            try:
                with anyio.fail_after(self.settings.block_ms / 1000 + self.settings.socket_timeout):
                    reply = await connection.call_packed(self._read_command)
            finally:
                self._reading = False
            entries = self.reader.parse(reply)
            if entries:
                await self._process(connection, entries)

    async def _reclaim(self, connection: RespConnection) -> None:
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
            await self._process(connection, claimed)

    async def _incident(self, exc: BaseException) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._connection is not None:
            self._connection.close()
            self._connection = None
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

    async def _process(self, connection: RespConnection, entries: list[Entry]) -> None:
        slots = [_Slot(entry) for entry in entries]
        await self._decode(slots)
        runnable = [slot for slot in slots if slot.message is not None]
        await self._runner.run(len(runnable), lambda index: self._handle(runnable[index]))
        commit = await self._build_commit(slots)
        if len(commit):
            skipped = await commit.send(connection, self.reader.group, self.reader.consumer)
            self.stats.skipped += len(skipped)
            if skipped:
                log.warning(
                    "%d entries were claimed by another consumer before our commit; their "
                    "outputs were dropped (the other consumer publishes them)", len(skipped),
                    extra={"processor": self.spec.name},
                )  # fmt: skip
        self.stats.batches += 1

    async def _decode(self, slots: list[_Slot]) -> None:
        max_bytes = self.settings.max_entry_bytes
        unknown: set[bytes] = set()
        for slot in slots:
            try:
                slot.envelope = envelope = open_fields(slot.entry[2], max_bytes)
            except DecodeError as exc:
                slot.failure = exc
                continue
            if self.cache.get(envelope.schema_id) is None:
                unknown.add(envelope.schema_id)
        failed = await resolve_unknown(self.cache, unknown) if unknown else {}
        for slot in slots:
            envelope = slot.envelope
            if envelope is None:
                continue
            problem = failed.get(envelope.schema_id)
            if problem is not None:
                slot.failure = DecodeError(problem.reason, str(problem))
                continue
            try:
                slot.message = decode(envelope, self.cache)
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
        returned: list[tuple[_Slot, Any]] = []
        for slot in slots:
            if slot.failure is None:
                try:
                    returned.append((slot, returned_messages(slot.result, self.spec.name)))
                except Exception as exc:  # noqa: BLE001 - a bad return value fails its entry
                    slot.failure = exc
        pending_types = set()
        for slot, messages in returned:
            pending_types |= descriptors_to_register(self.cache, messages)
            if slot.context is not None and slot.context._outputs:
                pending_types |= descriptors_to_register(
                    self.cache, [m for _, m in slot.context._outputs]
                )
        for descriptor in pending_types:
            await self.cache.id_for(descriptor)
        commit = Commit()
        compress_above = self.settings.compress_above
        streams = self.reader.streams
        for slot in slots:
            index, entry_id, _fields, _ = slot.entry
            if slot.failure is None:
                messages = returned_messages(slot.result, self.spec.name)
                outputs = encode(self.cache, messages, self._outputs, slot.context, compress_above)
                commit.entry(streams[index], entry_id, outputs)
                self.stats.handled += 1
                self.stats.published += len(outputs)
            else:
                self._fail(commit, slot)
        return commit

    def _fail(self, commit: Commit, slot: _Slot) -> None:
        index, entry_id, fields, _ = slot.entry
        failure = slot.failure
        reason = (
            getattr(failure, "reason", None)
            if isinstance(failure, DecodeError | DeadLetter)
            else None
        )
        self.stats.errors_by_reason[reason or type(failure).__name__] = (
            self.stats.errors_by_reason.get(reason or type(failure).__name__, 0) + 1
        )
        if reason is not None:
            dead = fields + [
                b"dl:reason",
                reason.encode(),
                b"dl:detail",
                str(failure).encode()[:2000],
            ]
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
