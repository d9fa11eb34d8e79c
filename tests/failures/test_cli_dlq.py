"""`runtime dlq ...` through click's runner against the real server (synchronous tests: the
command runs its own event loop)."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner, Result

from gristmill import keys
from gristmill.cli import runtime
from tests.failures.lanes_data import add_dead_sync, entries_sync, original, xadd_sync

if TYPE_CHECKING:
    import redis as sync_redis

DEAD = keys.dead_lane("orders", "billing")
RETRY = keys.retry_lane("orders", "billing")


def raw(field: dict[str, Any]) -> bytes:
    value: str = field["value"]
    return base64.b64decode(value) if field["base64"] else value.encode()


def run(cli: CliRunner, *args: str, stdin: str | None = None) -> Result:
    return cli.invoke(runtime, ["dlq", *args], input=stdin, catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_shows_each_lane_with_reason_counts(cli: CliRunner, db: sync_redis.Redis) -> None:
    for n in range(3):
        add_dead_sync(db, n, "decode_error")
    add_dead_sync(db, 3, "handler")
    add_dead_sync(db, 4, "crash_loop", group="shipping")
    lanes = as_json(run(cli, "list", "--json"))
    assert [(lane["stream"], lane["group"], lane["entries"]) for lane in lanes] == [
        ("orders", "billing", 4),
        ("orders", "shipping", 1),
    ]
    assert lanes[0]["reasons"] == {"decode_error": 3, "handler": 1}
    assert lanes[0]["reasons_partial"] is False
    table = run(cli, "list", "--group", "shipping")
    assert table.exit_code == 0
    assert "shipping" in table.stdout
    assert "crash_loop 1" in table.stdout
    assert "billing" not in table.stdout


def test_list_with_no_lanes_says_so(cli: CliRunner, db: sync_redis.Redis) -> None:
    result = run(cli, "list")
    assert result.exit_code == 0
    assert "no dead-letter lanes" in result.stderr
    assert as_json(run(cli, "list", "--json")) == []


def test_show_lists_entries_and_one_in_full(cli: CliRunner, db: sync_redis.Redis) -> None:
    ids = [add_dead_sync(db, n, "handler" if n else "oversize") for n in range(4)]
    summaries = as_json(run(cli, "show", "orders", "billing", "--reason", "handler", "--json"))
    assert [row["id"] for row in summaries] == ids[1:]
    assert summaries[0]["message"] == "entry 1 is bad"
    assert summaries[0]["last_failure"] == "1970-01-01T00:00:01.500+00:00"
    table = run(cli, "show", "orders", "billing", "--count", "2")
    assert table.exit_code == 0
    assert ids[0] in table.stdout
    assert ids[2] not in table.stdout
    detail = as_json(run(cli, "show", "orders", "billing", ids[2], "--json"))
    assert detail["exception"] == "ValueError"
    assert "entry 2 is bad" in detail["traceback"]
    assert [
        item for field in detail["fields"] for item in (field["name"].encode(), raw(field))
    ] == (original(2))
    assert detail["fields"][-1] == {"name": "h:n", "value": "2", "base64": False}
    binary = xadd_sync(db, DEAD, "payload", b"\xff\x00", "dl:reason", "handler")
    binary_detail = as_json(run(cli, "show", "orders", "billing", binary, "--json"))
    assert binary_detail["fields"] == [{"name": "payload", "value": "/wA=", "base64": True}]
    human = run(cli, "show", "orders", "billing", ids[2])
    assert "field h:n" in human.stdout
    assert "Traceback" in human.stdout


def test_show_of_a_missing_entry_names_the_fix(cli: CliRunner, db: sync_redis.Redis) -> None:
    db.xgroup_create("orders", "billing", id="0", mkstream=True)  # the lane exists, empty
    result = run(cli, "show", "orders", "billing", "1-0")
    assert result.exit_code == 2
    assert "no entry 1-0" in result.stderr
    assert "fix:" in result.stderr


def test_user_text_is_not_read_as_markup(cli: CliRunner, db: sync_redis.Redis) -> None:
    xadd_sync(db, DEAD, "payload", "x", "dl:reason", "[bold]sneaky[/bold]")
    result = run(cli, "show", "orders", "billing")
    assert "[bold]sneaky[/bold]" in result.stdout


def test_replay_moves_matching_entries_to_the_retry_lane(
    cli: CliRunner, db: sync_redis.Redis
) -> None:
    for n in range(6):
        add_dead_sync(db, n, "handler" if n % 2 else "decode_error")
    dry = as_json(
        run(cli, "replay", "orders", "billing", "--reason", "handler", "--dry-run", "--json")
    )
    assert dry == {"dead_lane": DEAD, "retry_lane": RETRY, "would_move": 3}
    assert db.xlen(RETRY) == 0
    moved = as_json(run(cli, "replay", "orders", "billing", "--reason", "handler", "--json"))
    assert moved == {"dead_lane": DEAD, "retry_lane": RETRY, "moved": 3, "skipped": 0, "refused": 0}
    assert db.xlen(DEAD) == 3
    assert [fields[5] for _, fields in entries_sync(db, RETRY)] == [b"1", b"3", b"5"]
    assert db.xlen("orders") == 0
    human = run(cli, "replay", "orders", "billing", "--limit", "2")
    assert human.exit_code == 0
    assert f"moved 2 entries from {DEAD} to {RETRY}" in human.stdout
    assert db.xlen(DEAD) == 1


def test_replay_by_id_range(cli: CliRunner, db: sync_redis.Redis) -> None:
    ids = [add_dead_sync(db, n, "handler") for n in range(5)]
    moved = as_json(
        run(cli, "replay", "orders", "billing", "--start", ids[1], "--end", ids[3], "--json")
    )
    assert moved["moved"] == 3
    assert [entry_id for entry_id, _ in entries_sync(db, DEAD)] == [ids[0], ids[4]]


def test_purge_asks_first(cli: CliRunner, db: sync_redis.Redis) -> None:
    for n in range(4):
        add_dead_sync(db, n, "handler" if n < 3 else "oversize")
    declined = run(cli, "purge", "orders", "billing", "--reason", "handler", stdin="n\n")
    assert declined.exit_code == 1
    assert "Delete 3 entries" in declined.stderr
    assert db.xlen(DEAD) == 4
    accepted = run(cli, "purge", "orders", "billing", "--reason", "handler", stdin="y\n")
    assert accepted.exit_code == 0
    assert f"deleted 3 entries from {DEAD}" in accepted.stdout
    assert db.xlen(DEAD) == 1
    forced = as_json(run(cli, "purge", "orders", "billing", "--yes", "--json"))
    assert forced == {"dead_lane": DEAD, "selected": 1, "deleted": 1}
    assert db.xlen(DEAD) == 0


def test_bad_ids_fail_with_a_fix(cli: CliRunner, db: sync_redis.Redis) -> None:
    result = run(cli, "replay", "orders", "billing", "--start", "yesterday")
    assert result.exit_code == 2
    assert "--start 'yesterday' is not a stream entry id" in result.stderr
    assert "fix:" in result.stderr


def test_an_unreachable_server_fails_with_a_fix(db: sync_redis.Redis) -> None:
    cli = CliRunner(env={"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0"})
    result = run(cli, "list")
    assert result.exit_code == 2
    assert "cannot reach the server" in result.stderr
