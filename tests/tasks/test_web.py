"""The embedded-worker examples under real web servers: uvicorn serving the Starlette app, and
waitress serving the Flask app; a request enqueues a task, the response carries its result."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

import pytest

from gristmill.embedded import free_port
from tests.helpers.procs import python_module

if TYPE_CHECKING:
    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.slow


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=15) as response:
        value: dict[str, object] = json.loads(response.read())
        return value


@pytest.mark.parametrize(
    "server_argv",
    [
        pytest.param(("uvicorn", "services.web_asgi:web", "--port"), id="asgi-uvicorn"),
        pytest.param(("waitress", "services.web_wsgi:web", "--port"), id="wsgi-waitress"),
    ],
)
def test_a_request_enqueues_and_the_response_carries_the_result(
    server: EmbeddedServer, server_argv: tuple[str, str, str]
) -> None:
    port = free_port()
    module, target, port_flag = server_argv
    argv: tuple[str, ...] = (target, "--host", "127.0.0.1", port_flag, str(port))
    if module == "waitress":
        argv = (f"--listen=127.0.0.1:{port}", target)
    env = {"GRISTMILL_REDIS_URL": server.url, "GRISTMILL_BLOCK_MS": "100"}
    with python_module(module, *argv, env=env) as web:
        web.wait_for(lambda: _reachable(port), within=30, what="the web server to answer")
        for name in ("Ada", "Grace", "Linus"):
            body = get_json(f"http://127.0.0.1:{port}/greet?name={name}")
            assert body["result"] == f"Hello, {name}!", web.output
            assert isinstance(body["task"], str)
            assert len(body["task"]) == 36  # a uuid
        # uvicorn drains the lifespan (the workers) and exits by the signal; waitress just ends
        assert web.terminate() in (0, -15), web.output
    assert "Traceback" not in web.output
    if module == "uvicorn":
        assert "Application shutdown complete" in web.output


def _reachable(port: int) -> bool | None:
    try:
        get_json(f"http://127.0.0.1:{port}/greet?name=probe")
    except OSError:
        return None
    return True
