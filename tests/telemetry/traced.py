"""One order through the 3-processor example across two services, and the spans it leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from gristmill.producer import Publisher
from services.schemas import LineItem, Order

if TYPE_CHECKING:
    from redis.asyncio import Redis

HANDLERS = ("validate", "bill", "charge", "charge")  # charge runs twice: one retry


@dataclass(frozen=True)
class SpanView:
    """What the tests compare of a span, from the SDK or from OTLP protobuf alike."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    error: bool


async def publish_order(redis: Redis) -> str:
    """Publish one valid order to `orders.placed`; returns its entry id."""
    order = Order(id="order-7", customer_id="c-1", currency="EUR")
    order.items.append(LineItem(sku="tea", quantity=2, unit_price_cents=450))
    order.placed_at.GetCurrentTime()
    return await Publisher(redis).publish("orders.placed", order)


async def wait_for_receipt(redis: Redis, within: float = 60.0) -> None:
    """Until the order's receipt is in `receipts`."""
    with anyio.fail_after(within):
        while not await redis.xlen("receipts"):
            await anyio.sleep(0.05)


def check_one_trace(spans: list[SpanView]) -> None:
    """The message's spans form one chain: publish -> validate -> bill -> charge -> charge."""
    publish = [s for s in spans if s.name == "publish orders.placed"]
    assert len(publish) == 1, [s.name for s in spans]
    root = publish[0]
    assert root.parent_id is None
    in_trace = [s for s in spans if s.trace_id == root.trace_id]
    handlers = sorted(
        (s for s in in_trace if s.name.startswith("handle ")),
        key=lambda s: (
            HANDLERS.index(s.name.removeprefix("handle ")),
            s.attributes["gristmill.attempt"],
        ),
    )
    assert [s.name.removeprefix("handle ") for s in handlers] == list(HANDLERS)
    parent = root
    for span in handlers:
        assert span.parent_id == parent.span_id, f"{span.name} is not a child of {parent.name}"
        parent = span
    first, second = handlers[2], handlers[3]
    assert (first.attributes["gristmill.attempt"], second.attributes["gristmill.attempt"]) == (1, 2)
    assert first.error
    assert not second.error
    assert handlers[0].attributes["messaging.destination.name"] == "orders.placed"
    assert handlers[0].attributes["messaging.consumer.group.name"] == "orders.validate"
    assert handlers[0].attributes["gristmill.schema_id"]
    assert handlers[2].attributes["messaging.message.id"]
    batch = [s for s in spans if s.name.startswith(("consume ", "commit "))]
    assert batch, "no batch spans"
    assert all(s.trace_id != root.trace_id for s in batch)  # batches are traces of their own
