"""`runtime serve` as users run it: the demo on the embedded server, and --workers."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psutil
import pytest

from tests.delivery import GROUPS, pipeline_idle, place_orders
from tests.helpers.procs import serve

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_runs_on_an_embedded_server_and_stops_clean_on_ctrl_c(tmp_path: Path) -> None:
    for folder in ("services", "schemas"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    env = {"GRISTMILL_REDIS_URL": "", "GRISTMILL_DATA_DIR": str(tmp_path / "data")}
    with serve("services.demo:app", env=env, cwd=tmp_path) as demo:
        demo.wait_for_line("started embedded", within=30)
        record = json.loads((tmp_path / "data" / "server.json").read_text())
        server_pid = record["pid"]
        assert psutil.pid_exists(server_pid)
        demo.wait_for_line(r"order-\d+: (CHARGED|DECLINED)", within=30)  # through 3 stages
        demo.process.send_signal(signal.SIGINT)
        assert demo.process.wait(timeout=30) == 0
        assert demo.find_line("stopped cleanly") is not None
    gone = not psutil.pid_exists(server_pid) or (
        psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE
    )
    assert gone, "the embedded server outlived `runtime serve`"
    assert (tmp_path / "data" / "appendonlydir").is_dir()


async def test_workers_share_the_groups_and_drain_on_sigterm(
    server: EmbeddedServer, redis: Redis
) -> None:
    env = {"GRISTMILL_REDIS_URL": server.url, "GRISTMILL_BLOCK_MS": "200"}
    with (
        serve("services.orders:app", "--workers", "2", env=env) as orders,
        serve("services.payments:app", env=env) as payments,
    ):
        with anyio.fail_after(30):
            while True:
                if await redis.exists("orders.placed"):
                    consumers = await redis.xinfo_consumers("orders.placed", "orders.validate")
                    if len(consumers) == 2:
                        break
                await anyio.sleep(0.1)
        await place_orders(redis, range(5000))
        with anyio.fail_after(60):
            while await redis.xlen("receipts") < 5000 or not await pipeline_idle(redis):
                await anyio.sleep(0.1)
        codes = [await orders.terminate_async(), await payments.terminate_async()]
    assert codes == [0, 0]
    for stream, group in GROUPS.items():  # every worker drained and removed its consumer
        assert await redis.xinfo_consumers(stream, group) == []


def test_sigterm_during_start_up_still_exits_0(server: EmbeddedServer) -> None:
    env = {"GRISTMILL_REDIS_URL": server.url}
    with serve("tests.apps.slow_import:app", env=env) as worker:
        time.sleep(1.5)  # `import gristmill` is done (~0.35 s); the app is still importing
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0, worker.output
    assert worker.find_line("stop asked during start-up") is not None
