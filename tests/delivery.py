"""Shared steps of the delivery tests: feed the example pipeline, read and check what came out."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import anyio

from gristmill.envelope import open_fields
from gristmill.producer import Publisher
from services.schemas import LineItem, Order, Receipt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

    from tests.helpers.procs import Proc

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


def flat_fields(fields: list[bytes] | dict[bytes, bytes]) -> list[bytes]:
    """An entry's fields as one flat list; redis-py's cluster client parses them into a dict."""
    if isinstance(fields, dict):
        return [item for pair in fields.items() for item in pair]
    return fields


async def receipts(redis: Redis) -> list[tuple[str, int]]:
    """(order id, amount) of every receipt, in stream order."""
    found: list[tuple[str, int]] = []
    start = "-"
    while True:
        send = redis.execute_command
        page = await send("XRANGE", RECEIPTS, start, "+", "COUNT", 10_000)  # type: ignore[no-untyped-call]
        for _, fields in page:
            receipt = Receipt.FromString(open_fields(flat_fields(fields), 1 << 20).payload)
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


async def wait_for_groups(redis: Redis, groups: dict[str, str], within: float = 30) -> None:
    """Until every (stream, group) of `groups` exists: the workers are up."""
    with anyio.fail_after(within):
        while True:
            found = 0
            for stream, group in groups.items():
                if await redis.exists(stream):
                    names = {g["name"].decode() for g in await redis.xinfo_groups(stream)}
                    found += group in names
            if found == len(groups):
                return
            await anyio.sleep(0.05)


async def wait_until_idle(
    redis: Redis, expected: int, within: float, workers: Sequence[Proc] = ()
) -> None:
    """Until `expected` receipts are out and every group of the pipeline has acked all.

    Raises:
        AssertionError: After `within` seconds, with what each group holds and the last
            lines of `workers`' output: a stall should be explainable from the report.
    """
    try:
        with anyio.fail_after(within):
            while await redis.xlen(RECEIPTS) < expected or not await pipeline_idle(redis):
                await anyio.sleep(0.1)
    except TimeoutError:
        state = [f"{await redis.xlen(RECEIPTS)} of {expected} receipts"]
        for stream, group in GROUPS.items():
            infos = await redis.xinfo_groups(stream) if await redis.exists(stream) else []
            state += [
                f"{stream}/{group}: pending {info['pending']}, lag {info.get('lag')}, "
                f"last {info['last-delivered-id']!r}"
                for info in infos
                if info["name"].decode() == group
            ]
        tails = ["\n".join(worker.lines[-15:]) for worker in workers]
        raise AssertionError(
            f"not idle after {within:g} s: " + "; ".join(state) + "\n" + "\n--\n".join(tails)
        ) from None
