"""Bills orders while the key `outage.down` is unset; while it is set every run fails.

With `max_attempts=1` each failure is dead-lettered at once (`retries_exhausted`), so an
outage fills the dead lane, and `runtime dlq replay` brings the entries back once it is over.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from gristmill import App
from gristmill.failures.policy import RetryPolicy
from tests.pipeline.messages import Invoice

if TYPE_CHECKING:
    from gristmill import Context

INPUT = "outage.in"
OUTPUT = "outage.out"
GROUP = "outage.bill"
DOWN_KEY = "outage.down"  # a test switch, not a gristmill key

app = App("outage")


@functools.cache  # one client per worker process, made on first use
def _client(url: str) -> Redis:
    return Redis.from_url(url)


@app.processor(input=INPUT, output=OUTPUT, from_beginning=True, retry=RetryPolicy(max_attempts=1))
async def bill(order: Any, ctx: Context) -> Any:
    # the tests always point the worker at a server: GRISTMILL_REDIS_URL is set
    if await _client(os.environ["GRISTMILL_REDIS_URL"]).exists(DOWN_KEY):
        raise RuntimeError("the billing backend is down")
    return Invoice(order_id=order.id, total_cents=order.quantity)
