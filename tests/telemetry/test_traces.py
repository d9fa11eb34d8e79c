"""One message's path across two services is one trace: in memory, and through OTLP."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.settings import Settings
from services import orders
from tests.apps import flaky_payments
from tests.helpers.procs import serve
from tests.telemetry.otlp_receiver import OtlpReceiver
from tests.telemetry.probes import free_port, wait_for_status
from tests.telemetry.traced import SpanView, check_one_trace, publish_order, wait_for_receipt
from tests.typed_redis import xrange

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer


def _view(span: ReadableSpan) -> SpanView:
    context = span.get_span_context()
    assert context is not None
    return SpanView(
        name=span.name,
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_id=format(span.parent.span_id, "016x") if span.parent else None,
        attributes=dict(span.attributes or {}),
        error=not span.status.is_ok,
    )


@pytest.mark.slow
async def test_a_retried_message_across_two_services_is_one_trace(
    server: EmbeddedServer, redis: Redis, traces: InMemorySpanExporter
) -> None:
    from gristmill.runtime import Runtime

    settings = Settings(block_ms=100, health_port=0, delayed_bucket_ms=50)
    services = [Runtime(app, settings, server.url) for app in (orders.app, flaky_payments.app)]
    async with anyio.create_task_group() as group:
        for runtime in services:
            group.start_soon(runtime.run)
        for runtime in services:
            await runtime.wait_ready()
        await publish_order(redis)
        await wait_for_receipt(redis)
        for runtime in services:
            runtime.stop()
    check_one_trace([_view(span) for span in traces.get_finished_spans()])
    (receipt,) = await xrange(redis, "receipts")
    assert b"traceparent" in receipt[1]  # the last output carries the trace on


@pytest.mark.slow
async def test_the_same_trace_reaches_an_otlp_receiver_from_two_processes(
    server: EmbeddedServer, redis: Redis, traces: InMemorySpanExporter
) -> None:
    with OtlpReceiver() as receiver:
        env = {
            "GRISTMILL_REDIS_URL": server.url, "GRISTMILL_BLOCK_MS": "100",
            "GRISTMILL_DELAYED_BUCKET_MS": "50", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRICS_EXPORTER": "none",
        }  # fmt: skip
        ports = (free_port(), free_port())
        targets = ("services.orders:app", "tests.apps.flaky_payments:app")
        with contextlib.ExitStack() as stack:
            procs = [
                stack.enter_context(serve(target, env={**env, "GRISTMILL_HEALTH_PORT": str(port)}))
                for target, port in zip(targets, ports, strict=True)
            ]
            for port in ports:  # every group exists before the first publish
                await wait_for_status(f"http://127.0.0.1:{port}/readyz", 200, within=60)
            await publish_order(redis)  # the test process starts the trace (in memory)
            await wait_for_receipt(redis)
            for proc in procs:
                assert await proc.terminate_async() == 0, proc.output[-3000:]
    published = [_view(span) for span in traces.get_finished_spans()]
    check_one_trace(published + receiver.spans)
    by_handler = {receiver.services[s.span_id] for s in receiver.spans if s.name == "handle charge"}
    assert by_handler == {"payments"}
    assert {receiver.services[s.span_id] for s in receiver.spans if s.name == "handle bill"} == {
        "orders"
    }
