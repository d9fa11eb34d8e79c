"""Bills orders, but the order with sku `poison` kills its worker (`os._exit`) every time.

The crash-loop cap is 3 deliveries: the fourth delivery must dead-letter it unrun.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from gristmill import App
from gristmill.failures.policy import RetryPolicy
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill import Context

INPUT = "pill.in"
OUTPUT = "pill.out"
GROUP = "pill.bill"
POISON_SKU = "poison"
MAX_DELIVERIES = 3

app = App("pill")


@app.processor(
    input=INPUT, output=OUTPUT, from_beginning=True,
    retry=RetryPolicy(max_deliveries=MAX_DELIVERIES),
)  # fmt: skip
async def bill(order: Any, ctx: Context) -> Any:
    if order.sku == POISON_SKU:
        os._exit(1)  # a segfaulting C extension, an OOM kill: no exception, no cleanup
    return Invoice(order_id=order.id, total_cents=order.quantity)
