"""A paced load: XADD Orders at a fixed rate and time each one until its Invoice appears.

The producer and the reader share one event loop and one clock (perf_counter), so a
latency is "this process wrote the Order" to "this process read the Invoice": end to end,
including the consumer's read wait, its work and its commit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.payload import Invoice, order_payload
from bench.resp import RespConnection, pack

TICK_S = 0.001  # the producer sends what is due every millisecond, in one write
READ_COUNT = 1000
DRAIN_TIMEOUT_S = 10.0  # after the last Order: how long the last Invoices may take
_PAYLOAD = b"payload"


@dataclass
class LoadResult:
    """What a paced run saw: one latency per Invoice read, in seconds, by Order number."""

    sent: int
    offered_per_s: float
    latencies_s: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0


async def paced_run(
    url: str, source: str, target: str, schema_id: str, count: int, rate: float, start: int = 0
) -> LoadResult:
    """Send `count` Orders (numbered from `start`) at `rate` per second; time each Invoice."""
    head = ("XADD", source, "*", "schema_id", schema_id, "payload")
    commands = [pack(*head, order_payload(start + n)) for n in range(count)]  # packed up front
    sent_at = [0.0] * count
    result = LoadResult(sent=count, offered_per_s=rate)
    producer = await RespConnection.open(url)
    reader = await RespConnection.open(url)
    try:
        # from the stream's start: earlier (warm-up) Invoices have numbers below `start`
        reading = asyncio.ensure_future(_read(reader, target, start, count, sent_at, result))
        began = time.perf_counter()
        sent = 0
        while sent < count:
            due = min(count, int((time.perf_counter() - began) * rate) + 1)
            if due > sent:
                now = time.perf_counter()
                for number in range(sent, due):
                    sent_at[number] = now
                await producer.call(*commands[sent:due])
                sent = due
            await asyncio.sleep(TICK_S)
        try:
            await asyncio.wait_for(reading, DRAIN_TIMEOUT_S)
        except TimeoutError:
            pass  # what did not arrive in time counts as missing
    finally:
        await producer.close()
        await reader.close()
    return result


async def _read(
    reader: RespConnection,
    target: str,
    start: int,
    count: int,
    sent_at: list[float],
    result: LoadResult,
) -> None:
    last_id = b"0-0"
    while len(result.latencies_s) < count:
        (reply,) = await reader.call(
            pack("XREAD", "COUNT", READ_COUNT, "BLOCK", 1000, "STREAMS", target, last_id)
        )
        now = time.perf_counter()
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                last_id = entry_id
                order_id = Invoice.FromString(fields[fields.index(_PAYLOAD) + 1]).order_id
                number = int(order_id[2:]) - start
                if number in result.latencies_s:
                    result.duplicates += 1
                elif 0 <= number < count:
                    result.latencies_s[number] = now - sent_at[number]
