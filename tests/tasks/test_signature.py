"""A task's type hints become a protobuf message and back (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from gristmill.errors import ConfigError
from gristmill.tasks.context import TaskContext
from gristmill.tasks.record import event_line, first_items, items_of, parse, parse_events
from gristmill.tasks.signature import signature_of
from gristmill.tasks.worker import result_json


async def every_kind(
    name: str,
    blob: bytes,
    flag: bool,
    count: int,
    ratio: float,
    when: datetime,
    note: str | None,
    tags: list[str],
    scores: dict[str, int],
    ctx: TaskContext,
    limit: int | None = None,
) -> None:
    del ctx


def test_every_supported_hint_round_trips() -> None:
    signature = signature_of(every_kind, "every_kind")
    descriptor = signature.message_class.DESCRIPTOR
    assert descriptor.full_name == "gristmill.tasks.EveryKindArgs"
    assert [f.name for f in descriptor.fields] == [
        "name", "blob", "flag", "count", "ratio", "when", "note", "tags", "scores", "limit",
    ]  # fmt: skip
    assert descriptor.fields_by_name["count"].type == descriptor.fields_by_name["count"].TYPE_SINT64
    when = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    message = signature.message_of(
        ("ada", b"\x00\xff", True, -(2**40), 0.25, when, None, ["a", "b"], {"x": 3}), {}
    )
    wire = signature.message_class.FromString(message.SerializeToString())
    context = TaskContext("t-1", "every_kind", "default", 1)
    assert signature.arguments_of(wire, context) == {
        "name": "ada", "blob": b"\x00\xff", "flag": True, "count": -(2**40), "ratio": 0.25,
        "when": when, "note": None, "tags": ["a", "b"], "scores": {"x": 3}, "ctx": context,
        "limit": None,
    }  # fmt: skip


def test_optional_keeps_zero_apart_from_none_and_defaults_are_sent() -> None:
    async def page(limit: int | None = 0, offset: int = 5) -> None: ...

    signature = signature_of(page, "page")
    message = signature.message_of((), {})
    assert signature.arguments_of(message, TaskContext("t", "page", "q", 1)) == {
        "limit": 0, "offset": 5,
    }  # fmt: skip
    none = signature.message_of((None,), {})
    assert signature.arguments_of(none, TaskContext("t", "page", "q", 1))["limit"] is None


def test_a_naive_datetime_is_read_as_utc() -> None:
    async def at(when: datetime) -> None: ...

    signature = signature_of(at, "at")
    message = signature.message_of((datetime(2026, 1, 1, 12),), {})
    back = signature.arguments_of(message, TaskContext("t", "at", "q", 1))["when"]
    assert back == datetime(2026, 1, 1, 12, tzinfo=UTC)
    plus_two = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    message = signature.message_of((plus_two,), {})
    assert signature.arguments_of(message, TaskContext("t", "at", "q", 1))["when"] == back


def test_a_message_parameter_is_taken_as_it_is() -> None:
    async def stamp(moment: timestamp_pb2.Timestamp, ctx: TaskContext) -> None: ...

    signature = signature_of(stamp, "stamp")
    assert signature.takes_message
    assert signature.schema is None
    value = timestamp_pb2.Timestamp(seconds=7)
    assert signature.message_of((value,), {}) is value
    with pytest.raises(TypeError, match="expected a google.protobuf.Timestamp"):
        signature.message_of(("not a message",), {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("async def f(x): ...", "parameter 'x': needs a type hint"),
        ("async def f(x: set[int]): ...", "parameter 'x': set[int] is not supported"),
        ("async def f(x: list[list[int]]): ...", "list[list[int]] is not supported"),
        ("async def f(x: dict[int, str]): ...", "dict[int, str] is not supported"),
        ("async def f(x: int | str): ...", "is not supported"),
        ("async def f(*x: int): ...", "*args and **kwargs cannot travel"),
        ("async def f(x: 'Missing'): ...", "its type hints do not resolve"),
        (
            "async def f(m: Timestamp, n: int): ...",
            "a message parameter must be the task's only argument",
        ),
    ],
)
def test_unsupported_hints_fail_at_declaration_naming_the_parameter(
    source: str, expected: str
) -> None:
    namespace: dict[str, object] = {"Timestamp": timestamp_pb2.Timestamp}
    exec(source, namespace)  # noqa: S102 - each case is a one-line function
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("*", r"\*")):
        signature_of(namespace["f"], "f")  # type: ignore[arg-type]


def test_call_arguments_are_checked_like_a_call() -> None:
    async def send(recipient: str, ctx: TaskContext) -> None: ...

    signature = signature_of(send, "send")
    with pytest.raises(TypeError, match="missing argument 'recipient'"):
        signature.message_of((), {})
    with pytest.raises(TypeError, match="unexpected keyword"):
        signature.message_of((), {"recipient": "a", "cc": "b"})
    with pytest.raises(TypeError, match="'ctx' is given by the worker"):
        signature.message_of(("a",), {"ctx": None})
    with pytest.raises(TypeError):
        signature.message_of((5,), {})  # protobuf refuses an int for a string field


def test_a_record_round_trips_and_leaves_out_empty_fields() -> None:
    items = first_items(
        task_id="t-1", name="send", queue="emails", now_ms=1000, due_ms=None, schema_id=b"s",
        payload=b"", retries_allowed=4, ttl_ms=0, result_ttl_ms=60_000,
    )  # fmt: skip
    names = items[::2]
    assert b"payload" not in names
    assert b"ttl_ms" not in names
    assert b"target" not in names
    record = parse(dict(zip(items[::2], items[1::2], strict=True)))
    assert record is not None
    assert (record.state, record.created_at, record.queued_at, record.retries_allowed) == (
        "queued", 1000, 1000, 4,
    )  # fmt: skip
    assert record.kind == "on_demand"
    assert record.ttl_ms == 0
    assert not record.finished
    assert [(e.at_ms, e.state) for e in record.events] == [(1000, "queued")]
    deferred = first_items(
        task_id="t-2", name="send", queue="emails", now_ms=1000, due_ms=9000, schema_id=b"s",
        payload=b"p", retries_allowed=0, ttl_ms=5, result_ttl_ms=1,
    )  # fmt: skip
    later = parse(dict(zip(deferred[::2], deferred[1::2], strict=True)))
    assert later is not None
    assert (later.state, later.queued_at) == ("todo", 9000)
    assert parse({}) is None


def test_history_lines_are_one_line_each() -> None:
    text = event_line(5, "error", "ValueError: bad\nthing  here") + event_line(6, "queued")
    assert parse_events(text)[0].detail == "ValueError: bad thing here"
    assert [e.state for e in parse_events(text + "junk line\n")] == ["error", "queued"]
    assert items_of({"a": 0, "b": "", "c": b"x", "d": 3}) == [b"c", b"x", b"d", b"3"]


def test_results_become_json() -> None:
    assert result_json({"n": 1, "when": datetime(2026, 1, 1, tzinfo=UTC)}) == (
        '{"n":1,"when":"2026-01-01T00:00:00+00:00"}'
    )
    assert result_json(timestamp_pb2.Timestamp(seconds=1)) == '"1970-01-01T00:00:01Z"'
    with pytest.raises(TypeError, match="has no JSON form"):
        result_json(object())
