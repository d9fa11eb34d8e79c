from __future__ import annotations

import io

import pytest
import zstandard

from gristmill.envelope import open_fields, sampled, seal, with_attempt
from gristmill.errors import DecodeError


def test_plain_round_trip_is_four_fields() -> None:
    fields = seal(b"s1", b"\x08\x01")
    assert fields == [b"schema_id", b"s1", b"payload", b"\x08\x01"]
    envelope = open_fields(fields, 1024)
    assert (envelope.schema_id, envelope.payload, envelope.attempt) == (b"s1", b"\x08\x01", 1)


def test_large_payloads_are_compressed_and_restored() -> None:
    payload = b"x" * 10_000
    fields = seal(b"s1", payload, compress_above=100, attempt=3, headers={"tenant": "t1"})
    assert len(fields[3]) < 200
    envelope = open_fields(fields, 20_000)
    assert envelope.payload == payload
    assert envelope.attempt == 3
    assert envelope.headers == {"tenant": "t1"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([b"payload", b"x"], "missing_field"),
        ([b"schema_id", b"s"], "missing_field"),
        ([b"schema_id"], "missing_field"),
        ([b"schema_id", b"s", b"payload", b"x" * 2000], "oversize"),
        ([b"schema_id", b"s", b"payload", b"x", b"encoding", b"lz5"], "bad_encoding"),
        ([b"schema_id", b"s", b"payload", b"not zstd", b"encoding", b"zstd"], "bad_encoding"),
        ([b"schema_id", b"s", b"payload", b"x", b"attempt", b"two"], "missing_field"),
    ],
)
def test_bad_fields_have_a_reason(fields: list[bytes], reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        open_fields(fields, 1000)
    assert caught.value.reason == reason


def test_a_zstd_bomb_is_refused_before_inflating() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 50_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(DecodeError) as caught:
        open_fields([b"schema_id", b"s", b"payload", bomb, b"encoding", b"zstd"], 1 << 20)
    assert caught.value.reason == "oversize"


def test_with_attempt_replaces_the_field() -> None:
    fields = with_attempt(seal(b"s", b"p", attempt=2), 3)
    assert fields.count(b"attempt") == 1
    assert open_fields(fields, 100).attempt == 3


@pytest.mark.parametrize("payload_first", [False, True])
def test_an_entry_of_only_schema_id_and_payload_is_sized_by_its_payload(
    payload_first: bool,
) -> None:
    def entry(payload: bytes) -> list[bytes]:
        pairs = [[b"schema_id", b"s1fW_Y7qmKvBtUCQBP"], [b"payload", payload]]
        return [item for pair in (pairs[::-1] if payload_first else pairs) for item in pair]

    assert open_fields(entry(b"x" * 990), 1000).payload == b"x" * 990  # 1,025 bytes stored
    with pytest.raises(DecodeError) as caught:
        open_fields(entry(b"x" * 1001), 1000)
    assert caught.value.reason == "oversize"


def test_a_zstd_frame_without_its_size_inflates_up_to_the_limit_only() -> None:
    stream = zstandard.ZstdCompressor().stream_writer  # streamed frames declare no size
    for size, outcome in ((900, None), (5_000, "bad_encoding")):
        sink = io.BytesIO()
        with stream(sink, closefd=False) as writer:
            writer.write(b"y" * size)
        frame = sink.getvalue()
        assert zstandard.frame_content_size(frame) == -1
        fields = [b"schema_id", b"s", b"payload", frame, b"encoding", b"zstd"]
        if outcome is None:
            assert open_fields(fields, 1000).payload == b"y" * size
        else:
            with pytest.raises(DecodeError) as caught:
                open_fields(fields, 1000)
            assert caught.value.reason == outcome


def test_only_a_sampled_trace_context_is_kept_from_an_entry() -> None:
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    for flags, kept in (("01", True), ("00", False), ("03", True), ("0a", False), ("0B", True)):
        assert sampled(f"00-{trace_id}-{span_id}-{flags}".encode()) is kept, flags
    assert not sampled(b"")
    assert not sampled(b"garbage")
    base = [b"schema_id", b"s1fW_Y7qmKvBtUCQBP", b"payload", b"p"]
    unsampled = f"00-{trace_id}-{span_id}-00".encode()
    sampled_one = f"00-{trace_id}-{span_id}-01".encode()
    assert open_fields([*base, b"traceparent", unsampled], 1000).trace == {}
    assert open_fields([*base, b"traceparent", unsampled, b"tracestate", b"a=1"], 1000).trace == {}
    assert open_fields([*base, b"traceparent", sampled_one], 1000).trace == {
        "traceparent": sampled_one.decode()
    }
    assert open_fields([*base, b"traceparent", sampled_one, b"tracestate", b"a=1"], 1000).trace == {
        "traceparent": sampled_one.decode(),
        "tracestate": "a=1",
    }
