"""The tasks the `tasks` scenario runs: the same no-op as every peer's (takes an int, returns
it), tracked (record, state, result) and untracked, each in its own queue."""

from __future__ import annotations

from gristmill import App

app = App("bench_tasks")
BATCH = 500


@app.task(queue="bench", batch=BATCH)
async def noop(n: int) -> int:
    return n


@app.task(queue="bench_untracked", batch=BATCH, tracked=False)
async def noop_untracked(n: int) -> int:
    return n
