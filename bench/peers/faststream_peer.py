"""`faststream` / `faststream-batch`: FastStream's Redis stream subscriber (bench-venvs/faststream).

Default mode: `StreamSub(input, group, consumer)` with FastStream's defaults and a
`@publisher` on the output stream, so each message is read, handled, published (one XADD)
and acked (one XACK) on its own. `--batch`: `StreamSub(..., batch=True, max_records=500)`,
one handler call per batch publishing every output through one redis pipeline (FastStream's
`Pipeline` annotation), and the batch acked at once.

FastStream reads only entries in its own envelope (a `__data__` field: other entries are
JSON-dumped, which fails on binary payloads), so `--prefill N` publishes the N input Orders
through FastStream itself, as a FastStream producer would. Its batch parser JSON-encodes the
batch's bodies, which fails on binary too, so the protobuf payloads travel base64-encoded
(as text) in both modes; that adds well under a microsecond per message. Otherwise the work
per message is the same as in the other loops; outputs are in FastStream's envelope.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from base64 import b64decode, b64encode
from typing import Any

from faststream.redis import (  # type: ignore[import-not-found, unused-ignore]
    RedisBroker,
    StreamSub,
)
from faststream.redis.annotations import (  # type: ignore[import-not-found, unused-ignore]
    Pipeline,  # noqa: TC002 - FastStream reads handler annotations at runtime
)

from bench.payload import order_payload, transform
from bench.peers.common import BATCH, run_until_terminated

_PREFILL_BATCH = 1000


def work(payload: str) -> str:
    """The same protobuf work as every loop, on base64 text (see the module docstring)."""
    return b64encode(transform(b64decode(payload))).decode()


async def prefill(url: str, source: str, count: int) -> None:
    broker = RedisBroker(url)
    redis = await broker.connect()
    try:
        for start in range(0, count, _PREFILL_BATCH):
            async with redis.pipeline(transaction=False) as pipe:
                for number in range(start, min(start + _PREFILL_BATCH, count)):
                    text = b64encode(order_payload(number)).decode()
                    await broker.publish(text, stream=source, pipeline=pipe)
                await pipe.execute()
    finally:
        await broker.stop()


def build(url: str, source: str, target: str, group: str, batch: bool) -> Any:
    broker = RedisBroker(url)
    consumer = f"faststream-{os.getpid()}"
    if batch:

        @broker.subscriber(  # type: ignore[untyped-decorator, unused-ignore]
            stream=StreamSub(
                source, group=group, consumer=consumer, batch=True, max_records=BATCH, last_id="0"
            )
        )
        async def handle_batch(payloads: list[str], pipe: Pipeline) -> None:
            for payload in payloads:
                await broker.publish(work(payload), stream=target, pipeline=pipe)
            await pipe.execute()

    else:

        @broker.subscriber(  # type: ignore[untyped-decorator, unused-ignore]
            stream=StreamSub(source, group=group, consumer=consumer, last_id="0")
        )
        @broker.publisher(stream=target)  # type: ignore[untyped-decorator, unused-ignore]
        async def handle(payload: str) -> str:
            return work(payload)

    return broker


async def serve(url: str, source: str, target: str, group: str, batch: bool) -> None:
    broker = build(url, source, target, group, batch)
    await broker.start()
    try:
        await asyncio.Event().wait()  # until SIGTERM cancels us
    finally:
        await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--streams", required=True, help="input,output")
    parser.add_argument("--group", default="bench")
    parser.add_argument("--schema-id", default="", help="unused: FastStream writes its envelope")
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--prefill", type=int, default=0, help="publish N Orders, then exit")
    args = parser.parse_args()
    source, target = args.streams.split(",")
    if args.prefill:
        asyncio.run(prefill(args.url, source, args.prefill))
        return
    run_until_terminated(serve(args.url, source, target, args.group, args.batch))


if __name__ == "__main__":
    main()
