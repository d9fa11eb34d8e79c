"""Start-up failures as a user meets them: one `error:` line, one `fix:` line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import redis as sync_redis

from gristmill import Publisher
from gristmill.errors import ConfigError
from gristmill.schemas.registry import SchemaRegistry
from tests.apps.two_schemas import _second

if TYPE_CHECKING:
    from pathlib import Path

    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

pytestmark = pytest.mark.slow


def start(target: str, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
    """Run `runtime serve target` until it gives up; its exit code and stderr."""
    child_env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-m", "gristmill", "serve", target],
        env=child_env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stderr


def assert_one_error(code: int, stderr: str, *needles: str) -> None:
    lines = stderr.splitlines()
    assert code != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert [line for line in lines if line.startswith("error:")].__len__() == 1, stderr
    assert [line for line in lines if line.startswith("fix:")].__len__() == 1, stderr
    assert "serving" not in stderr, stderr  # nothing claims to run before the check
    for needle in needles:
        assert needle in stderr, stderr


def test_a_too_short_lease_names_the_variable(server: EmbeddedServer) -> None:
    code, err = start(
        "services.orders:app", {"GRISTMILL_REDIS_URL": server.url, "GRISTMILL_LEASE_TTL_MS": "10"}
    )
    assert_one_error(code, err, "error: GRISTMILL_LEASE_TTL_MS: Input should be greater")


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("redis://127.0.0.1:1/0", "cannot reach the server"),
        ("unix:///nonexistent/gristmill.sock", "No such file"),
    ],
)
def test_an_unreachable_server_is_one_error(url: str, needle: str) -> None:
    code, err = start(
        "services.orders:app", {"GRISTMILL_REDIS_URL": url, "GRISTMILL_START_TIMEOUT": "0"}
    )
    assert_one_error(code, err, needle)


def test_an_unreachable_server_is_retried_for_the_start_timeout() -> None:
    env = {"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0", "GRISTMILL_START_TIMEOUT": "1"}
    code, err = start("services.orders:app", env)
    assert_one_error(code, err, "retrying for up to 1 s", "tried for 1 s")


def test_a_bad_db_index_is_one_error(server: EmbeddedServer) -> None:
    code, err = start(
        "services.orders:app", {"GRISTMILL_REDIS_URL": f"redis://127.0.0.1:{server.port}/999"}
    )
    assert_one_error(code, err, "refused")


async def test_a_refused_schema_registers_none_of_the_apps_schemas(
    server: EmbeddedServer, redis: Redis
) -> None:
    registry = SchemaRegistry(redis)
    await registry.register(_second.build().descriptor("startup.Second"))  # n: int64
    code, err = start(
        "tests.apps.two_schemas:app",
        {"GRISTMILL_REDIS_URL": server.url, "STARTUP_SECOND_TYPE": "string"},
    )
    assert_one_error(code, err, "startup.Second", "not BACKWARD-compatible")
    assert await registry.subjects() == ["startup.Second"]  # startup.First was not registered


@pytest.mark.parametrize(
    ("text", "needle"), [(None, "no such file"), ("message X { int32 a = 1 }", "protoc refused")]
)
def test_a_bad_proto_is_one_error(
    tmp_path: Path, server: EmbeddedServer, text: str | None, needle: str
) -> None:
    proto = tmp_path / "x.proto"
    if text is not None:
        proto.write_text('syntax = "proto3";\n' + text + "\n")
    code, err = start(
        "tests.apps.bad_proto:app", {"GRISTMILL_REDIS_URL": server.url, "BAD_PROTO": str(proto)}
    )
    assert_one_error(code, err, needle)


def test_a_missing_attribute_lists_the_apps_of_the_module(server: EmbeddedServer) -> None:
    code, err = start("services.orders:nope", {"GRISTMILL_REDIS_URL": server.url})
    assert_one_error(code, err, "no attribute 'nope'", "services.orders:app")


def test_dotenv_ignores_other_tools_keys_and_names_typos_as_written(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://x\nGRISTMILL_BACH=5\n")
    env = {"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": os.getcwd()}
    code, err = start("services.orders:app", env, cwd=tmp_path)
    assert_one_error(code, err, "error: GRISTMILL_BACH: unknown setting")
    assert "GRISTMILL_GRISTMILL" not in err
    assert "DATABASE_URL" not in err


def test_dotenv_keys_of_other_tools_do_not_block_the_start(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgres://x\nGRISTMILL_START_TIMEOUT=0\n")
    env = {"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0", "PYTHONPATH": os.getcwd()}
    code, err = start("services.orders:app", env, cwd=tmp_path)
    assert_one_error(code, err, "error: cannot reach the server")  # got past the settings


def test_publisher_refuses_a_sync_client_saying_which_to_use(server: EmbeddedServer) -> None:
    client = sync_redis.Redis.from_url(server.url)
    try:
        with pytest.raises(ConfigError, match="from redis.asyncio import Redis"):
            Publisher(client)  # type: ignore[arg-type]  # the mistake under test
    finally:
        client.close()


def test_load_proto_finds_a_file_beside_the_calling_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "x.proto").write_text('syntax = "proto3";\nmessage X { int32 a = 1; }\n')
    module = tmp_path / "svc" / "mod.py"
    monkeypatch.chdir(tmp_path)  # elsewhere: x.proto is not in the current directory
    namespace: dict[str, object] = {"__file__": str(module)}
    code = "from gristmill import load_proto\nSCHEMA = load_proto('x.proto')\n"
    exec(compile(code, str(module), "exec"), namespace)  # noqa: S102 - a module, as imported
    assert "X" in namespace["SCHEMA"].message_names()  # type: ignore[attr-defined]
