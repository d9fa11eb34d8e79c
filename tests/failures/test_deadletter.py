"""Dead-letter entries round-trip: the original fields come back exactly, whatever they hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gristmill.failures import deadletter, reasons
from gristmill.failures.deadletter import (
    DeadLetterRecord,
    build_fields,
    format_traceback,
    parse_fields,
    split_fields,
)

ORIGINAL = [b"schema_id", b"\x01" * 16, b"payload", b"\x08\x96\x01", b"h:tenant", b"acme"]


def _raise_nested(depth: int) -> None:
    if depth == 0:
        raise KeyError("sku")
    _raise_nested(depth - 1)


def _caught(depth: int = 3) -> KeyError:
    try:
        _raise_nested(depth)
    except KeyError as exc:
        return exc
    raise AssertionError("unreachable")


def test_build_then_parse_round_trips_every_field() -> None:
    exc = _caught()
    fields = build_fields(
        ORIGINAL, reason=reasons.RETRIES_EXHAUSTED, origin_stream="orders", origin_id="17-0",
        attempts=5, first_failure_ms=1_000, last_failure_ms=16_000, exc=exc,
    )  # fmt: skip
    assert fields[: len(ORIGINAL)] == ORIGINAL
    record = parse_fields(fields)
    assert record.fields == ORIGINAL
    assert record.reason == "retries_exhausted"
    assert record.exception == "KeyError"
    assert record.message == "'sku'"
    assert "_raise_nested" in record.traceback
    assert record.traceback.rstrip().endswith("KeyError: 'sku'")
    assert record.attempts == 5
    assert (record.origin_stream, record.origin_id) == ("orders", "17-0")
    assert (record.first_failure_ms, record.last_failure_ms) == (1_000, 16_000)
    assert record.extra == {}
    assert record.to_fields() == fields


def test_every_added_field_has_the_prefix_and_the_count_comes_last() -> None:
    fields = build_fields(
        ORIGINAL, reason="oversize", origin_stream="s", origin_id="1-1", attempts=0,
        last_failure_ms=5,
    )  # fmt: skip
    added = fields[len(ORIGINAL) :]
    assert all(name.startswith(b"dl:") for name in added[::2])
    assert added[-2:] == [b"dl:fields", str(len(ORIGINAL)).encode()]
    record = parse_fields(fields)
    assert record.first_failure_ms == record.last_failure_ms == 5
    assert (record.exception, record.message, record.traceback) == ("", "", "")


def test_user_fields_that_look_like_ours_survive() -> None:
    original = [b"dl:reason", b"mine", b"payload", b"x", b"dl:fields", b"0"]
    fields = build_fields(
        original, reason="decode_error", origin_stream="s", origin_id="1-1", attempts=0,
        last_failure_ms=1,
    )  # fmt: skip
    record = parse_fields(fields)
    assert record.fields == original
    assert record.reason == "decode_error"


def test_traceback_and_message_are_bounded() -> None:
    huge = ValueError("m" * 50_000)
    fields = build_fields(
        ORIGINAL, reason="handler", origin_stream="s", origin_id="1-1", attempts=1,
        last_failure_ms=1, exc=huge,
    )  # fmt: skip
    record = parse_fields(fields)
    assert len(record.message) <= deadletter.MAX_MESSAGE_CHARS
    assert record.message.startswith("mmm")
    assert len(record.traceback) <= deadletter.MAX_TRACEBACK_CHARS
    assert len(format_traceback(_caught(depth=500))) <= deadletter.MAX_TRACEBACK_CHARS
    assert format_traceback(_caught(depth=500)).rstrip().endswith("KeyError: 'sku'")


def test_legacy_entries_without_a_count_split_at_the_trailing_prefix_run() -> None:
    legacy = [*ORIGINAL, b"dl:reason", b"unknown_schema", b"dl:detail", b"no schema 0xab"]
    record = parse_fields(legacy)
    assert record.fields == ORIGINAL
    assert record.reason == "unknown_schema"
    assert record.message == "no schema 0xab"


def test_entries_nobody_dead_lettered_parse_as_all_original() -> None:
    record = parse_fields(ORIGINAL)
    assert record.fields == ORIGINAL
    assert record.reason == ""


def test_a_corrupt_count_falls_back_to_the_prefix_run() -> None:
    fields = [*ORIGINAL, b"dl:reason", b"oversize", b"dl:fields", b"99"]
    original, added = split_fields(fields)
    assert original == ORIGINAL
    assert added == [(b"dl:reason", b"oversize"), (b"dl:fields", b"99")]


def test_unknown_added_fields_are_kept_as_extra() -> None:
    record = DeadLetterRecord(fields=ORIGINAL, reason="handler", extra={"processor": "bill"})
    parsed = parse_fields(record.to_fields())
    assert parsed.extra == {"processor": "bill"}
    assert parsed == record


def test_replay_fields_drop_the_attempt_counter_only() -> None:
    record = DeadLetterRecord(fields=[*ORIGINAL, b"attempt", b"5", b"key", b"k"], reason="x")
    assert record.replay_fields() == [*ORIGINAL, b"key", b"k"]


names = st.one_of(
    st.binary(max_size=12), st.sampled_from([b"dl:", b"dl:fields", b"dl:reason", b"attempt"])
)


@given(
    st.lists(st.tuples(names, st.binary(max_size=20)), max_size=8),
    st.sampled_from(sorted(reasons.KNOWN)),
    st.text(max_size=50),
    st.integers(min_value=0, max_value=10**6),
)
def test_any_original_fields_round_trip(
    pairs: list[tuple[bytes, bytes]], reason: str, message: str, attempts: int
) -> None:
    original = [item for pair in pairs for item in pair]
    record = DeadLetterRecord(
        fields=original, reason=reason, message=message, attempts=attempts,
        origin_stream="{eu}.orders", origin_id="1-0",
    )  # fmt: skip
    assert parse_fields(record.to_fields()) == record
