"""The payments service of services/, except that each invoice's first charge fails once.

With services.orders it is the 3-processor example across two services, with one retry:
the trace tests follow one order through all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App, Retry
from services import payments
from services.schemas import ORDERS

if TYPE_CHECKING:
    from gristmill import Context

app = App("payments", schemas=[ORDERS])


@app.processor(input="invoices", output="receipts")
async def charge(invoice: Any, ctx: Context) -> Any:
    if ctx.attempt == 1:
        raise Retry(delay=0.01)  # the gateway timed out once; the second attempt succeeds
    return await payments.charge(invoice, ctx)
