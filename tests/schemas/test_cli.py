"""`runtime schemas ...` against the session's real server."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
import redis as sync_redis
from click.testing import CliRunner

from gristmill.cli import runtime
from tests.schemas.people import PERSON, ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from gristmill.embedded import EmbeddedServer

PERSON_PROTO = str(ROOT / "schemas" / "person.proto")
ORDERS_PROTO = str(ROOT / "schemas" / "orders.proto")


@pytest.fixture
def cli(server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    client = sync_redis.Redis.from_url(server.url)
    client.flushall(asynchronous=False)
    client.close()
    monkeypatch.setenv("GRISTMILL_REDIS_URL", server.url)
    return CliRunner()


def _run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(runtime, ["schemas", *args], catch_exceptions=False)


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_register_list_show(cli: CliRunner) -> None:
    registered = _json(_run(cli, "register", PERSON_PROTO, "--json"))
    assert [row["message"] for row in registered] == ["example.people.TagList", PERSON]
    person_id = registered[1]["schema_id"]
    listed = _json(_run(cli, "list", "--json"))
    assert {row["subject"]: row["latest_id"] for row in listed}[PERSON] == person_id
    by_id = _json(_run(cli, "show", person_id, "--json"))
    by_subject = _json(_run(cli, "show", PERSON, "--json"))
    assert by_id == by_subject
    assert by_id["files"] == ["person.proto"]
    person = next(t for t in by_id["types"] if t["name"] == PERSON)
    assert [f["name"] for f in person["fields"]][:3] == ["name", "id", "email"]
    shown = _run(cli, "show", PERSON)
    assert "tags: map<string, example.people.TagList>" in shown.stdout
    assert person_id in shown.stdout
    table = _run(cli, "list")
    assert table.stdout.count("BACKWARD") == 2


def test_register_again_is_the_same_version(cli: CliRunner) -> None:
    first = _json(
        _run(cli, "register", ORDERS_PROTO, "--message", "example.orders.Order", "--json")
    )
    again = _json(
        _run(cli, "register", ORDERS_PROTO, "--message", "example.orders.Order", "--json")
    )
    assert first == again
    assert first[0]["version"] == 1


def _changed_person(tmp_path: Path, id_type: str) -> str:
    text = (ROOT / "schemas" / "person.proto").read_text()
    path = tmp_path / "person.proto"
    path.write_text(text.replace("int32 id = 2;", f"{id_type} id = 2;"))
    return str(path)


def test_check_says_which_field_and_rule(cli: CliRunner, tmp_path: Path) -> None:
    _run(cli, "register", PERSON_PROTO, "--message", PERSON)
    fine = _run(cli, "check", _changed_person(tmp_path, "int64"), "--subject", PERSON)
    assert fine.exit_code == 0
    assert "BACKWARD-compatible" in fine.stdout
    refused = _run(cli, "check", _changed_person(tmp_path, "string"), "--subject", PERSON)
    assert refused.exit_code == 1
    assert "example.people.Person.id (field 2): type_change: int32 -> string" in refused.stdout
    verdict = json.loads(
        _run(
            cli, "check", _changed_person(tmp_path, "string"), "--subject", PERSON, "--json"
        ).stdout
    )
    assert verdict["compatible"] is False


def test_register_refuses_an_incompatible_version(cli: CliRunner, tmp_path: Path) -> None:
    _run(cli, "register", PERSON_PROTO, "--message", PERSON)
    refused = _run(cli, "register", _changed_person(tmp_path, "string"), "--message", PERSON)
    assert refused.exit_code == 1
    assert "type_change" in refused.stderr
    assert _run(cli, "mode", PERSON, "NONE").exit_code == 0
    accepted = _json(
        _run(cli, "register", _changed_person(tmp_path, "string"), "--message", PERSON, "--json")
    )
    assert accepted[0]["version"] == 2


def test_unknown_targets_and_broken_files_name_the_fix(cli: CliRunner, tmp_path: Path) -> None:
    missing = _run(cli, "show", "s1AAAAAAAAAAAAAAAA")
    assert missing.exit_code == 2
    assert "fix:" in missing.stderr
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3"; message M { strin a = 1; }')
    refused = _run(cli, "register", str(broken))
    assert refused.exit_code == 2
    assert "strin" in refused.stderr


_USES_STUBS = """
from example.people import Person, TagList

def describe(person: Person) -> str:
    person.tags["team"].tags.append("red")
    return person.name + person.address.city + str(person.phones[0].type)

TagList(tags=["a"])
"""


@pytest.mark.slow
def test_codegen_stubs_let_mypy_check_field_access(cli: CliRunner, tmp_path: Path) -> None:
    _run(cli, "register", PERSON_PROTO)
    out_dir = tmp_path / "typings"
    result = _run(cli, "codegen", "--out", str(out_dir))
    assert result.exit_code == 0, result.output
    assert (out_dir / "example" / "people.pyi").is_file()
    assert (out_dir / "example" / "__init__.pyi").is_file()
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(_USES_STUBS)
    bad.write_text(_USES_STUBS + "\nPerson().name = 3\nPerson().nickname\n")
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    env_path = {"MYPYPATH": str(out_dir), "PATH": ""}
    checked = subprocess.run([*mypy, str(good)], capture_output=True, text=True, env=env_path,
                             cwd=tmp_path, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout
    refused = subprocess.run([*mypy, str(bad)], capture_output=True, text=True, env=env_path,
                             cwd=tmp_path, check=False)  # fmt: skip
    assert refused.returncode == 1
    assert 'has no attribute "nickname"' in refused.stdout
    assert "Incompatible types in assignment" in refused.stdout


def test_an_unreachable_server_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRISTMILL_REDIS_URL", "redis://127.0.0.1:1/0")
    result = CliRunner().invoke(runtime, ["schemas", "list"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "cannot reach the server" in result.stderr
    assert "GRISTMILL_REDIS_URL" in result.stderr
