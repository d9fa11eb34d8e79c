"""A task enqueued inside a trace runs as a span of that trace (its producer span's child)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import trace

from gristmill import App
from gristmill.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer


async def test_a_task_runs_in_the_trace_it_was_enqueued_in(
    server: EmbeddedServer, redis: Redis, traces: InMemorySpanExporter
) -> None:
    app = App("traced")
    seen: list[str] = []

    @app.task(queue="traced")
    async def work(n: int) -> int:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return n

    async with app.running(url=server.url, settings=Settings(block_ms=50, health_port=0)):
        with trace.get_tracer("test").start_as_current_span("web request") as request:
            handle = await work.enqueue(7)
        assert await handle.result(timeout=10) == 7
    spans = {span.name: span for span in traces.get_finished_spans()}
    trace_id = request.get_span_context().trace_id
    publish, run = spans["publish gm:tasks:traced"], spans["handle tasks.traced"]
    assert publish.context is not None
    assert run.context is not None
    assert publish.context.trace_id == run.context.trace_id == trace_id
    assert run.parent is not None
    assert run.parent.span_id == publish.context.span_id
    assert seen == [format(trace_id, "032x")]  # the task's own code sees its span as current
