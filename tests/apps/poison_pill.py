"""Bills orders, but the order with sku `poison` kills its worker (`os._exit`).

`app` dies on the poison's every run, from the input stream; `late_app` fails it cleanly once
(a retry) and then dies on it from its retry lane. The crash-loop cap is 3 deliveries: the
fourth delivery must dead-letter it unrun.
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


LATE_INPUT = "late_pill.in"
LATE_OUTPUT = "late_pill.out"
LATE_GROUP = "late_pill.bill"

late_app = App("late_pill")


@late_app.processor(
    input=LATE_INPUT, output=LATE_OUTPUT, group=LATE_GROUP, from_beginning=True,
    retry=RetryPolicy(max_deliveries=MAX_DELIVERIES, initial_delay=0.05, jitter=0.0),
)  # fmt: skip
async def bill_late(order: Any, ctx: Context) -> Any:
    """Fails cleanly on the first run (a retry), then kills the worker from its retry lane."""
    if order.sku == POISON_SKU:
        if ctx.attempt == 1:
            raise ConnectionError("the gateway is down")
        os._exit(1)
    return Invoice(order_id=order.id, total_cents=order.quantity)


OUTPUT_OF = {INPUT: OUTPUT, LATE_INPUT: LATE_OUTPUT}
