"""One processor's loop: the choreography of its stages; each stage lives in its own module.

    consume.py   read a batch (XREADGROUP), parse entries
    reclaim.py   entries of silent consumers, claimed every claim_idle / 2
    decode.py    open envelopes, crash-loop cap, resolve schemas, parse payloads
    handle.py    run handlers (bounded concurrency), keep in-flight entries claimed
    encode.py    the batch -> its commit: outputs encoded (new types registered), failures routed
    failures/route.py   a failed entry -> a retry parked or a dead letter
    publish.py   the commit: every output and ack of the batch in one script call
    session.py   connections, incidents and backoff
    cluster.py   on Redis Cluster: the home slot, outputs of other slots, redirects
    parking.py   idle: a last look, then no connection until the process's watcher wakes it

Two connections per processor overlap the client's work with the server's:

    reads:    XREADGROUP k+1 (prefetched)      XREADGROUP k+2 ...
    client:   [handle batch k ]  [handle batch k+1 ]  ...
    commits:                   EVALSHA k          EVALSHA k+1 ...

The next batch is requested before this one is handled, and a batch's commit is sent without
waiting for its reply before handling the next one: the commit's reply is checked one batch
later, or as soon as a read brings nothing, and always before a reclaim (the reclaim sees this
consumer's own unacked entries as idle too). A loop that found nothing several reads in a row
parks: it closes both connections until an entry arrives for it (parking.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio

from gristmill import keys
from gristmill.clock import SYSTEM_CLOCK, Clock
from gristmill.connect import is_cluster_url
from gristmill.errors import ReplyError
from gristmill.failures.route import FailureRouter
from gristmill.pipeline import cluster
from gristmill.pipeline.batch import ProcessorStats
from gristmill.pipeline.consume import Entry, Idling, Reader, ensure_groups, read_reply
from gristmill.pipeline.decode import decode_batch
from gristmill.pipeline.encode import BatchEncoder
from gristmill.pipeline.handle import BatchRunner, Handling
from gristmill.pipeline.parking import Parked
from gristmill.pipeline.publish import COMMIT, skipped_by, write_ahead
from gristmill.pipeline.reclaim import Reclaimer
from gristmill.pipeline.resp import RespConnection, is_error
from gristmill.pipeline.session import INCIDENTS, RECONNECT_BACKOFF_S, Session
from gristmill.schemas.jsonformat import json_input_of
from gristmill.telemetry import tracing
from gristmill.telemetry.hooks import BatchHook, entry_ms

if TYPE_CHECKING:
    import asyncio

    from opentelemetry.trace import Tracer
    from redis.asyncio import Redis

    from gristmill.pipeline.encode import Outputs
    from gristmill.pipeline.parking import Watcher
    from gristmill.schemas.cache import SchemaCache
    from gristmill.settings import Settings
    from gristmill.specs import ProcessorSpec

__all__ = ("RECONNECT_BACKOFF_S", "ProcessorLoop", "ProcessorStats")

log = logging.getLogger(__name__)

OWN_PENDING_ORDERED = 100_000  # a FIFO queue's leader reads every entry it holds at once


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
        self.settings = settings
        self.cache = cache
        self.stats = ProcessorStats()
        # each input, then the processor's own lane of each input (retries, requeues, replays)
        self.lanes = tuple(keys.retry_lane(stream, spec.group) for stream in spec.inputs)
        origins = spec.inputs + spec.inputs  # stream index -> the input it belongs to
        self.reader = reader = Reader(
            group=spec.group.encode(),
            consumer=consumer.encode(),
            streams=tuple(stream.encode() for stream in spec.inputs + self.lanes),
            count=spec.batch or settings.batch,
            block_ms=settings.block_ms,
        )
        self._own_stores = tuple(keys.delayed_store(lane).encode() for lane in self.lanes * 2)
        self._wake_channel = keys.delayed_wake(settings.key_prefix).encode()
        self._bucket_ms = settings.delayed_bucket_ms if settings.delayed_layout == "buckets" else 0
        claim_idle_ms = round((spec.claim_idle or settings.claim_idle) * 1000)
        self._idling = Idling(settings.block_ms, claim_idle_ms)
        self._reads_by_idleness = tuple(
            (reader.read_command(block), block / 1000 + settings.socket_timeout)
            for block in (self._idling.block_ms, self._idling.idle_block_ms)
        )
        self._read_timeout = self._reads_by_idleness[0][1]
        self._runner = BatchRunner(spec.concurrency or settings.concurrency)
        home = None  # on a cluster: the one slot of everything this processor reads
        foreign: frozenset[bytes] = frozenset()  # outputs in other slots than home
        if is_cluster_url(url):
            home = cluster.home_slot(spec.name, spec.inputs + self.lanes)
            foreign = cluster.foreign_outputs(home, sorted(spec.publishable))
        self._session = Session(url, settings, spec.group, spec.name, self.stats, home)
        self._reclaimer = Reclaimer(reader, claim_idle_ms, spec.name, self.stats)
        self._handling = Handling(
            spec, self._runner, redis, consumer, reader.streams, origins, claim_idle_ms
        )
        router = FailureRouter(spec, reader.streams, origins, self._own_stores, self.stats)
        self._encoder = BatchEncoder(
            spec, settings, cache, reader.streams, router, self.stats, clock, foreign
        )
        self._json = json_input_of(spec)  # None: protobuf entries
        self.on_batch: BatchHook | None = None  # telemetry hook: metrics per batch, or off
        self._reads: RespConnection | None = None
        self.watcher: Watcher | None = None  # set by the runtime: idle, this loop parks there
        self._parked: Parked | None = None
        self._stopping = False
        self._reading = False
        self.ready = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Process batches until `stop()`, then finish the batches in hand and return."""
        async with anyio.create_task_group() as helpers:
            self._runner.start_helpers(helpers)
            self._handling.start_keeper(helpers)
            try:
                while not self._stopping:
                    try:
                        parked = await self._run_connected()
                    except INCIDENTS as exc:
                        self._reads = None
                        if await self._session.incident(exc):  # the group is gone: from 0
                            self.spec = replace(self.spec, from_beginning=True)
                        continue
                    if parked is not None:
                        await self._park(parked)
            finally:
                helpers.cancel_scope.cancel()
                with anyio.move_on_after(1.0, shield=True):
                    self._reads = None
                    await self._session.close()

    def stop(self) -> None:
        """Ask the loop to finish its current batch and return (drain)."""
        self._stopping = True
        if self._parked is not None:
            self._parked.wake()

    async def _park(self, parked: Parked) -> None:
        """Hold no connection until the watcher (or a stop) wakes this loop (parking.py)."""
        assert self.watcher is not None
        self._reads = None
        await self._session.close()
        self._parked = parked
        if not self._stopping:
            self.watcher.park(parked)
            try:
                await parked.woken.wait()
            finally:
                self.watcher.leave(parked)
        self._parked = None
        self._idling.woken()
        self._reclaimer.now()

    @property
    def tracer(self) -> Tracer | None:
        """The tracer of this loop's spans; None while tracing is off (telemetry hook)."""
        return self._handling.tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._handling.tracer = tracer

    @property
    def reading_client_id(self) -> int | None:
        """The connection id blocked in XREADGROUP right now (for CLIENT UNBLOCK), if any."""
        if self._reading and self._reads is not None:
            return self._reads.client_id
        return None

    async def _run_connected(self) -> Parked | None:
        """Read and process batches until a stop (None) or until idle enough to park."""
        reads = self._reads = await self._session.open("read")
        commits = await self._session.open("commit")
        inputs = len(self.spec.inputs)
        group, streams = self.reader.group, self.reader.streams
        # a class lane, like our own lanes, holds only what was released for its readers
        lanes = tuple(s for s in streams[:inputs] if keys.is_class_lane(s.decode()))
        inputs_at = tuple(s for s in streams[:inputs] if s not in lanes)
        await ensure_groups(reads, inputs_at, group, self.spec.from_beginning)
        await ensure_groups(reads, lanes + streams[inputs:], group, from_beginning=True)
        await commits.call(b"SCRIPT", b"LOAD", COMMIT.source)
        self.ready.set()
        # entries this consumer name holds from before (a reconnect) come first; an ordered
        # (FIFO) queue takes all of them in one batch, so none is left behind a newer entry
        own = self.reader.own_pending_command(OWN_PENDING_ORDERED if self.spec.ordered else None)
        entries = self.reader.parse(await reads.call_packed(own))
        in_flight: _SentCommit | None = None
        while True:
            if not self._stopping and self._reclaimer.due():
                # settle first: our own unacked entries look idle to the reclaim, and running
                # them again before a refused commit is noticed would repeat its work
                if in_flight is not None:
                    await self._settle(commits, in_flight)
                    in_flight = None
                fresh, suspects = await self._reclaimer.sweep(reads)
                entries += fresh
                for suspect in suspects:  # one at a time: only a poison entry climbs the cap
                    claimed = await self._reclaimer.claim_one(reads, suspect)
                    sent = await self._process(commits, claimed) if claimed else None
                    if sent is not None:
                        await self._settle(commits, sent)
            if not entries and in_flight is None and self._may_park():
                after, entries = await self.reader.last_look(reads)
                if after is None:  # this user may not look: idle reads block instead
                    self.watcher = None
                elif not entries:  # nothing came since the newest ids were taken: park
                    return Parked.reading(self.reader, after, self._reclaimer.claim_idle_ms)
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
                    entries = self.reader.parse(read_reply(await next_read, self.reader.streams))
                self._idling.read(len(entries))
                self._session.recovered()  # a whole round went through (a no-op if no incident)
            finally:
                self._reading = False
        if in_flight is not None:
            await self._settle(commits, in_flight)
        return None

    def _may_park(self) -> bool:
        return self.watcher is not None and self._idling.idle and not self._stopping

    def _start_read(self, reads: RespConnection) -> asyncio.Future[Any]:
        self._reading = True
        command, self._read_timeout = self._reads_by_idleness[self._idling.idle]
        return reads.send_packed(command)

    async def _settle(self, commits: RespConnection, sent: _SentCommit) -> None:
        if self.tracer is None:
            await self._settle_reply(commits, sent)
            return
        span = tracing.batch_span(self.tracer, "commit", self.spec.name, 0)  # telemetry hook
        try:
            await self._settle_reply(commits, sent)
        finally:
            span.end()

    async def _settle_reply(self, commits: RespConnection, sent: _SentCommit) -> None:
        with anyio.fail_after(self.settings.socket_timeout):
            reply = await sent.reply
            if is_error(reply) and str(reply).startswith("NOSCRIPT"):
                await commits.call(b"SCRIPT", b"LOAD", COMMIT.source)  # the server restarted
                reply = await commits.call_packed(sent.payload)
        if is_error(reply) and cluster.is_redirect(str(reply).partition(" ")[0]):
            raise ReplyError(str(reply))  # refused whole: an incident, redone from the map
        skipped = skipped_by(reply, self.spec.name)
        if skipped:
            self.stats.skipped += len(skipped)
            log.warning(
                "%d entries were claimed by another consumer before our commit; their "
                "outputs were dropped (that consumer publishes them)", len(skipped),
                extra={"processor": self.spec.name},
            )  # fmt: skip

    # -- one batch ---------------------------------------------------------------------------

    async def _process(self, commits: RespConnection, entries: list[Entry]) -> _SentCommit | None:
        """Decode, handle and encode `entries`; send their commit (its reply is not awaited)."""
        if self.tracer is None:
            return await self._process_batch(commits, entries)
        span = tracing.batch_span(self.tracer, "consume", self.spec.name, len(entries))  # hook
        try:
            return await self._process_batch(commits, entries)
        finally:
            span.end()

    async def _process_batch(
        self, commits: RespConnection, entries: list[Entry]
    ) -> _SentCommit | None:
        settings = self.settings
        started = time.perf_counter()  # telemetry hook
        slots = await decode_batch(
            entries, self.cache, self.spec.retry, settings.max_entry_bytes, self.spec.input_type,
            self._json,
        )  # fmt: skip
        if self.spec.tasks is not None:
            await self.spec.tasks.start(slots)  # one round trip per batch, not per task
        await self._handling.run(slots)
        handle_s = time.perf_counter() - started  # telemetry hook
        commit, ahead = await self._encoder.encode(slots)
        if ahead:  # on a cluster: outputs of other slots, before the commit (at-least-once)
            await self._write_ahead(ahead)
            self.stats.split_commits += 1
            self.stats.written_ahead += len(ahead)
        self.stats.batches += 1
        if self.on_batch is not None:  # telemetry hook: histograms once per batch
            first, last = entry_ms(entries[0][1]), entry_ms(entries[-1][1])
            self.on_batch(self.spec.name, len(entries), handle_s, first, last)
        if not len(commit):
            return None
        reader = self.reader
        payload = commit.pack(reader.group, reader.consumer, self._wake_channel, self._bucket_ms)
        return _SentCommit(payload, commits.send_packed(payload))

    async def _write_ahead(self, outputs: Outputs) -> None:
        session, settings = self._session, self.settings
        wait = settings.wait_replicas, settings.wait_timeout_ms, session.replicas_seen
        await write_ahead(session.node, outputs, *wait)
