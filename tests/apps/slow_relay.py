"""Copies Orders from `slow.in` to `slow.out`, taking a while per entry (to pause mid-batch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from gristmill import App

if TYPE_CHECKING:
    from gristmill import Context

app = App("slow")


@app.processor(input="slow.in", output="slow.out", batch=50, concurrency=1)
async def relay(order: Any, ctx: Context) -> Any:
    await anyio.sleep(0.004)
    return order
