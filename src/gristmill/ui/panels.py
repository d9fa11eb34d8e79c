"""The slower panels as JSON (pure): one dead-letter lane, and the inventory of the server.

The inventory is what changes by the minute rather than by the second: delayed stores with
their buckets, schedules, tasks, schemas by subject and version. The page reads it less often
than the live document, and a lane only when someone looks at it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from gristmill.failures.deadletter import DeadLetterRecord
    from gristmill.failures.lanes import DeadEntry
    from gristmill.tasks.record import TaskRecord
    from gristmill.tasks.schedules import Schedule
    from gristmill.timing.waiting import StoreStats

MAX_SHOWN_CHARS = 200


def _printable(raw: bytes, limit: int = MAX_SHOWN_CHARS) -> str:
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return text if len(text) <= limit else text[:limit] + "…"
    return f"0x{raw[: limit // 2].hex()}{'…' if len(raw) > limit // 2 else ''} ({len(raw)} bytes)"


def record_summary(entry_id: str, record: DeadLetterRecord) -> dict[str, Any]:
    """One dead letter in a list: id, reason, what was raised, attempts, when."""
    return {
        "id": entry_id,
        "reason": record.reason,
        "exception": record.exception,
        "message": record.message.splitlines()[0][:MAX_SHOWN_CHARS] if record.message else "",
        "attempts": record.attempts,
        "origin": f"{record.origin_stream}/{record.origin_id}" if record.origin_stream else "",
        "first_failure_ms": record.first_failure_ms or None,
        "last_failure_ms": record.last_failure_ms or None,
    }


def lane_view(
    stream: str,
    group: str,
    reasons: Mapping[str, int],
    partial: bool,
    entries: Sequence[DeadEntry],
    shown: tuple[DeadEntry, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """One lane: its entries per reason, the first entries, and one shown in full.

    `shown` is an entry with what `decoded_payloads` made of it: `message` (the payload as
    JSON, through the registry) or `error` (why it does not decode).
    """
    document: dict[str, Any] = {
        "stream": stream,
        "group": group,
        "reasons": [{"reason": name, "entries": n} for name, n in sorted(reasons.items())],
        "reasons_partial": partial,
        "entries": [record_summary(entry.entry_id, entry.record) for entry in entries],
        "shown": None,
    }
    if shown is not None:
        entry, decoded = shown
        fields = entry.record.fields
        document["shown"] = {
            **record_summary(entry.entry_id, entry.record),
            "message": entry.record.message,
            "traceback": entry.record.traceback,
            "payload_json": json.dumps(decoded["message"], ensure_ascii=False, indent=2)
            if "message" in decoded
            else None,
            "payload_error": decoded.get("error"),
            "fields": [
                [_printable(name, 60), _printable(value)]
                for name, value in zip(fields[::2], fields[1::2], strict=True)
                if name not in (b"payload",)  # the payload is shown decoded above
            ],
        }
    return document


def delayed_json(stats: Sequence[StoreStats], now_ms: int) -> list[dict[str, Any]]:
    """Each delayed store: entries, buckets, and how soon the first and last are due."""
    return [
        {
            "stream": s.stream,
            "entries": s.entries,
            "buckets": s.buckets,
            "next_due_in_ms": None
            if s.earliest_release_ms is None
            else max(s.earliest_release_ms - now_ms, 0),
            "last_due_in_ms": None
            if s.latest_release_ms is None
            else max(s.latest_release_ms - now_ms, 0),
        }
        for s in stats
    ]


def schedules_json(found: Sequence[Schedule]) -> list[dict[str, Any]]:
    """Each schedule: its task and timetable, whether it runs, its last and next fire."""
    return [
        {
            "name": s.name,
            "task": s.task,
            "queue": s.queue,
            "when": s.cron or f"every {s.every_ms / 1000:g} s",
            "tz": s.tz,
            "paused": s.paused,
            "last_fire_ms": s.last_fire_ms or None,
            "next_fire_ms": None if s.paused else s.next_fire_ms(),
            "fires": s.fires,
        }
        for s in found
    ]


def tasks_json(found: Sequence[TaskRecord]) -> list[dict[str, Any]]:
    """The newest tasks: id, name, queue, state and since when, runs, error."""
    return [
        {
            "id": t.id,
            "name": t.name,
            "queue": t.queue,
            "state": t.state,
            "state_at_ms": t.state_at or None,
            "attempt": t.attempt,
            "error": t.error[:MAX_SHOWN_CHARS],
        }
        for t in found
    ]


def schemas_json(
    subjects: Mapping[str, Sequence[tuple[str, str | None]]], modes: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Each subject: its mode and its versions (1 first), each a schema id and message name."""
    return [
        {
            "subject": subject,
            "mode": modes.get(subject, ""),
            "versions": [
                {"version": n, "schema_id": schema_id, "message": message}
                for n, (schema_id, message) in enumerate(versions, start=1)
            ],
        }
        for subject, versions in sorted(subjects.items())
    ]
