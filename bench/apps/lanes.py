"""Independent pass-through processors, one per `input>output` pair in BENCH_LANES (the
`cluster` scenario puts each pair under its own hash tag, on its own master)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from bench.payload import invoice_for
from gristmill.app import App

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.context import Context

LANES_ENV = "BENCH_LANES"

app = App("bench-lanes")


async def invoice(order: Message, ctx: Context) -> Message:
    result: Message = invoice_for(order)
    return result


for number, pair in enumerate(os.environ.get(LANES_ENV, "").split(",")):
    if pair:
        source, _, target = pair.partition(">")
        app.processor(input=source, output=target, from_beginning=True, name=f"lane{number}")(
            invoice
        )
