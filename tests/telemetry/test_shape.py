"""The pure parts of observability: snapshot shaping, rates, OTEL_* reading (no server)."""

from __future__ import annotations

from gristmill.observe.shape import (
    ConsumerState,
    GroupState,
    Snapshot,
    StreamState,
    consumers_of,
    delayed_entries,
    id_ms,
    pending_age_ms,
    with_rates,
)
from gristmill.telemetry.config import otlp_metrics, trace_exporters
from gristmill.telemetry.hooks import entry_ms
from gristmill.telemetry.hosting import worker_env


def _group(entries_read: int | None) -> GroupState:
    return GroupState("orders", "billing", 0, 0, None, entries_read, (), 0, 0)


def _snapshot(taken_ms: int, entries_read: int | None) -> Snapshot:
    stream = StreamState("orders", 10, "1-0", (_group(entries_read),))
    return Snapshot(taken_ms, (stream,), (), ())


def test_rates_come_from_entries_read_between_two_snapshots() -> None:
    later = with_rates(_snapshot(3000, 250), _snapshot(1000, 50))
    group = later.group("orders", "billing")
    assert group is not None
    assert group.rate_per_s == 100.0


def test_no_rate_without_a_previous_snapshot_or_a_counter() -> None:
    assert with_rates(_snapshot(3000, 250), None).streams[0].groups[0].rate_per_s is None
    unknown = with_rates(_snapshot(3000, None), _snapshot(1000, 50))
    assert unknown.streams[0].groups[0].rate_per_s is None


def test_oldest_pending_age_is_read_from_the_entry_id() -> None:
    assert pending_age_ms([2, b"1000-0", b"1500-1", []], now_ms=4000) == 3000
    assert pending_age_ms([0, None, None, None], now_ms=4000) is None
    assert pending_age_ms({"pending": 1, "min": b"1000-0"}, now_ms=1500) == 500
    assert id_ms(b"1700000000000-3") == 1700000000000
    assert entry_ms(b"1700000000000-3") == 1700000000000


def test_consumers_are_shaped_and_sorted() -> None:
    reply = [
        [b"name", b"w2", b"pending", 3, b"idle", 70],
        {b"name": b"w1", b"pending": 0, b"idle": 5},
    ]
    assert consumers_of(reply) == (ConsumerState("w1", 0, 5), ConsumerState("w2", 3, 70))


def test_delayed_entries_count_bucket_sizes_and_flag_a_partial_read() -> None:
    # two single entries and two buckets of 5 and 7 entries, all read
    assert delayed_entries(4, [b"\x01a", b"\x01b", b"1000", b"2000"], [5, 7]) == (14, False)
    # 300 members, only 2 read, one of them a bucket: a lower bound
    assert delayed_entries(300, [b"\x01a", b"1000"], [5]) == (304, True)


def test_traces_are_off_unless_otel_variables_ask() -> None:
    assert trace_exporters({}) == set()
    assert trace_exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}) == {"otlp"}
    assert trace_exporters({"OTEL_TRACES_EXPORTER": "console"}) == {"console"}
    assert (
        trace_exporters({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
        == set()
    )
    assert trace_exporters({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}) == set()


def test_otlp_metrics_follow_the_same_variables() -> None:
    assert not otlp_metrics({})
    assert otlp_metrics({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:4318/v1/metrics"})
    assert not otlp_metrics({"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"})


def test_each_worker_gets_a_health_port_of_its_own() -> None:
    assert worker_env({}, 0) == {}
    assert worker_env({}, 2) == {"GRISTMILL_HEALTH_PORT": "8082"}
    assert worker_env({"GRISTMILL_HEALTH_PORT": "9000"}, 1) == {"GRISTMILL_HEALTH_PORT": "9001"}
    assert worker_env({"GRISTMILL_HEALTH_PORT": "0"}, 3) == {"GRISTMILL_HEALTH_PORT": "0"}
