"""Shared steps of the delivery tests: feed the example pipeline, read and check what came out."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from gristmill.envelope import open_fields
from gristmill.producer import Publisher
from services.schemas import LineItem, Order, Receipt

if TYPE_CHECKING:
    from redis.asyncio import Redis

PLACED = "orders.placed"
RECEIPTS = "receipts"
GROUPS = {
    "orders.placed": "orders.validate",
    "orders.valid": "orders.bill",
    "invoices": "payments.charge",
}


def order(number: int) -> Any:
    placed = Order(id=f"o-{number}", customer_id="c", currency="EUR")
    placed.items.append(LineItem(sku="tea", quantity=1 + number % 3, unit_price_cents=450))
    return placed


def expected_amount(number: int) -> int:
    return (1 + number % 3) * 450


async def place_orders(
    redis: Redis, numbers: range, chunk: int = 2000, publisher: Publisher | None = None
) -> list[str]:
    """XADD orders numbered `numbers`; returns the ids of those the server acknowledged."""
    publisher = publisher or Publisher(redis)
    acked: list[str] = []
    for start in range(numbers.start, numbers.stop, chunk):
        batch = range(start, min(start + chunk, numbers.stop))
        async with redis.pipeline(transaction=False) as pipe:
            for number in batch:
                pipe.execute_command("XADD", PLACED, "*", *await publisher.fields(order(number)))
            await pipe.execute()
        acked += [f"o-{number}" for number in batch]
    return acked


async def receipts(redis: Redis) -> list[tuple[str, int]]:
    """(order id, amount) of every receipt, in stream order."""
    found: list[tuple[str, int]] = []
    start = "-"
    while True:
        send = redis.execute_command
        page = await send("XRANGE", RECEIPTS, start, "+", "COUNT", 10_000)  # type: ignore[no-untyped-call]
        for _, fields in page:
            if isinstance(fields, dict):  # redis-py's cluster client parses the fields
                fields = [item for pair in fields.items() for item in pair]
            receipt = Receipt.FromString(open_fields(fields, 1 << 20).payload)
            found.append((receipt.order_id, receipt.amount_cents))
        if len(page) < 10_000:
            return found
        last = page[-1][0].decode()
        ms, seq = last.split("-")
        start = f"{ms}-{int(seq) + 1}"


def checksum(items: list[tuple[str, int]]) -> str:
    """Order-independent digest of (order id, amount) pairs."""
    total = sum(
        int.from_bytes(hashlib.sha256(f"{i}:{a}".encode()).digest()[:8], "big") for i, a in items
    )
    return f"{total:x}"


async def pipeline_idle(redis: Redis) -> bool:
    """True when every group of the pipeline has read and acked everything."""
    for stream, group in GROUPS.items():
        for info in await redis.xinfo_groups(stream):
            if info["name"].decode() == group and (info["pending"] or info.get("lag")):
                return False
    return True
