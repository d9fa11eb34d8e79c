"""`handloop`: the hand-written redis-py asyncio loop, the naive practical ceiling.

XREADGROUP COUNT 500, then per batch one pipeline (no MULTI) of an XADD per output and one
XACK for the batch. Each message is decoded, transformed and encoded like in gristmill.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bench.payload import stage_work
from bench.peers.common import BATCH, PeerArgs, parse_args, run_until_terminated

_PAYLOAD = b"payload"


async def stage(args: PeerArgs, number: int) -> None:
    source, target = args.streams[number], args.streams[number + 1]
    work = stage_work(number)
    redis = Redis.from_url(args.url)
    consumer = f"handloop-{os.getpid()}"
    try:
        await redis.xgroup_create(source, args.group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    schema_id = args.schema_id.encode()
    while True:
        reply: Any = await redis.xreadgroup(
            args.group, consumer, {source: ">"}, count=BATCH, block=1000
        )
        for _stream, entries in reply or ():
            pipe = redis.pipeline(transaction=False)
            for _entry_id, fields in entries:
                pipe.xadd(target, {b"schema_id": schema_id, _PAYLOAD: work(fields[_PAYLOAD])})
            pipe.xack(source, args.group, *[entry_id for entry_id, _ in entries])
            await pipe.execute()


async def main(args: PeerArgs) -> None:
    await asyncio.gather(*(stage(args, n) for n in range(len(args.streams) - 1)))


if __name__ == "__main__":
    run_until_terminated(main(parse_args(__doc__ or "")))
