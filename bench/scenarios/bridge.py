"""Scenario `bridge`: pub/sub -> stream ingest rate and loss, gristmill's bridge vs a redis-py loop.

Per system, on an emptied server: a consumer process subscribes to `bench-in` (gristmill: one
`Bridge` in single mode, the lease holder; redis-py: `PubSub.get_message` in a loop, XADD in
pipelined batches of 1,000), then a publisher process sends `size` JSON messages of ~100
bytes as fast as one connection with pipelined PUBLISH goes. Reported per system:
- offered_per_s: the publisher's rate: flat out (the machine's ceiling in this run), then
  paced at 100,000/s;
- msgs_per_s: entries written / (last entry id ms - first entry id ms), the ingest rate;
- lost: published - written (0 expected while the leader lives; a consumer that falls behind
  the server's pub/sub output buffer limit is disconnected and loses the rest).

    python -m bench.scenarios.bridge URL [SIZE]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import hiredis
from redis import Redis

SCENARIO = "bridge"
CHANNEL, STREAM = "bench-in", "bench-out"
CHUNK = 1000
PACED_RATE = 100_000  # msgs/s of the second phase
SETTLE_S = 1.0  # the stream stops growing for this long: the consumer is done


def _message(n: int) -> bytes:
    body = {"message_id": f"m-{n:012d}", "n": n, "sku": "tea-earl-grey", "quantity": n % 7}
    return json.dumps(body).encode().ljust(100)


async def _publish(url: str, size: int, rate: int) -> None:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port.split("/")[0]))
    chunks = [
        b"".join(
            hiredis.pack_command(("PUBLISH", CHANNEL, _message(n)))  # type: ignore[arg-type]
            for n in range(first, min(first + CHUNK, size))
        )
        for first in range(0, size, CHUNK)
    ]
    started = time.perf_counter()
    replies = hiredis.Reader()
    outstanding = 0
    for index, chunk in enumerate(chunks):
        if rate:  # paced: chunk n leaves at n * CHUNK / rate seconds
            await asyncio.sleep(max(started + index * CHUNK / rate - time.perf_counter(), 0))
        writer.write(chunk)
        outstanding += chunk.count(b"*3\r\n")
        if rate or index % 4 == 3 or index == len(chunks) - 1:  # a few chunks in flight
            await writer.drain()
            while outstanding:
                replies.feed(await reader.read(1 << 16))
                while replies.gets() is not False:
                    outstanding -= 1
    elapsed = time.perf_counter() - started
    writer.close()
    print(json.dumps({"published": size, "seconds": elapsed}), flush=True)


async def _consume_gristmill(url: str) -> None:
    import anyio
    from pydantic import SecretStr
    from redis.asyncio import Redis as AsyncRedis

    from gristmill import App
    from gristmill.bridges.pubsub import Bridge
    from gristmill.settings import Settings

    spec = App("bench").bridge(channel=CHANNEL, stream=STREAM)
    redis = AsyncRedis.from_url(url)
    bridge = Bridge(spec, redis, Settings(redis_url=SecretStr(url)), url)
    async with anyio.create_task_group() as group:
        group.start_soon(bridge.run)
        await anyio.lowlevel.checkpoint()  # run() makes the event
        assert bridge.subscribed is not None
        await bridge.subscribed.wait()
        print("ready", flush=True)
        while True:  # on stderr, for whoever watches a run
            await anyio.sleep(1)
            print(bridge.counts, file=sys.stderr, flush=True)


async def _consume_redis_py(url: str) -> None:
    from redis.asyncio import Redis as AsyncRedis

    redis = AsyncRedis.from_url(url)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    print("ready", flush=True)
    batch: list[bytes] = []
    while True:
        message = await pubsub.get_message(timeout=0.01 if batch else 1.0)
        if message is not None:
            batch.append(message["data"])
        if batch and (message is None or len(batch) >= CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for data in batch:
                    pipe.xadd(STREAM, {"payload": data})
                await pipe.execute()
            batch = []


def _measure(url: str, size: int, system: str, rate: int) -> dict[str, object]:
    redis = Redis.from_url(url)
    redis.execute_command("FLUSHALL", "SYNC")  # type: ignore[no-untyped-call]
    module = [sys.executable, "-m", "bench.scenarios.bridge"]
    consumer = subprocess.Popen([*module, "consume", system, url], stdout=subprocess.PIPE)
    try:
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == b"ready"
        out = subprocess.run([*module, "publish", url, str(size), str(rate)], check=True,
                             capture_output=True).stdout  # fmt: skip
        published = json.loads(out)
        last, still = -1, time.monotonic()
        while time.monotonic() - still < SETTLE_S:
            length = int(redis.xlen(STREAM))
            if length != last:
                last, still = length, time.monotonic()
            if length >= size:
                break
            time.sleep(0.05)
    finally:
        consumer.kill()
        consumer.wait()
    send = redis.execute_command
    first: Any = send(b"XRANGE", STREAM, "-", "+", "COUNT", 1)  # type: ignore[no-untyped-call]
    final: Any = send(b"XREVRANGE", STREAM, "+", "-", "COUNT", 1)  # type: ignore[no-untyped-call]
    written = int(redis.xlen(STREAM))
    span_ms = 1.0
    if first and final:
        span_ms = max(int(final[0][0].split(b"-")[0]) - int(first[0][0].split(b"-")[0]), 1)
    redis.close()
    lost = size - written
    pace = f"paced at {rate:,}/s" if rate else "publisher flat out"
    return {
        "scenario": f"{SCENARIO}@{rate}" if rate else SCENARIO,
        "system": system,
        "messages": size,
        "offered_per_s": round(size / published["seconds"]),
        "msgs_per_s": round(written / (span_ms / 1000)),
        "lost": lost,
        "note": f"{pace}; lost {lost:,}" + ("; loaded machine" if _loaded() else ""),
    }


def _loaded() -> bool:
    import os

    return os.getloadavg()[0] > 1.0


def run(url: str, size: int) -> list[dict[str, object]]:
    """The `bridge` rows: gristmill's bridge, then the plain redis-py loop, same publisher:
    flat out, then paced at PACED_RATE (above the 80,000/s target)."""
    return [
        _measure(url, size, system, rate)
        for rate in (0, PACED_RATE)
        for system in ("gristmill", "redis-py")
    ]


def _child(argv: list[str]) -> None:
    if argv[0] == "publish":
        asyncio.run(_publish(argv[1], int(argv[2]), int(argv[3])))
        return
    import uvloop

    consume = _consume_gristmill if argv[1] == "gristmill" else _consume_redis_py
    uvloop.run(consume(argv[2]))


if __name__ == "__main__":
    if sys.argv[1] in ("publish", "consume"):
        _child(sys.argv[1:])
    else:
        for row in run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200_000):
            print(row)
