"""The CLI's global options and its exit codes when what it is asked about does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from gristmill import keys
from gristmill.cli import runtime
from gristmill.cli.globals import take_url

if TYPE_CHECKING:
    from pathlib import Path

    import redis as sync_redis
    from click.testing import CliRunner

    from gristmill.embedded import EmbeddedServer


def test_url_is_taken_from_anywhere_before_a_double_dash() -> None:
    assert take_url(["dlq", "list", "--url", "redis://h/0"]) == (["dlq", "list"], "redis://h/0")
    assert take_url(["--url=redis://h/1", "dlq"]) == (["dlq"], "redis://h/1")
    assert take_url(["publish", "--", "--url", "x"]) == (["publish", "--", "--url", "x"], None)


def test_url_after_a_command_overrides_the_environment(
    cli: CliRunner, db: sync_redis.Redis, server: EmbeddedServer
) -> None:
    env = {"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0"}  # unreachable: --url must win
    result = cli.invoke(runtime, ["schemas", "list", "--url", server.url], env=env)
    assert result.exit_code == 0, result.output
    assert "no schemas registered yet" in result.output


def test_version(cli: CliRunner) -> None:
    result = cli.invoke(runtime, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("runtime, version ")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["dlq", "show", "no.such.stream", "some.group"], "no stream no.such.stream"),
        (["dlq", "purge", "orders", "no.such.group", "--yes"], "orders has no group"),
        (["schemas", "mode", "no.such.Subject", "FULL"], "no subject no.such.Subject"),
    ],
)
def test_what_does_not_exist_is_an_error(
    cli: CliRunner, db: sync_redis.Redis, argv: list[str], needle: str
) -> None:
    db.xgroup_create("orders", "orders.bill", id="0", mkstream=True)
    result = cli.invoke(runtime, argv)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not db.exists(keys.subject_compatibility("no.such.Subject"))  # no mode was made


def test_an_existing_group_without_dead_letters_is_an_empty_lane(
    cli: CliRunner, db: sync_redis.Redis
) -> None:
    db.xgroup_create("orders", "orders.bill", id="0", mkstream=True)
    result = cli.invoke(runtime, ["dlq", "show", "orders", "orders.bill"])
    assert result.exit_code == 0, result.output


def test_a_command_in_a_directory_without_data_says_its_server_is_new(tmp_path: Path) -> None:
    env = {**os.environ, "GRISTMILL_REDIS_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "gristmill", "schemas", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "this is a new, empty server" in done.stderr
    assert "pass --url" in done.stderr
