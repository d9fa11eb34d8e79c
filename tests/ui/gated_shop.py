"""The example pipeline (services.orders, then a payments charge) fed 20 orders a second,
with a gate for the browser test: an invoice whose order id is listed in the file named by
UI_TEST_GATE is dead-lettered (`gateway_refused`); once the id is gone from the file, a
replay of that dead letter goes through.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from gristmill import App, DeadLetter
from services import orders, payments
from services.schemas import ORDERS, LineItem, Order

if TYPE_CHECKING:
    from gristmill import Context

GATE = Path(os.environ.get("UI_TEST_GATE", "/nonexistent"))
ORDERS_PER_S = 20

charging = App("payments", schemas=[ORDERS])


def _refused() -> list[str]:
    return GATE.read_text().split() if GATE.exists() else []


@charging.processor(input="invoices", output="receipts")
async def charge(invoice: Any, ctx: Context) -> Any:
    if invoice.order_id in await anyio.to_thread.run_sync(_refused):
        raise DeadLetter(reason="gateway_refused")
    return await payments.charge(invoice, ctx)


app = App("shop")
app.include(orders.app)
app.include(charging)
_numbers = itertools.count(1)


@app.every(1 / ORDERS_PER_S, output="orders.placed")
async def place_order() -> Any:
    number = next(_numbers)
    order = Order(id=f"order-{number}", customer_id=f"customer-{number % 7}", currency="EUR")
    order.items.append(LineItem(sku="tea", quantity=1 + number % 3, unit_price_cents=450))
    order.placed_at.GetCurrentTime()
    return order


# a service that is down: nobody serves it, so its group's lag is what the test wrote
audit = App("audit", schemas=[ORDERS])


@audit.processor(input="refunds")
async def review(order: Any, ctx: Context) -> None:
    return None
