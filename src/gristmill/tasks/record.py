"""A task's record: one hash per task id, its fields, states and history (pure: no I/O).

    id, name, queue, target, description, kind ("on_demand" or "scheduled"), schedule
    state, state_at       todo, queued, running, done, error, cancelled, expired; when it changed
    created_at, updated_at, queued_at (the ttl counts from it), started_at, finished_at
    attempt, retries_allowed, retries_used, ttl_ms, result_ttl_ms
    schema_id, payload    the arguments as enqueued (one message, docs/wire-format.md)
    result                the return value as JSON; error: the last failure, one line
    reports               `<ms> <text>` lines from ctx.report(...)
    events                `<ms> <state> [detail]` lines: the transitions that the times above
                          do not tell (failures, retries, reruns, cancel, expiry)

`TaskRecord.events` is the whole history: creation (`queued`, or `todo` when deferred) at
`created_at`, the first start at `started_at`, the lines of `events`, and the end at
`finished_at` when no line says it. So a task that runs once and succeeds stores no history
lines, and its record stays a small listpack (hash-max-listpack-value is 64 bytes).

Times are integer ms since the epoch. Fields that are empty or zero are not stored; `parse`
fills in the defaults. The record lives in its queue stream's hash slot, so the scripts that
move a task (enqueue, start, the batch commit) change the entry and the record atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

STATES = ("todo", "queued", "running", "done", "error", "cancelled", "expired")
FINISHED = frozenset({"done", "error", "cancelled", "expired"})
_INTS = (
    "state_at", "created_at", "updated_at", "queued_at", "started_at", "finished_at", "attempt",
    "retries_allowed", "retries_used", "ttl_ms", "result_ttl_ms",
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One line of a task's history: a state it entered (or a report), when, and why."""

    at_ms: int
    state: str
    detail: str = ""


@dataclass(frozen=True)
class TaskRecord:
    """A task's record as read back (see the module docstring for each field)."""

    id: str
    name: str
    queue: str
    state: str
    state_at: int
    created_at: int
    updated_at: int
    queued_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    attempt: int = 0
    retries_allowed: int = 0
    retries_used: int = 0
    ttl_ms: int = 0
    result_ttl_ms: int = 0
    target: str = ""
    description: str = ""
    kind: str = "on_demand"
    schedule: str = ""
    schema_id: bytes = b""
    payload: bytes = b""
    result: str = ""  # JSON
    error: str = ""
    events: tuple[Event, ...] = ()
    reports: tuple[Event, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def first_items(
    *,
    task_id: str,
    name: str,
    queue: str,
    now_ms: int,
    due_ms: int | None,
    schema_id: bytes,
    payload: bytes,
    retries_allowed: int,
    ttl_ms: int,
    result_ttl_ms: int,
    target: str = "",
    description: str = "",
    schedule: str = "",
) -> list[bytes]:
    """The HSET items of a new record: `todo` until `due_ms` if deferred, else `queued`."""
    state = "todo" if due_ms is not None else "queued"
    values: dict[str, str | int | bytes] = {
        "id": task_id, "name": name, "queue": queue, "state": state, "state_at": now_ms,
        "created_at": now_ms, "updated_at": now_ms, "queued_at": due_ms or now_ms,
        "retries_allowed": retries_allowed, "ttl_ms": ttl_ms, "result_ttl_ms": result_ttl_ms,
        "target": target, "description": description, "schema_id": schema_id,
        "payload": payload, "schedule": schedule, "kind": "scheduled" if schedule else "",
    }  # fmt: skip
    return items_of(values)


def items_of(values: Mapping[str, str | int | bytes]) -> list[bytes]:
    """Flat HSET items, leaving out empty and zero values (readers default them)."""
    items: list[bytes] = []
    for name, value in values.items():
        if value == "" or value == 0 or value == b"":
            continue
        items.append(name.encode())
        items.append(value if isinstance(value, bytes) else str(value).encode())
    return items


def event_line(at_ms: int, state: str, detail: str = "") -> str:
    """One history line; `detail` is flattened to one line."""
    detail = " ".join(detail.split())
    return f"{at_ms} {state} {detail}\n" if detail else f"{at_ms} {state}\n"


def parse_events(text: str) -> tuple[Event, ...]:
    """The lines of an `events` or `reports` field, oldest first."""
    events = []
    for line in text.splitlines():
        at, _, rest = line.partition(" ")
        if not at.isdigit():
            continue
        state, _, detail = rest.partition(" ")
        events.append(Event(int(at), state, detail))
    return tuple(events)


class HashFields:
    """An HGETALL reply read field by field: absent text is "", absent numbers are 0."""

    def __init__(self, fields: Mapping[bytes, bytes]) -> None:
        self.raw = {key.decode(): value for key, value in fields.items()}

    def text(self, name: str) -> str:
        return self.raw.get(name, b"").decode(errors="replace")

    def numbers(self, names: tuple[str, ...]) -> dict[str, int]:
        return {name: int(self.raw.get(name, b"0") or 0) for name in names}


def parse(fields: Mapping[bytes, bytes]) -> TaskRecord | None:
    """The record of HGETALL `fields`; None if there are none (no such task)."""
    if not fields:
        return None
    read = HashFields(fields)
    string, text = read.text, read.raw
    numbers = read.numbers(_INTS)
    state = string("state")
    return TaskRecord(
        id=string("id"), name=string("name"), queue=string("queue"), state=state,
        target=string("target"), description=string("description"),
        kind=string("kind") or "on_demand", schedule=string("schedule"),
        schema_id=text.get("schema_id", b""), payload=text.get("payload", b""),
        result=string("result"), error=string("error"),
        events=history(state, numbers, parse_events(string("events"))),
        reports=parse_reports(string("reports")), **numbers,
    )  # fmt: skip


def history(state: str, times: Mapping[str, int], lines: tuple[Event, ...]) -> tuple[Event, ...]:
    """The whole history: the events the record's times tell, around its `events` lines."""
    created, queued = times["created_at"], times["queued_at"]
    events = [Event(created, "todo" if queued > created else "queued")]
    if times["started_at"]:
        events.append(Event(times["started_at"], "running", "attempt 1"))
    events += lines
    finished = times["finished_at"]
    if state in FINISHED and finished and events[-1].state != state:
        events.append(Event(finished, state))
    return tuple(events)


def parse_reports(text: str) -> tuple[Event, ...]:
    """The lines of a `reports` field: `<ms> <text>`, as events whose state is `report`."""
    reports = []
    for line in text.splitlines():
        at, _, rest = line.partition(" ")
        if at.isdigit():
            reports.append(Event(int(at), "report", rest))
    return tuple(reports)
