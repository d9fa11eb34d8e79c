"""Stage 3 of 5: run the handlers of one batch, up to `concurrency` at once, no task per entry.

The loop's own task works through the batch first. Handlers that never suspend (the common
case: transform and return) run back to back with no scheduling at all. If one suspends, a
callback queued at the start of the batch wakes parked helper tasks, which take the next
entries from the same iterator; so at most `concurrency` handlers are in flight.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from anyio.abc import TaskGroup


class BatchRunner:
    """Runs `run_one(index)` for every index of a batch with bounded concurrency."""

    def __init__(self, concurrency: int) -> None:
        self._helpers = concurrency - 1
        self._sleepers: list[asyncio.Future[None]] = []
        self._jobs: Iterator[int] = iter(())
        self._run_one: Callable[[int], Awaitable[None]] | None = None
        self._busy = 0
        self._idle: asyncio.Future[None] | None = None

    def start_helpers(self, task_group: TaskGroup) -> None:
        """Park the helper tasks in `task_group`; they live as long as it does."""
        for number in range(self._helpers):
            task_group.start_soon(self._helper, name=f"handler-helper-{number}")

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
        sleepers, self._sleepers = self._sleepers, []
        for sleeper in sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def _helper(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sleeper: asyncio.Future[None] = loop.create_future()
            self._sleepers.append(sleeper)
            await sleeper
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
