"""Stage 3 of 5: run the handlers of one batch, up to `concurrency` at once, no task per entry.

`Handling.run` owns the stage: a `Context` per entry, the handler's timeout, its failure
recorded on the slot, and, while handlers run, the keep-alive of the batch's entries so that
a slow batch is not claimed away by another consumer (a timer per batch wakes a long-lived
keeper task only when a batch outlives claim_idle / 3).

The loop's own task works through the batch first. Handlers that never suspend (the common
case: transform and return) run back to back with no scheduling at all. If one suspends, a
callback queued at the start of the batch wakes parked helper tasks, which take the next
entries from the same iterator; so at most `concurrency` handlers are in flight.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import anyio

from gristmill.context import Context
from gristmill.errors import HandlerSignal
from gristmill.pipeline.upkeep import keep_claimed
from gristmill.telemetry import tracing

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from anyio.abc import TaskGroup
    from opentelemetry.trace import Tracer
    from redis.asyncio import Redis

    from gristmill.pipeline.batch import Slot
    from gristmill.pipeline.consume import Entry
    from gristmill.specs import ProcessorSpec

log = logging.getLogger(__name__)


class Handling:
    """Runs a batch's handlers for one processor and keeps its entries claimed meanwhile."""

    def __init__(
        self,
        spec: ProcessorSpec,
        runner: BatchRunner,
        redis: Redis,
        consumer: str,
        streams: tuple[bytes, ...],
        origins: tuple[str, ...],
        claim_idle_ms: int,
    ) -> None:
        self.spec = spec
        self.runner = runner
        self.redis = redis
        self.consumer = consumer
        self.streams = streams  # what each entry's stream index names (inputs, then lanes)
        self.origins = origins  # the input each stream index belongs to
        self._allowed = spec.publishable
        self._keep_alive_s = claim_idle_ms / 3000
        self.tracer: Tracer | None = None  # telemetry hook: None while tracing is off
        self._batch = 0  # counts batches; the keeper refreshes only the one it was woken for
        self._in_handlers: list[Slot] | None = None
        self._slow: asyncio.Future[int] | None = None  # the keeper waits on it

    def start_keeper(self, task_group: TaskGroup) -> None:
        """Start the task that refreshes a slow batch's entries; it lives as long as the group.

        A batch costs it nothing but a timer: a task per batch, cancelled at its end, left a
        reference cycle (the cancellation's traceback holds the task's frame and so the whole
        batch) for the garbage collector, whose collections then took ~100 ms.
        """
        task_group.start_soon(self._keeper, name="keep-claimed")

    async def run(self, slots: list[Slot]) -> None:
        """Run the handler of every slot that has a message; results land on the slots."""
        runnable = [slot for slot in slots if slot.message is not None]
        self._batch += 1
        self._in_handlers = runnable
        timer = asyncio.get_running_loop().call_later(self._keep_alive_s, self._slow_batch)
        try:
            await self.runner.run(len(runnable), lambda index: self._handle(runnable[index]))
        finally:
            timer.cancel()
            self._in_handlers = None

    def _slow_batch(self) -> None:
        """Timer: the batch in handlers outlived the keep-alive interval; wake the keeper."""
        slow = self._slow
        if slow is not None and not slow.done():
            slow.set_result(self._batch)

    async def _handle(self, slot: Slot) -> None:
        index, entry_id, _, deliveries = slot.entry
        envelope = slot.envelope
        assert envelope is not None
        assert slot.message is not None
        context = Context(
            self.spec.name, self._allowed, self.origins[index], entry_id.decode(),
            envelope.attempt + deliveries - 1, envelope.headers, key=envelope.key,
            trace=envelope.trace, requeues=envelope.requeues, task=envelope.task,
        )  # fmt: skip
        slot.context = context
        if self.tracer is None or not envelope.trace:  # the envelope keeps sampled ones only
            await self._run(slot, context)  # untraced: no span, no cost
            return
        with tracing.handler_span(
            self.tracer, self.spec.name, self.origins[index], self.spec.group,
            context.entry_id, envelope.schema_id, context.attempt, envelope.trace,
        ) as span:  # fmt: skip
            # telemetry hook: a span per handler run; outputs and retries carry its context
            slot.trace = tracing.trace_fields(span)
            await self._run(slot, context)
            tracing.end_run(span, slot.failure)

    async def _run(self, slot: Slot, context: Context) -> None:
        assert slot.message is not None
        try:
            if self.spec.timeout is None:
                slot.result = await self.spec.handler(slot.message, context)
            else:
                with anyio.fail_after(self.spec.timeout):
                    slot.result = await self.spec.handler(slot.message, context)
        except (Exception, HandlerSignal) as exc:  # noqa: BLE001 - a handler's crash is data here
            slot.failure = exc
        slot.published, slot.requeue_delay = context.drain()

    async def _keeper(self) -> None:
        """While a slow batch is in handlers, keep its entries from being claimed by others."""
        loop = asyncio.get_running_loop()
        while True:
            self._slow = loop.create_future()
            batch = await self._slow
            slots = self._in_handlers
            while slots is not None and self._batch == batch:
                await self._keep_claimed([slot.entry for slot in slots])
                await anyio.sleep(self._keep_alive_s)
                slots = self._in_handlers

    async def _keep_claimed(self, entries: list[Entry]) -> None:
        by_stream: dict[str, list[bytes]] = {}
        for index, entry_id, _, _ in entries:  # an input or an own lane
            by_stream.setdefault(self.streams[index].decode(), []).append(entry_id)
        for stream, entry_ids in by_stream.items():
            try:
                await keep_claimed(self.redis, stream, self.spec.group, self.consumer, entry_ids)
            except Exception as exc:  # noqa: BLE001 - best effort; the commit decides
                log.warning(
                    "could not refresh in-flight entries: %s", exc,
                    extra={"processor": self.spec.name},
                )  # fmt: skip


class BatchRunner:
    """Runs `run_one(index)` for every index of a batch with bounded concurrency."""

    def __init__(self, concurrency: int) -> None:
        self._helpers = concurrency - 1
        self._sleepers: list[asyncio.Future[None]] = []
        self._jobs: Iterator[int] = iter(())
        self._run_one: Callable[[int], Awaitable[None]] | None = None
        self._busy = 0
        self._idle: asyncio.Future[None] | None = None
        self._first_suspension: asyncio.Future[None] | None = None

    def start_helpers(self, task_group: TaskGroup) -> None:
        """Start the helper tasks in `task_group`; they live as long as it does.

        One task waits for the first time a handler suspends and only then starts the
        others: a processor whose handlers never do (transform and return) holds one idle
        task, not `concurrency - 1`, which with many processors per process is most of
        its memory.
        """
        if self._helpers:
            self._first_suspension = asyncio.get_running_loop().create_future()
            task_group.start_soon(
                self._start, task_group, self._first_suspension, name="handler-helper-0"
            )

    async def _start(self, task_group: TaskGroup, first_suspension: asyncio.Future[None]) -> None:
        await first_suspension
        for number in range(1, self._helpers):
            task_group.start_soon(self._helper, True, name=f"handler-helper-{number}")
        await self._helper(True)

    async def run(self, count: int, run_one: Callable[[int], Awaitable[None]]) -> None:
        """Run `run_one(0)` ... `run_one(count - 1)`; returns when all have finished.

        `run_one` must not raise (it records failures itself); cancellation propagates.
        """
        self._jobs = iter(range(count))
        self._run_one = run_one
        wake = asyncio.get_running_loop().call_soon(self._wake) if self._helpers else None
        try:
            for index in self._jobs:
                await run_one(index)
        finally:
            if wake is not None:
                wake.cancel()  # nothing suspended: the helpers never needed waking
        while self._busy:
            self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def _wake(self) -> None:
        first, self._first_suspension = self._first_suspension, None
        if first is not None:  # the helpers start now and go to work at once
            if not first.done():
                first.set_result(None)
            return
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def _helper(self, woken: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not woken:
                sleeper: asyncio.Future[None] = loop.create_future()
                self._sleepers.append(sleeper)
                await sleeper
            woken = False
            run_one = self._run_one
            if run_one is None:
                continue
            self._busy += 1
            try:
                for index in self._jobs:
                    await run_one(index)
            finally:
                self._busy -= 1
                if not self._busy and self._idle is not None and not self._idle.done():
                    self._idle.set_result(None)
