"""Bills every order on its second run: the first raises Retry, so each one passes through
the delayed store, the sweeper (and its lease) and the retry lane before it is billed.

Reads and writes the streams of tests.apps.invoicer, with its own group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App, Retry
from gristmill.failures.policy import RetryPolicy
from tests.apps.invoicer import INPUT, OUTPUT
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill import Context

__all__ = ("GROUP", "INPUT", "OUTPUT", "RETRY_DELAY_S", "app")

GROUP = "retry_relay.bill"
RETRY_DELAY_S = 0.05

app = App("retry_relay")


@app.processor(
    input=INPUT, output=OUTPUT, from_beginning=True,
    retry=RetryPolicy(max_attempts=3, initial_delay=RETRY_DELAY_S, jitter=0.0),
)  # fmt: skip
async def bill(order: Any, ctx: Context) -> Any:
    if ctx.attempt == 1:
        raise Retry(delay=RETRY_DELAY_S)  # a downstream asked us to come back shortly
    return Invoice(order_id=order.id, total_cents=order.quantity)
