"""The orders service: validates placed orders, then bills the valid ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App, DeadLetter
from services.schemas import ORDERS, Invoice

if TYPE_CHECKING:
    from gristmill import Context

app = App("orders", schemas=[ORDERS])


@app.processor(input="orders.placed", output="orders.valid")
async def validate(order: Any, ctx: Context) -> Any:
    if not order.items:
        raise DeadLetter(reason="empty_order")  # no retry can fix the input
    if any(item.quantity <= 0 or item.unit_price_cents < 0 for item in order.items):
        raise DeadLetter(reason="bad_line_item")
    return order


@app.processor(input="orders.valid", output="invoices")
async def bill(order: Any, ctx: Context) -> Any:
    total = sum(item.quantity * item.unit_price_cents for item in order.items)
    invoice = Invoice(order_id=order.id, total_cents=total, currency=order.currency or "EUR")
    invoice.issued_at.CopyFrom(order.placed_at)
    return invoice
