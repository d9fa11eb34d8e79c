"""The benchmark's own correctness: the hand loops move every message exactly once.

A benchmark whose loops drop or repeat messages would measure the wrong thing fast; these
run the real peer scripts against the test server, as `python -m bench` does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from redis import Redis

from bench.apps import PASSTHROUGH_STREAMS, PIPELINE_STREAMS
from bench.harness import Bench
from bench.payload import Invoice
from bench.scenarios import latency
from bench.scenarios import tasks as tasks_scenario
from bench.systems import measure

if TYPE_CHECKING:
    from gristmill.embedded import EmbeddedServer

MESSAGES = 3000


def _order_ids(client: Redis, stream: str) -> list[str]:
    ids = []
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream)  # type: ignore[assignment]
    for _entry_id, fields in entries:
        ids.append(Invoice.FromString(fields[b"payload"]).order_id)
    return ids


def _pending(client: Redis, stream: str, group: str) -> int:
    deadline = time.monotonic() + 5.0
    while True:  # the last batch's XACK rides right behind its XADDs: let it land
        pending = int(client.xpending(stream, group)["pending"])
        if pending == 0 or time.monotonic() > deadline:
            return pending
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("system", ["handloop", "handloop-raw"])
@pytest.mark.parametrize("streams", [PASSTHROUGH_STREAMS, PIPELINE_STREAMS], ids=["one", "three"])
def test_every_message_arrives_exactly_once(
    server: EmbeddedServer, system: str, streams: tuple[str, ...]
) -> None:
    bench = Bench(server.url)
    client = Redis.from_url(server.url)
    try:
        result = measure(bench, "smoke", system, streams, MESSAGES)

        assert "note" not in result, result
        assert isinstance(result["msgs_per_s"], int)
        assert result["msgs_per_s"] > 0
        order_ids = _order_ids(client, streams[-1])
        assert len(order_ids) == MESSAGES
        assert set(order_ids) == {f"o-{n:09d}" for n in range(MESSAGES)}
        for stage_input in streams[:-1]:
            assert _pending(client, stage_input, "bench") == 0
    finally:
        client.close()
        bench.close()


def test_a_missing_system_is_a_row_not_a_crash(server: EmbeddedServer) -> None:
    bench = Bench(server.url)
    try:
        result = measure(bench, "smoke", "no-such-system", PASSTHROUGH_STREAMS, 10)
    finally:
        bench.close()

    assert result["msgs_per_s"] is None
    assert "no-such-system" in str(result["note"])


@pytest.mark.slow
@pytest.mark.parametrize("system", ["gristmill", "gristmill-untracked", "gristmill-end-to-end"])
def test_the_tasks_scenario_runs_every_task_once(server: EmbeddedServer, system: str) -> None:
    bench = Bench(server.url)
    client = Redis.from_url(server.url)
    try:
        result = tasks_scenario.measure(bench, system, MESSAGES)
        stream, group = tasks_scenario.QUEUES[system]
        assert "not measured" not in str(result.get("note")), result
        assert isinstance(result["msgs_per_s"], int)
        assert isinstance(result["enqueue_per_s"], int), result
        assert result["tasks"] == MESSAGES
        assert client.xlen(stream) == MESSAGES
        assert _pending(client, stream, group) == 0
        records = len(list(client.scan_iter(match="{gm:tasks:bench}:task:*", count=10_000)))
        tracked = system != "gristmill-untracked"
        assert records == (MESSAGES if tracked else 0)  # _check saw each one done
    finally:
        client.close()
        bench.close()


def test_a_paced_latency_run_sees_every_message_once(server: EmbeddedServer) -> None:
    bench = Bench(server.url)
    try:
        row = latency.paced_row(bench, "gristmill", 1000.0, 1000, None)
    finally:
        bench.close()

    assert "note" not in row, row  # a missing or doubled output would be named there
    assert (row["messages"], row["offered_per_s"]) == (1000, 1000)
    p50, p99 = row["p50_ms"], row["p99_ms"]
    assert isinstance(p50, float)
    assert isinstance(p99, float)
    assert 0 < p50 <= p99
    assert "saturation_msgs_per_s" not in row  # paced at a given rate, not measured
