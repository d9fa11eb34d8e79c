"""The health port of a real runtime: readiness follows the server, liveness the event loop."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill.settings import Settings
from tests.apps import invoicer
from tests.helpers.proxy import Mode, TcpProxy
from tests.telemetry.probes import free_port, get, get_async, wait_for_status

if TYPE_CHECKING:
    from gristmill.embedded import EmbeddedServer


@pytest.mark.fault
async def test_readiness_is_false_while_the_server_is_down_and_true_after(
    server: EmbeddedServer,
) -> None:
    from gristmill.runtime import Runtime

    port = free_port()
    settings = Settings(
        block_ms=100, socket_timeout=1.0, connect_timeout=1.0, health_port=port,
        health_host="127.0.0.1",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with TcpProxy(server.port) as proxy:
        runtime = Runtime(invoicer.app, settings, f"redis://127.0.0.1:{proxy.port}/0")
        async with anyio.create_task_group() as group:
            group.start_soon(runtime.run)
            assert await wait_for_status(f"{base}/readyz", 200) == "ready\n"
            assert await get_async(f"{base}/livez") == (200, "ok\n")

            proxy.mode = Mode.CUT  # the server is unreachable
            body = await wait_for_status(f"{base}/readyz", 503)
            assert body.startswith("not ready: no server connection")
            assert (await get_async(f"{base}/livez"))[0] == 200  # down, but alive

            proxy.mode = Mode.PASS
            assert await wait_for_status(f"{base}/readyz", 200) == "ready\n"

            runtime.stop()  # draining: no new traffic
            assert (await wait_for_status(f"{base}/readyz", 503)).startswith("not ready")
    assert get(f"{base}/livez")[0] == 0  # the port is closed with the runtime


async def test_liveness_is_false_while_the_event_loop_is_blocked(server: EmbeddedServer) -> None:
    from gristmill.runtime import Runtime

    port = free_port()
    settings = Settings(block_ms=100, health_port=port, health_host="127.0.0.1", health_stale=0.5)
    base = f"http://127.0.0.1:{port}"
    runtime = Runtime(invoicer.app, settings, server.url)
    seen: list[tuple[int, str]] = []
    blocked = threading.Event()

    def probe_while_blocked() -> None:
        blocked.wait(30)
        time.sleep(1.5)  # three times the staleness limit into the block
        seen.append(get(f"{base}/livez"))
        seen.append(get(f"{base}/readyz"))

    async with anyio.create_task_group() as group:
        group.start_soon(runtime.run)
        await wait_for_status(f"{base}/readyz", 200)
        prober = threading.Thread(target=probe_while_blocked)
        prober.start()
        blocked.set()
        time.sleep(4.0)  # noqa: ASYNC251 - blocking the loop on purpose
        await anyio.to_thread.run_sync(prober.join)
        assert await wait_for_status(f"{base}/livez", 200) == "ok\n"  # it turns again
        runtime.stop()
    assert seen[0] == (503, "event loop blocked\n")
    assert seen[1] == (503, "not ready: the event loop is blocked\n")
