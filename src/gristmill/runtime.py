"""The runtime: hosts an app's processors and tickers in one task group; drains when stopped.

One process: every processor loop (task queues included), every ticker, bridge, the sweeper
and the scheduler, in one anyio task group. `stop()` (SIGTERM or SIGINT under `runtime serve`,
gristmill.serving) asks each loop to stop reading, finish the batch in hand and commit it;
after `grace` seconds whatever is still running is cancelled (its entries stay pending and
are reclaimed later).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from typing import TYPE_CHECKING

import anyio

from gristmill import keys
from gristmill.bridges.pubsub import Bridge
from gristmill.connect import is_cluster_url, redis_client
from gristmill.envelope import seal
from gristmill.pipeline.batch import ProcessorStats
from gristmill.pipeline.cluster import check_prefix
from gristmill.pipeline.consume import consumer_name
from gristmill.pipeline.encode import returned_messages
from gristmill.pipeline.parking import Watcher
from gristmill.pipeline.processor import ProcessorLoop
from gristmill.pipeline.session import Session
from gristmill.pipeline.upkeep import Retention, forget_idle_consumers, trim_all
from gristmill.schemas.backend import require_upb
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.tasks.binding import bind_tasks
from gristmill.tasks.fifo import FifoGate
from gristmill.tasks.scheduler import Scheduler
from gristmill.tasks.schedules import Schedules
from gristmill.telemetry.hosting import RuntimeTelemetry
from gristmill.timing.delayed import DelayedStore
from gristmill.timing.sweeper import Sweeper

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.app import App
    from gristmill.settings import Settings
    from gristmill.specs import ProcessorSpec, TickerSpec

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_S = 5.0
# dead consumers are looked for every 30 s: they are forgotten after 10 x claim_idle (>= 60 s)
FORGET_EVERY_ROUNDS = 6


class Runtime:
    """Runs the processors of `app` (or those named in `only`) against the server at `url`."""

    def __init__(
        self,
        app: App,
        settings: Settings,
        url: str,
        *,
        only: tuple[str, ...] = (),
        consumer: str | None = None,
        sweep: bool = True,
    ) -> None:
        self.app = app
        self.settings = settings
        self.url = url
        if is_cluster_url(url):
            check_prefix(settings.key_prefix)
        self.consumer = consumer or consumer_name()
        self.redis: Redis = redis_client(url, settings)
        self.cache = SchemaCache(SchemaRegistry(self.redis, settings.key_prefix))
        wanted = set(only)
        served = settings.served_targets
        self.loops = [
            ProcessorLoop(spec, settings, url, self.cache, self.consumer, self.redis)
            for name, spec in app.processors.items()
            if (not wanted or name in wanted or _runs_task(spec, wanted))
            and (spec.target is None or spec.target in served)
        ]
        # an idle processor parks (no connections) until this watcher sees an entry for it;
        # not on a cluster, where one XREAD cannot watch streams of several slots
        self.watcher = (
            Watcher(Session(url, settings, "parked", "watcher", ProcessorStats()), self.redis)
            if settings.park_idle and self.loops and not is_cluster_url(url)
            else None
        )
        for loop in self.loops:
            loop.watcher = self.watcher
        self.task_client = bind_tasks(app, self.redis, self.cache, settings)
        # a FIFO queue's loop runs only in the replica holding the queue's lease
        self.gates = {
            id(loop): FifoGate(loop, self.redis, settings.lease_ttl_ms, settings.key_prefix)
            for loop in self.loops
            if loop.spec.ordered
        }
        self.tickers = [t for n, t in app.tickers.items() if not wanted or n in wanted]
        self.bridges = [
            Bridge(spec, self.redis, settings, url)
            for name, spec in app.bridges.items()
            if not wanted or name in wanted
        ]
        self.store = DelayedStore.from_settings(self.redis, settings)
        self.sweeper = (
            Sweeper.from_settings(self.redis, settings, eager=app.eager)
            if sweep and settings.sweeper  # h8: GRISTMILL_SWEEPER=false under service ACLs
            else None
        )
        self.scheduler = (
            Scheduler(self.redis, ttl_ms=settings.lease_ttl_ms, prefix=settings.key_prefix)
            if sweep and settings.scheduler and app.tasks  # an app of plain processors fires none
            else None
        )
        self._stop = anyio.Event()
        # telemetry hook: health port, metrics and tracing; gives each loop its hooks
        self.telemetry = RuntimeTelemetry(
            app.name,
            settings,
            self.loops,
            self.cache,
            self._why_not_ready,
            self.bridges,
            self.sweeper,
            [name for schema in app.schemas for name in schema.message_names()],
        )
        self.telemetry.attach()

    def _why_not_ready(self) -> str | None:
        if self._stop.is_set():
            return "draining"
        waiting = [
            loop.spec.name
            for loop in self.loops
            if not loop.ready.is_set() and id(loop) not in self.gates  # a follower waits, ready
        ]
        return f"processors not reading yet: {', '.join(waiting)}" if waiting else None

    async def run(self) -> None:
        """Run until `stop()`; then drain within the grace period and return.

        Raises:
            ConfigError: If the protobuf runtime is not upb.
            IncompatibleSchema: If a schema of the app breaks its subject's compatibility.
        """
        require_upb()
        self.telemetry.start()  # telemetry hook: the health port opens before we connect
        try:
            async with anyio.create_task_group() as probes:
                probes.start_soon(self.telemetry.watch, self.redis, name="telemetry")  # hook
                await self._run_started()
                probes.cancel_scope.cancel()
        finally:
            self.telemetry.close()  # telemetry hook
            with anyio.move_on_after(2.0, shield=True):
                await self.redis.aclose()

    async def _run_started(self) -> None:
        try:
            await self._adopt_schemas()
            await self._register_lanes()
            await self._write_schedules()
            _quiet_garbage_collector()
            async with anyio.create_task_group() as outer:
                if self.sweeper is not None:
                    outer.start_soon(self.sweeper.run, name="sweeper")
                if self.scheduler is not None:
                    outer.start_soon(self.scheduler.run, name="scheduler")
                for ticker in self.tickers:
                    outer.start_soon(self._tick, ticker, name=f"ticker:{ticker.name}")
                outer.start_soon(self._upkeep, name="upkeep")
                if self.watcher is not None:
                    outer.start_soon(self.watcher.run, name="parking-watcher")
                async with anyio.create_task_group() as work:
                    for loop in self.loops:
                        gate = self.gates.get(id(loop))
                        work.start_soon(
                            loop.run if gate is None else gate.run,
                            name=f"processor:{loop.spec.name}",
                        )
                    for bridge in self.bridges:
                        work.start_soon(bridge.run, name=f"bridge:{bridge.spec.name}")
                    outer.start_soon(self._drain_on_stop, work.cancel_scope, name="drain")
                outer.cancel_scope.cancel()  # every loop is done: end the timers with them
        finally:
            with anyio.move_on_after(2.0, shield=True):
                await self._forget_consumer()

    async def _adopt_schemas(self) -> None:
        descriptors = [
            schema.descriptor(name)
            for schema in self.app.schemas
            for name in schema.message_names()
        ]
        for descriptor in descriptors:  # check all, then register all: a refusal leaves nothing
            await self.cache.registry.check(descriptor)
        for descriptor in descriptors:
            await self.cache.id_for(descriptor)

    async def _register_lanes(self) -> None:
        """Tell the sweeper about every lane our retries and requeues are parked for."""
        await self.store.register_targets(lane for loop in self.loops for lane in loop.lanes)

    async def _write_schedules(self) -> None:
        """Write the app's declared schedules to Redis (their fire state is kept)."""
        schedules = Schedules(self.redis, self.cache, self.settings.key_prefix)
        for spec in self.app.schedules.values():
            await schedules.add(
                spec.name, spec.task, cron=spec.cron, every=spec.every, tz=spec.tz,
                catch_up=spec.catch_up, declared_by=self.app.name,
            )  # fmt: skip

    def stop(self) -> None:
        """Ask for a drain: stop reading, finish and commit the batches in hand, return."""
        self._stop.set()

    async def wait_ready(self) -> None:
        """Return once every processor has its groups and is reading (a FIFO queue's only
        where this replica holds its lease)."""
        for loop in self.loops:
            if id(loop) not in self.gates:
                await loop.ready.wait()

    async def _drain_on_stop(self, work: anyio.CancelScope) -> None:
        await self._stop.wait()
        for loop in self.loops:
            loop.stop()
        for gate in self.gates.values():
            gate.stop()
        for bridge in self.bridges:
            bridge.stop()
        await self._unblock_readers()
        await anyio.sleep(self.settings.grace)
        log.warning("grace period of %.1f s over; cancelling what still runs", self.settings.grace)
        work.cancel()

    async def _unblock_readers(self) -> None:
        # a loop blocked in XREADGROUP returns at once instead of after block_ms
        for loop in self.loops:
            client_id = loop.reading_client_id
            if client_id is not None:
                with contextlib.suppress(Exception):
                    send = self.redis.execute_command
                    await send("CLIENT", "UNBLOCK", client_id)  # type: ignore[no-untyped-call]

    async def _forget_consumer(self) -> None:
        """Delete this consumer from its groups if, and only if, it holds nothing pending."""
        groups = [
            (stream, loop.spec.group, 0) for loop in self.loops for stream in loop.spec.inputs
        ]
        with contextlib.suppress(Exception):
            await forget_idle_consumers(self.redis, groups, only=self.consumer)

    async def _upkeep(self) -> None:
        """Every few seconds: trim outputs that have a retention, forget dead consumers."""
        retention = {
            stream: Retention(spec.maxlen or 0, spec.min_age or 0.0)
            for spec in (loop.spec for loop in self.loops)
            for stream in spec.outputs
            if spec.maxlen or spec.min_age
        }
        dead = Retention(self.settings.dead_letter_maxlen, self.settings.dead_letter_min_age)
        if dead.active:  # every dead-letter lane of this runtime's processors
            for loop in self.loops:
                for stream in loop.spec.inputs:
                    retention.setdefault(keys.dead_lane(stream, loop.spec.group), dead)
        groups = [
            (
                stream,
                loop.spec.group,
                _forget_after_ms(loop.spec.claim_idle or self.settings.claim_idle),
            )
            for loop in self.loops
            for stream in loop.spec.inputs
        ]
        rounds = 0
        while not self._stop.is_set():
            with anyio.move_on_after(UPKEEP_INTERVAL_S):
                await self._stop.wait()
            if self._stop.is_set():
                return
            rounds += 1
            try:  # one round trip per kind of work, however many processors this process hosts
                await self._register_lanes()  # again: a FLUSHALL must not hide a lane
                if retention:
                    await trim_all(self.redis, retention)
                if rounds % FORGET_EVERY_ROUNDS == 0:
                    await forget_idle_consumers(self.redis, groups)
            except Exception as exc:  # noqa: BLE001 - upkeep waits for the next round
                log.warning("upkeep failed, will retry: %s", exc)

    async def _tick(self, ticker: TickerSpec) -> None:
        # groups start at new entries: a tick before they exist would be missed by them
        await self.wait_ready()
        while not self._stop.is_set():
            try:
                messages = returned_messages(await ticker.handler(), ticker.name)
                for message in messages:
                    schema_id = await self.cache.id_for(message.DESCRIPTOR)
                    payload = message.SerializeToString()
                    fields = seal(schema_id, payload, compress_above=self.settings.compress_above)
                    for stream in ticker.outputs:
                        await self.redis.xadd(
                            stream, dict(zip(fields[::2], fields[1::2], strict=True))
                        )
            except Exception:  # a ticker's failure is logged; the next tick tries again
                log.exception("ticker %s failed", ticker.name)
            with anyio.move_on_after(ticker.every):
                await self._stop.wait()


def _forget_after_ms(claim_idle: float) -> int:
    """How long a consumer with nothing pending must be idle before upkeep forgets it."""
    return round(max(10 * claim_idle, 60) * 1000)


def _runs_task(spec: ProcessorSpec, wanted: set[str]) -> bool:
    """True if `--only` names a task of this task queue's processor."""
    tasks = getattr(spec.tasks, "tasks", {})
    return any(name in wanted for name in tasks)


def _quiet_garbage_collector() -> None:
    """Keep full collections off the latency tail.

    A full collection walks every object the process holds, most of them made at import
    (protobuf, redis-py, the schemas): tens of milliseconds, landing in some batch's latency.
    Freezing what exists after start-up takes those out of every later collection, and a
    larger young generation makes collections rarer; the runtime's own garbage is short-lived.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
