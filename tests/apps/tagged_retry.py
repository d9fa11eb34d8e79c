"""A one-slot pipeline for Redis Cluster: `{shop}.orders` -> `{shop}.invoices`, billed on the
second run (the first raises Retry), so each order also passes through the delayed store, the
sweeper and the retry lane, all in the `{shop}` slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App, Retry
from gristmill.failures.policy import RetryPolicy
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill import Context

INPUT = "{shop}.orders"
OUTPUT = "{shop}.invoices"

app = App("tagged_retry")


@app.processor(
    input=INPUT, output=OUTPUT, from_beginning=True,
    retry=RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=0.0),
)  # fmt: skip
async def bill(order: Any, ctx: Context) -> Any:
    if ctx.attempt == 1:
        raise Retry(delay=0.05)
    return Invoice(order_id=order.id, total_cents=order.quantity)
