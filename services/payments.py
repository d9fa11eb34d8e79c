"""The payments service: charges every invoice and writes a receipt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App
from services.schemas import ORDERS, Receipt

if TYPE_CHECKING:
    from gristmill import Context

app = App("payments", schemas=[ORDERS])

CARD_LIMIT_CENTS = 500_00


@app.processor(input="invoices", output="receipts")
async def charge(invoice: Any, ctx: Context) -> Any:
    if invoice.total_cents > CARD_LIMIT_CENTS:
        return Receipt(
            order_id=invoice.order_id,
            amount_cents=invoice.total_cents,
            status=Receipt.DECLINED,
            decline_reason="over the card limit",
        )
    return Receipt(
        order_id=invoice.order_id,
        amount_cents=invoice.total_cents,
        status=Receipt.CHARGED,
        payment_id=f"pay-{invoice.order_id}",
    )
