"""GRISTMILL_LOG_FORMAT=json: one JSON object per line, with extra fields and trace ids."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from opentelemetry import trace

from gristmill.telemetry.logs import JsonFormatter
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gristmill.embedded import EmbeddedServer


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "gristmill.x", "levelname": "WARNING", "msg": message})
    record.__dict__.update(extra)
    return record


def test_a_record_becomes_one_json_line_with_its_extra_fields() -> None:
    line = JsonFormatter().format(_record("dead-lettered", stream="orders", entry_id="1-0"))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "dead-lettered"
    assert (parsed["level"], parsed["logger"]) == ("WARNING", "gristmill.x")
    assert (parsed["stream"], parsed["entry_id"]) == ("orders", "1-0")
    assert "trace_id" not in parsed  # no span is current


def test_the_current_span_gives_trace_and_span_ids(traces: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("work") as span:
        parsed = json.loads(JsonFormatter().format(_record("inside")))
    context = span.get_span_context()
    assert parsed["trace_id"] == format(context.trace_id, "032x")
    assert parsed["span_id"] == format(context.span_id, "016x")


def test_runtime_serve_logs_json_lines_when_asked(server: EmbeddedServer) -> None:
    env = {"GRISTMILL_REDIS_URL": server.url, "GRISTMILL_LOG_FORMAT": "json"}
    with serve("tests.apps.invoicer:app", env=env) as proc:
        line = proc.wait_for_line("serving", within=60)
        assert proc.terminate() == 0
    parsed = json.loads(line)
    assert parsed["logger"] == "gristmill.runtime"
    assert parsed["message"].startswith("serving 1 processors of invoicer")
