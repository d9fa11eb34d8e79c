"""Three processors chained by stream names: Order -> Invoice -> taxed -> billed.

`runtime serve bench.apps.pipeline:app` hosts all three in one process, like the hand loops
run their three stages in one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.apps import PIPELINE_STREAMS
from bench.payload import invoice_for, restate
from gristmill.app import App

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.context import Context

app = App("bench-pipeline")
orders, invoices, taxed, billed = PIPELINE_STREAMS


@app.processor(input=orders, output=invoices, from_beginning=True)
async def invoice(order: Message, ctx: Context) -> Message:
    result: Message = invoice_for(order)
    return result


@app.processor(input=invoices, output=taxed, from_beginning=True)
async def tax(invoice: Message, ctx: Context) -> Message:
    result: Message = restate(invoice)
    return result


@app.processor(input=taxed, output=billed, from_beginning=True)
async def bill(invoice: Message, ctx: Context) -> Message:
    result: Message = restate(invoice)
    return result
