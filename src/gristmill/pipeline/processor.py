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
import random
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import anyio
from google.protobuf.message import Message

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK, Clock
from gristmill.context import Context
from gristmill.envelope import (
    ATTEMPT,
    FAILED_AT,
    ORIGIN,
    Envelope,
    open_fields,
    with_attempt,
    with_fields,
)
from gristmill.errors import DecodeError, HandlerSignal, ScriptError
from gristmill.failures.deadletter import build_fields
from gristmill.failures.policy import Decision, RetryAfter, ToDeadLetter, crash_loop, decide
from gristmill.pipeline.consume import Entry, Reader, ensure_groups
from gristmill.pipeline.decode import decode, resolve_unknown
from gristmill.pipeline.encode import encode, encode_one, returned_messages
from gristmill.pipeline.handle import BatchRunner
from gristmill.pipeline.publish import COMMIT, Commit
from gristmill.pipeline.resp import ReplyError, RespConnection, is_error
from gristmill.pipeline.upkeep import keep_claimed
from gristmill.timing.packing import pack_entry

if TYPE_CHECKING:
    import asyncio

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
    retried: int = 0  # failed entries parked in the delayed store for another run
    requeued: int = 0  # entries the handler asked to see again later (ctx.requeue)
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
    verdict: ToDeadLetter | None = None  # dead-lettered unrun (crash-loop cap)


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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.redis = redis
        self.settings = settings
        self.url = url
        self.cache = cache
        self.consumer = consumer
        self.stats = ProcessorStats()
        # each input, then the processor's own lane of each input (retries, requeues, replays)
        lanes = tuple(keys.retry_lane(stream, spec.group) for stream in spec.inputs)
        self.lanes = lanes
        self._origins = spec.inputs + spec.inputs  # stream index -> the input it belongs to
        self.reader = Reader(
            group=spec.group.encode(),
            consumer=consumer.encode(),
            streams=tuple(stream.encode() for stream in spec.inputs + lanes),
            count=spec.batch or settings.batch,
            block_ms=settings.block_ms,
        )
        self._read_command = self.reader.read_command()
        self._outputs = tuple(stream.encode() for stream in spec.outputs)
        self._allowed = spec.publishable
        self._dead_lanes = tuple(keys.dead_lane(s, spec.group).encode() for s in self._origins)
        self._own_stores = tuple(keys.delayed_store(lane).encode() for lane in lanes + lanes)
        self._wake_channel = keys.delayed_wake(settings.key_prefix).encode()
        self._bucket_ms = settings.delayed_bucket_ms if settings.delayed_layout == "buckets" else 0
        self._policy = spec.retry
        self._random = random.Random()
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
            self.url,
            connect_timeout=self.settings.connect_timeout,
            reply_timeout=self.settings.socket_timeout,  # set-up, groups, claims: never hang
            name=f"gristmill:{self.spec.group}:{role}",
        )
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
        inputs = len(self.spec.inputs)
        group = self.reader.group
        await ensure_groups(reads, self.reader.streams[:inputs], group, self.spec.from_beginning)
        await ensure_groups(reads, self.reader.streams[inputs:], group, from_beginning=True)
        await commits.call(b"SCRIPT", b"LOAD", COMMIT.source)
        self._recovered()
        self.ready.set()
        # entries this consumer name holds from before (a reconnect) come first
        entries = self.reader.parse(await reads.call_packed(self.reader.own_pending_command()))
        in_flight: _SentCommit | None = None
        while True:
            if not self._stopping and time.monotonic() >= self._next_reclaim:
                # settle first: our own unacked entries look idle to the reclaim, and running
                # them again before a refused commit is noticed would repeat its outputs
                if in_flight is not None:
                    await self._settle(commits, in_flight)
                    in_flight = None
                fresh, suspects = await self._reclaim(reads)
                entries += fresh
                if suspects:
                    await self._process_suspects(reads, commits, suspects)
            next_read = None if self._stopping else self._start_read(reads)
            if entries:
                sent = await self._process(commits, entries)
                if in_flight is not None:
                    await self._settle(commits, in_flight)
                in_flight = sent
            elif in_flight is not None:  # nothing new came: check the last commit now
                await self._settle(commits, in_flight)
                in_flight = None
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
        if is_error(reply):
            # the script checks ACL, key types and memory before its first write, so a
            # refusal wrote nothing; a retry would only be refused again, so stop instead
            raise CommitRefused(
                f"{self.spec.name}: the server refused a commit ({reply}); it wrote nothing, "
                "and this process stops so that it does not retry it forever. Check the ACL "
                "of this user (XADD, XACK, EVALSHA, RPUSH, ZADD), the keys' types and the "
                "server's maxmemory; another replica may take the entries over meanwhile"
            )
        skipped = reply[1:]
        if skipped:
            self.stats.skipped += len(skipped)
            log.warning(
                "%d entries were claimed by another consumer before our commit; their "
                "outputs were dropped (that consumer publishes them)", len(skipped),
                extra={"processor": self.spec.name},
            )  # fmt: skip

    async def _reclaim(
        self, connection: RespConnection
    ) -> tuple[list[Entry], list[tuple[int, bytes, int]]]:
        """Entries of silent consumers: first-time ones claimed now, repeat ones to claim singly.

        An entry delivered before, and still not acked, may be what killed its worker. Claiming
        a whole batch of them would count a delivery against every innocent entry beside it, so
        those are claimed and committed one at a time (`_process_suspects`): only the poison
        entry climbs to the crash-loop cap.
        """
        self._next_reclaim = time.monotonic() + self._claim_idle_ms / 2000
        idle = await self.reader.idle_pending(connection, self._claim_idle_ms)
        first_time: dict[int, dict[bytes, int]] = {}
        suspects = []
        for index, entry_id, deliveries in idle:
            if deliveries <= 1:
                first_time.setdefault(index, {})[entry_id] = deliveries
            else:
                suspects.append((index, entry_id, deliveries))
        claimed: list[Entry] = []
        for index, counts in first_time.items():
            entries, deleted = await self.reader.claim(
                connection, index, list(counts), self._claim_idle_ms, counts
            )
            claimed += entries
            self._report_deleted(deleted)
        if claimed or suspects:
            self.stats.reclaimed += len(claimed)
            log.info(
                "reclaimed %d entries idle for over %d ms (%d more to retry one by one)",
                len(claimed), self._claim_idle_ms, len(suspects),
                extra={"processor": self.spec.name, "group": self.spec.group},
            )  # fmt: skip
        return claimed, suspects

    async def _process_suspects(
        self,
        reads: RespConnection,
        commits: RespConnection,
        suspects: list[tuple[int, bytes, int]],
    ) -> None:
        for index, entry_id, deliveries in suspects:
            claimed, deleted = await self.reader.claim(
                reads, index, [entry_id], self._claim_idle_ms, {entry_id: deliveries}
            )
            self._report_deleted(deleted)
            if claimed:
                self.stats.reclaimed += 1
                sent = await self._process(commits, claimed)
                if sent is not None:
                    await self._settle(commits, sent)

    def _report_deleted(self, deleted: list[bytes]) -> None:
        if deleted:
            self.stats.lost_deleted += len(deleted)
            log.error(
                "%d pending entries were deleted from the stream before being acked (trimmed "
                "or XDEL'd): they are lost; first ids %s",
                len(deleted), [d.decode() for d in deleted[:5]],
                extra={"processor": self.spec.name, "group": self.spec.group},
            )  # fmt: skip

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
        payload = commit.pack(
            self.reader.group, self.reader.consumer, self._wake_channel, self._bucket_ms
        )
        return _SentCommit(payload, commits.send_packed(payload))

    async def _keep_claimed(self, entries: list[Entry]) -> None:
        """While a batch is in handlers, keep its entries from being claimed by others."""
        interval = self._claim_idle_ms / 3000
        by_stream: dict[str, list[bytes]] = {}
        for index, entry_id, _, _ in entries:  # an input or an own lane
            by_stream.setdefault(self.reader.streams[index].decode(), []).append(entry_id)
        while True:
            await anyio.sleep(interval)
            for stream, entry_ids in by_stream.items():
                try:
                    await keep_claimed(
                        self.redis, stream, self.spec.group, self.consumer, entry_ids
                    )
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
            # opened first all the same: its record keeps the origin and history it carries
            slot.verdict = crash_loop(slot.entry[3], self._policy)
            if slot.verdict is not None:
                continue  # it killed workers before: do not run it again
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
            if late is None or slot.verdict is not None or late.schema_id not in unknown:
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
            self.spec.name, self._allowed, self._origins[index], entry_id.decode(),
            envelope.attempt + deliveries - 1, envelope.headers,
        )  # fmt: skip
        slot.context = context
        try:
            if self.spec.timeout is None:
                slot.result = await self.spec.handler(slot.message, context)
            else:
                with anyio.fail_after(self.spec.timeout):
                    slot.result = await self.spec.handler(slot.message, context)
        except (Exception, HandlerSignal) as exc:  # noqa: BLE001 - a handler's crash is data here
            slot.failure = exc

    async def _build_commit(self, slots: list[_Slot]) -> Commit:
        commit = Commit()
        streams = self.reader.streams
        published = 0
        now_ms = self.clock.now_ms()
        for slot in slots:
            index, entry_id, fields, _ = slot.entry
            if slot.failure is None and slot.verdict is None:
                try:
                    outputs = await self._encode(slot)
                except Exception as exc:  # noqa: BLE001 - a bad return value fails its entry
                    slot.failure = exc
                else:
                    delay = slot.context._requeue_delay if slot.context else None
                    again = None
                    if delay is not None:
                        due_ms = now_ms + round(delay * 1000)
                        member = pack_entry(with_attempt(fields, 1))
                        again = [(self._own_stores[index], due_ms, member)]
                        self.stats.requeued += 1
                    commit.entry(streams[index], entry_id, outputs, again)
                    published += len(outputs)
                    continue
            self._fail(commit, slot, now_ms)
        self.stats.handled += len(commit)
        self.stats.published += published
        return commit

    async def _encode(self, slot: _Slot) -> list[tuple[bytes, list[bytes]]]:
        result = slot.result
        compress_above = self.settings.compress_above
        if isinstance(result, Message) and not (slot.context and slot.context._outputs):
            fields = encode_one(self.cache, result, compress_above)
            if fields is not None:  # one message, a known type: most handlers, every time
                return [(stream, fields) for stream in self._outputs]
        messages = returned_messages(result, self.spec.name)
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

    def _fail(self, commit: Commit, slot: _Slot, now_ms: int) -> None:
        """Retry the entry later through the delayed store, or dead-letter it, per the policy."""
        index, entry_id, fields, deliveries = slot.entry
        envelope = slot.envelope
        attempt = envelope.attempt + deliveries - 1 if envelope else deliveries
        # a retry keeps naming the input entry it came from, and when it first failed
        origin = (envelope.origin if envelope else None) or b"%s/%s" % (
            self._origins[index].encode(), entry_id,
        )  # fmt: skip
        first_failure_ms = (envelope.failed_at if envelope else None) or now_ms
        failure = slot.failure
        decision: Decision
        if slot.verdict is not None:
            decision = slot.verdict
        else:
            assert isinstance(failure, Exception)
            decision = decide(failure, attempt, self._policy, self._random.random())
        input_key = self.reader.streams[index]
        if isinstance(decision, RetryAfter):
            retry = {
                ATTEMPT: str(decision.next_attempt).encode(),
                ORIGIN: origin,
                FAILED_AT: str(first_failure_ms).encode(),
            }
            member = pack_entry(with_fields(fields, retry))
            due = [(self._own_stores[index], now_ms + decision.delay_ms, member)]
            commit.entry(input_key, entry_id, [], due)
            self.stats.retried += 1
            log.info(
                "attempt %d failed (%s: %s); retry in %d ms", attempt,
                type(failure).__name__, failure, decision.delay_ms,
                extra={"processor": self.spec.name, "entry_id": entry_id.decode()},
            )  # fmt: skip
            return
        reason = decision.reason
        self.stats.errors_by_reason[reason] = self.stats.errors_by_reason.get(reason, 0) + 1
        if slot.verdict is not None:
            runs = attempt - 1  # it crashed its workers that often; it was not run again
        elif slot.message is None:
            runs = envelope.attempt - 1 if envelope else 0  # bad input: never reached the handler
        else:
            runs = attempt
        origin_stream, _, origin_id = origin.decode(errors="replace").rpartition("/")
        dead = build_fields(
            fields, reason=reason, origin_stream=origin_stream, origin_id=origin_id,
            attempts=runs, first_failure_ms=first_failure_ms, last_failure_ms=now_ms,
            exc=failure, message=decision.detail,
        )  # fmt: skip
        commit.entry(input_key, entry_id, [(self._dead_lanes[index], dead)])
        self.stats.dead_lettered += 1
        log.warning(
            "entry dead-lettered after %d runs: %s (%s)", runs, reason,
            decision.detail or failure,
            extra={"processor": self.spec.name, "entry_id": entry_id.decode()},
        )  # fmt: skip


class CommitRefused(ScriptError):
    """Raised when the server refuses a commit script midway: the processor stops."""

    reason = "commit_refused"


def _ok(reply: Any) -> Any:
    if is_error(reply):
        raise ReplyError(str(reply))
    return reply
