"""Failover of the sweeper across processes (fault tests): kill -9 the leader mid-sweep, and
pause it (SIGSTOP) past its ttl. Nothing is lost or swept twice; a resumed ex-leader's sweep
is refused by the token check inside the script.

Failover times are logged (run with `-o log_cli=true --log-cli-level=INFO` to see them), not
asserted: durations on a shared machine make flaky tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from gristmill import keys
from gristmill.timing.delayed import DelayedStore
from tests.timing.streams import payload_counts

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("sweeper_child.py")
TTL_MS, RENEW_MS = 1000, 300
STREAMS = ("orders", "payments")


class Replica:
    """One sweeper process and the counts it writes to a file."""

    def __init__(self, server: EmbeddedServer, directory: Path, name: str) -> None:
        self.counts_path = directory / f"{name}.json"
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), server.url, str(self.counts_path), str(TTL_MS),
             str(RENEW_MS)],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def counts(self) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(self.counts_path.read_text())
        except (OSError, ValueError):
            return {"terms": 0, "moved": 0, "refused": 0, "held": False, "first_led_at": None}
        return record

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
        self.process.kill()
        self.process.wait()


def spawn(replicas: list[Replica], server: EmbeddedServer, tmp_path: Path) -> Replica:
    replica = Replica(server, tmp_path, f"r{len(replicas)}")
    replicas.append(replica)
    return replica


async def wait_for(what: str, check: Any) -> None:
    with anyio.fail_after(30):
        while not check():
            await anyio.sleep(0.01)
    log.info("reached: %s", what)


async def schedule_spread(redis: Redis, count: int, spread_ms: int) -> None:
    store = DelayedStore(redis, bucket_ms=10)
    seconds, micros = await redis.time()
    start = int(seconds) * 1000 + int(micros) // 1000 + 500
    await store.schedule_many(
        (
            STREAMS[n % 2],
            [b"schema_id", b"s" * 16, b"payload", b"%d" % n],
            start + n * spread_ms // count,
        )
        for n in range(count)
    )


async def assert_each_swept_once(redis: Redis, count: int) -> None:
    async def moved() -> int:
        return sum([await redis.xlen(stream) for stream in STREAMS])

    with anyio.fail_after(60):
        while await moved() < count:
            await anyio.sleep(0.05)
    await anyio.sleep(0.3)  # a double move would show up as more than `count`
    assert await payload_counts(redis, *STREAMS) == Counter(range(count))
    for stream in STREAMS:
        assert await redis.zcard(keys.delayed_store(stream)) == 0


@pytest.mark.fault
@pytest.mark.slow
async def test_kill_9_of_the_leader_mid_sweep_loses_and_doubles_nothing(
    redis: Redis, server: EmbeddedServer, tmp_path: Path
) -> None:
    count = 60_000
    await schedule_spread(redis, count, spread_ms=4000)
    replicas: list[Replica] = []
    try:
        first = spawn(replicas, server, tmp_path)
        await wait_for("first leads", lambda: first.counts()["terms"] == 1)
        second = spawn(replicas, server, tmp_path)
        await wait_for("first swept some", lambda: first.counts()["moved"] > count // 5)
        first.signal(signal.SIGKILL)
        killed_at = time.time()
        moved_by_first = first.counts()["moved"]
        await wait_for("second leads", lambda: second.counts()["terms"] == 1)
        failover_s = second.counts()["first_led_at"] - killed_at
        log.info("failover after kill -9: %.3f s (ttl %d ms + renew %d ms)", failover_s,
                 TTL_MS, RENEW_MS)  # fmt: skip
        await assert_each_swept_once(redis, count)
        assert 0 < moved_by_first < count  # it really died mid-sweep
        assert second.counts()["refused"] == 0
    finally:
        for replica in replicas:
            replica.stop()


@pytest.mark.fault
@pytest.mark.slow
async def test_a_paused_leader_is_refused_by_the_token_check(
    redis: Redis, server: EmbeddedServer, tmp_path: Path
) -> None:
    count = 40_000
    await schedule_spread(redis, count, spread_ms=12_000)
    replicas: list[Replica] = []
    refused = 0
    try:
        a = spawn(replicas, server, tmp_path)
        await wait_for("a leads", lambda: a.counts()["terms"] == 1)
        b = spawn(replicas, server, tmp_path)
        leader, standby = a, b
        for cycle in range(3):
            await wait_for("leader sweeps", lambda: leader.counts()["moved"] > 0)  # noqa: B023
            terms_before = standby.counts()["terms"]
            leader.signal(signal.SIGSTOP)
            stopped_at = time.time()
            await wait_for(
                "standby takes over",
                lambda: standby.counts()["terms"] > terms_before,  # noqa: B023
            )
            log.info("failover after SIGSTOP: %.3f s",
                     standby.counts()["first_led_at"] - stopped_at if cycle == 0 else -1)  # fmt: skip
            await anyio.sleep(0.2)  # the new leader sweeps meanwhile
            leader.signal(signal.SIGCONT)
            await wait_for("the paused one steps down", lambda: not leader.counts()["held"])  # noqa: B023
            await anyio.sleep(0.1)
            refused = a.counts()["refused"] + b.counts()["refused"]
            log.info("cycle %d: refused so far %d", cycle, refused)
            if refused:
                break
            leader, standby = standby, leader
        await assert_each_swept_once(redis, count)
        assert refused >= 1
    finally:
        for replica in replicas:
            replica.stop()
