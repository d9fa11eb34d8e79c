"""Structured log lines (`GRISTMILL_LOG_FORMAT=json`): one JSON object per record.

Each object has `time`, `level`, `logger` and `message`, the `extra` fields gristmill logs
with (`processor`, `stream`, `group`, `entry_id`, ...), an `exception` when there is one, and
`trace_id`/`span_id` of the span current when the record was made (while tracing is on).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from opentelemetry import trace

# attributes every LogRecord has: anything else on a record came through `extra`
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "where"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON, with its `extra` fields and trace ids."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(
            (name, value)
            for name, value in vars(record).items()
            if name not in _STANDARD and not name.startswith("_")
        )
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["trace_id"] = format(span_context.trace_id, "032x")
            line["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
