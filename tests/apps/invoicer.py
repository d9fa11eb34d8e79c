"""Bills every Order from `orders.in` to `invoices.out`: the live pipeline of the fault tests.

Only `tests.pipeline.messages.Order` entries reach the handler; anything else the fuzz test
feeds it must be dead-lettered before a handler runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill import Context

INPUT = "orders.in"
OUTPUT = "invoices.out"
GROUP = "invoicer.bill"

app = App("invoicer")


@app.processor(input=INPUT, output=OUTPUT, from_beginning=True)
async def bill(order: Any, ctx: Context) -> Any:
    return Invoice(order_id=order.id, total_cents=order.quantity)
