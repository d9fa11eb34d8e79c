"""`runtime ui` over HTTP on 127.0.0.1: read-only by default, the token and Host rules, bad
requests, and the start refused (error: and fix:, no traceback) when a token is missing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from gristmill import keys
from gristmill.cli import runtime
from tests.failures.lanes_data import add_dead_sync
from tests.ui.conftest import start_ui

if TYPE_CHECKING:
    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer

TOKEN = "a-long-random-test-token"
LANE = {"stream": "orders", "group": "billing"}


def _request(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_read_only_by_default(server: EmbeddedServer, db: sync_redis.Redis) -> None:
    add_dead_sync(db, 1, "handler")
    ui, base = start_ui(env={"GRISTMILL_REDIS_URL": server.url})
    with ui:
        status, page = _request(base + "/")
        assert status == 200
        assert "read-only" in page
        status, lane = _request(f"{base}/api/lane?stream=orders&group=billing")
        assert status == 200
        assert [r["reason"] for r in lane["reasons"]] == ["handler"]
        status, reply = _request(base + "/api/lane/replay", LANE, {"x-gristmill-token": ""})
        assert status == 403
        assert "--allow-actions" in reply["error"]
        assert db.xlen(keys.dead_lane("orders", "billing")) == 1
        assert ui.terminate() == 0  # SIGTERM: uvicorn stops, the sampler is cancelled


def test_actions_need_the_token_and_a_loopback_host_header(
    server: EmbeddedServer, db: sync_redis.Redis
) -> None:
    first, *_ = [add_dead_sync(db, n, "handler") for n in range(3)]
    dead = keys.dead_lane("orders", "billing")
    ui, base = start_ui(
        "--allow-actions", "--token", TOKEN, env={"GRISTMILL_REDIS_URL": server.url}
    )
    with ui:
        purge = base + "/api/lane/purge"
        assert _request(purge, LANE)[0] == 403  # no token header
        assert _request(purge, LANE, {"x-gristmill-token": "wrong"})[0] == 403
        cross_site = {"x-gristmill-token": TOKEN, "origin": "http://evil.example"}
        assert _request(purge, LANE, cross_site)[0] == 403
        rebound = {"x-gristmill-token": TOKEN, "host": "evil.example"}
        assert _request(base + "/api/live", headers=rebound)[0] == 403
        assert db.xlen(dead) == 3  # nothing refused touched the lane
        status, reply = _request(purge, {**LANE, "id": "not-an-id"}, {"x-gristmill-token": TOKEN})
        assert status == 400
        status, reply = _request(
            purge, {"stream": "orders", "group": "nobody"}, {"x-gristmill-token": TOKEN}
        )
        assert status == 404
        assert keys.dead_lane("orders", "nobody") in reply["error"]
        status, reply = _request(purge, {**LANE, "id": first}, {"x-gristmill-token": TOKEN})
        assert (status, reply["deleted"]) == (200, 1)
        status, reply = _request(base + "/api/lane/replay", LANE, {"x-gristmill-token": TOKEN})
        assert (status, reply["moved"]) == (200, 2)
        assert db.xlen(dead) == 0
        assert db.xlen(keys.retry_lane("orders", "billing")) == 2


def test_actions_off_loopback_without_a_token_refuse_to_start(cli: CliRunner) -> None:
    result = cli.invoke(runtime, ["ui", "--host", "0.0.0.0", "--allow-actions"])
    assert result.exit_code == 2
    assert "error: --allow-actions on 0.0.0.0" in result.stderr
    assert "fix: add --token" in result.stderr
    assert "Traceback" not in result.output
