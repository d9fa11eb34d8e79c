"""A real Prometheus scrapes a real runtime's /metrics; its HTTP API shows the known load."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.producer import Publisher
from tests.apps import invoicer
from tests.helpers.procs import Proc, serve
from tests.pipeline.messages import Order
from tests.telemetry.probes import free_port, get, get_async, wait_for_status

if TYPE_CHECKING:
    from pathlib import Path

    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

ORDERS = 120
AUDIT = "audit"  # a group on the output nobody reads: its lag is the number of invoices


def _prometheus(binary: str, target_port: int, tmp_path: Path) -> tuple[Proc, int]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: gristmill\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    proc = Proc([
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ])  # fmt: skip
    return proc, port


async def _query(port: int, promql: str) -> float | None:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    status, body = await get_async(url)
    if status != 200:
        return None
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None


async def _wait_for_value(port: int, promql: str, expected: float, proc: Proc) -> None:
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        assert proc.alive, proc.output[-3000:]
        seen = await _query(port, promql)
        if seen == expected:
            return
        await anyio.sleep(0.5)
    raise AssertionError(f"{promql} = {seen} in Prometheus, expected {expected}")


@pytest.mark.slow
async def test_prometheus_scrapes_the_handled_counter_and_the_lag_gauge(
    server: EmbeddedServer, redis: Redis, prometheus_binary: str, tmp_path: Path
) -> None:
    health_port = free_port()
    env = {
        "GRISTMILL_REDIS_URL": server.url, "GRISTMILL_HEALTH_PORT": str(health_port),
        "GRISTMILL_HEALTH_HOST": "127.0.0.1", "GRISTMILL_BLOCK_MS": "100",
    }  # fmt: skip
    await redis.xgroup_create(invoicer.OUTPUT, AUDIT, id="0", mkstream=True)
    with serve("tests.apps.invoicer:app", env=env) as runtime:
        await wait_for_status(f"http://127.0.0.1:{health_port}/readyz", 200, within=60)
        publisher = Publisher(redis)
        for n in range(ORDERS):
            await publisher.publish(invoicer.INPUT, Order(id=f"o-{n}", sku="tea", quantity=n))
        prometheus, port = _prometheus(prometheus_binary, health_port, tmp_path)
        with prometheus:
            await _wait_for_value(
                port, 'gristmill_entries_handled_total{processor="bill"}', ORDERS, prometheus
            )
            lag = f'gristmill_group_lag{{stream="{invoicer.OUTPUT}",group="{AUDIT}"}}'
            await _wait_for_value(port, lag, ORDERS, prometheus)
            up = await _query(port, 'up{job="gristmill"}')
            assert up == 1.0
        assert runtime.alive, runtime.output[-3000:]
    assert get(f"http://127.0.0.1:{health_port}/metrics")[0] == 0  # stopped with the runtime
