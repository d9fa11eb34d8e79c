"""What every peer script shares: its command line, and a clean exit on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

BATCH = 500  # entries per XREADGROUP in every batching loop, as in gristmill's default


@dataclass(frozen=True)
class PeerArgs:
    """The command line of a peer script."""

    url: str
    streams: tuple[str, ...]  # input, then each stage's output: a pipeline of len - 1 stages
    group: str
    schema_id: str


def parse_args(description: str) -> PeerArgs:
    """Parse `--url --streams a,b[,c...] --group --schema-id`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--streams", required=True, help="input,output[,output2...]: one stage per pair"
    )
    parser.add_argument("--group", default="bench")
    parser.add_argument("--schema-id", default="", help="schema id written with each output")
    ns = parser.parse_args()
    streams = tuple(ns.streams.split(","))
    if len(streams) < 2:
        parser.error("--streams needs an input and at least one output")
    return PeerArgs(ns.url, streams, ns.group, ns.schema_id)


def run_until_terminated(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it returns or SIGTERM/SIGINT arrives; exit 0 either way."""

    async def supervised() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass  # the harness stops us once it has counted every output

    asyncio.run(supervised())


def task_peer_main(
    description: str,
    enqueue: Callable[[str, int], Coroutine[Any, Any, float]],
    work: Callable[[str], Coroutine[Any, Any, None]],
) -> None:
    """The command line of an asyncio task-queue peer (`tasks` scenario): `--enqueue N` queues
    N tasks and prints `enqueue_seconds S` for the harness; without it, a worker until SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True)
    parser.add_argument("--enqueue", type=int, default=0)
    args = parser.parse_args()
    if args.enqueue:
        print(f"enqueue_seconds {asyncio.run(enqueue(args.url, args.enqueue)):.6f}")
    else:
        run_until_terminated(work(args.url))
