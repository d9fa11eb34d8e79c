"""A task queue whose tasks take a while each, to kill its worker mid-batch."""

from __future__ import annotations

import anyio

from gristmill import App

app = App("slow_tasks")


@app.task(queue="slow", batch=50, concurrency=1)
async def double(n: int) -> int:
    await anyio.sleep(0.004)
    return 2 * n
