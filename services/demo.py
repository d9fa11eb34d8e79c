"""The demo: both services in one process, fed by a ticker, with receipts shown as they arrive.

make demo      (runs `runtime serve services.demo:app` on the embedded server)
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import TYPE_CHECKING, Any

from gristmill import App
from services import orders, payments
from services.schemas import LineItem, Order

if TYPE_CHECKING:
    from gristmill import Context

log = logging.getLogger("demo")
app = App("demo")
app.include(orders.app)
app.include(payments.app)

_numbers = itertools.count(1)
_SKUS = {"tea": 450, "coffee": 900, "scones": 1200, "teapot": 38_00, "samovar": 240_00}


@app.every(0.5, output="orders.placed")
async def place_order() -> Any:
    number = next(_numbers)
    order = Order(id=f"order-{number}", customer_id=f"customer-{number % 7}", currency="EUR")
    for sku in random.sample(sorted(_SKUS), k=random.randint(0, 2)):
        order.items.append(
            LineItem(sku=sku, quantity=random.randint(1, 3), unit_price_cents=_SKUS[sku])
        )
    order.placed_at.GetCurrentTime()
    return order


@app.processor(input="receipts")
async def show(receipt: Any, ctx: Context) -> None:
    outcome = receipt.payment_id or receipt.decline_reason
    log.info(
        "%s: %s %.2f EUR (%s) [attempt %d]",
        receipt.order_id, receipt.Status.Name(receipt.status), receipt.amount_cents / 100,
        outcome, ctx.attempt,
    )  # fmt: skip
