"""One processor: Order in, Invoice out (`runtime serve bench.apps.passthrough:app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.apps import PASSTHROUGH_STREAMS
from bench.payload import invoice_for
from gristmill.app import App

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.context import Context

app = App("bench")


@app.processor(input=PASSTHROUGH_STREAMS[0], output=PASSTHROUGH_STREAMS[1], from_beginning=True)
async def invoice(order: Message, ctx: Context) -> Message:
    result: Message = invoice_for(order)
    return result
