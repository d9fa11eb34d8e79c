"""`BENCH_MANY_PROCESSORS` processors in one app, each its own stream in and out: Order ->
Invoice, `many.in.<n>` -> `many.out.<n>` (`runtime serve bench.apps.many:app`).

The `many` scenario measures what a process hosting many small processors costs when they
are idle and when they all have work: connections, CPU, memory, time to the first entry.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bench.payload import invoice_for
from gristmill.app import App

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.context import Context

COUNT_ENV = "BENCH_MANY_PROCESSORS"

app = App("bench-many")


def input_stream(n: int) -> str:
    return f"many.in.{n}"


def output_stream(n: int) -> str:
    return f"many.out.{n}"


def _declare(n: int) -> None:
    async def invoice(order: Message, ctx: Context) -> Message:
        result: Message = invoice_for(order)
        return result

    app.processor(
        input=input_stream(n), output=output_stream(n), name=f"invoice-{n}", from_beginning=True
    )(invoice)


for _n in range(int(os.environ.get(COUNT_ENV, "10"))):
    _declare(_n)
