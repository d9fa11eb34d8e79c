from __future__ import annotations

import subprocess
import sys

import pytest

from gristmill.errors import ConfigError
from gristmill.settings import load_settings


def test_defaults_use_the_embedded_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRISTMILL_REDIS_URL", raising=False)
    settings = load_settings()
    assert settings.embedded
    assert settings.key_prefix == "gm:"


@pytest.mark.parametrize("prefix", ["gm:", "{gm}:", "team-a:{gm}:"])
def test_a_prefix_may_carry_one_hash_tag(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("GRISTMILL_KEY_PREFIX", prefix)
    assert load_settings().key_prefix == prefix


@pytest.mark.parametrize("prefix", ["{a}{b}:", "a{b:", "a}b{:", ""])
def test_a_prefix_with_odd_braces_is_refused(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("GRISTMILL_KEY_PREFIX", prefix)
    with pytest.raises(ConfigError, match="GRISTMILL_KEY_PREFIX"):
        load_settings()


def test_password_is_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRISTMILL_REDIS_URL", "redis://svc:hunter2@127.0.0.1:6379/0")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert not settings.embedded


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GRISTMILL_REDIS_URL", "nonsense", "GRISTMILL_REDIS_URL: expected redis://"),
        ("GRISTMILL_REDIS_URL", "redis://", "GRISTMILL_REDIS_URL: the URL has no host"),
        ("GRISTMILL_BATCH", "-3", "GRISTMILL_BATCH: Input should be greater than 0"),
        ("GRISTMILL_KEY_PREFIX", "a b", "GRISTMILL_KEY_PREFIX: expected a non-empty prefix"),
        ("GRISTMILL_REDIS_ULR", "redis://x", "GRISTMILL_REDIS_ULR: unknown setting"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)


def test_bad_url_never_echoes_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRISTMILL_REDIS_URL", "http://svc:hunter2@host")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)


def test_runtime_exits_nonzero_with_one_line_and_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gristmill", "serve", "services.demo:app"],
        env={"GRISTMILL_REDIS_URL": "nonsense", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: GRISTMILL_REDIS_URL: expected redis://"), result.stderr
    assert any(line.startswith("fix:") for line in lines)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1 << 20), ("1MiB", 1 << 20), ("512 KiB", 512 * 1024), ("2MB", 2_000_000)],
)
def test_max_entry_bytes_takes_sizes_with_units(
    monkeypatch: pytest.MonkeyPatch, text: str, size: int
) -> None:
    monkeypatch.setenv("GRISTMILL_MAX_ENTRY_BYTES", text)
    assert load_settings().max_entry_bytes == size


def test_a_size_with_an_unknown_unit_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRISTMILL_MAX_ENTRY_BYTES", "1 parsec")
    with pytest.raises(ConfigError, match="GRISTMILL_MAX_ENTRY_BYTES: expected a size"):
        load_settings()


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING"])
def test_log_levels_are_case_insensitive(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("GRISTMILL_LOG_LEVEL", level)
    assert load_settings().log_level == level.upper()


def test_a_replica_wait_at_least_the_socket_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRISTMILL_WAIT_REPLICAS", "1")
    monkeypatch.setenv("GRISTMILL_WAIT_TIMEOUT_MS", "5000")
    with pytest.raises(ConfigError, match="GRISTMILL_WAIT_TIMEOUT_MS must be shorter"):
        load_settings()
    monkeypatch.setenv("GRISTMILL_SOCKET_TIMEOUT", "6")
    assert load_settings().wait_timeout_ms == 5000
