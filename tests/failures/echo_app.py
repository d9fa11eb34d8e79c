"""A one-processor app for subprocess fault tests: every order becomes an invoice."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gristmill import App
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill.context import Context

app = App("echo")


@app.processor(input="orders", output="invoices", from_beginning=True)
async def bill(order: Any, ctx: Context) -> Any:
    await asyncio.sleep(0.001)  # slow enough that a kill lands mid-stream
    return Invoice(order_id=order.id, total_cents=order.quantity)
