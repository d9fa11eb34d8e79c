"""TLS settings are checked at start; TLS failures are described in one line with the fix."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import pytest

from gristmill.connect import tls_context, tls_failure, tls_options
from gristmill.errors import ConfigError
from gristmill.settings import Settings, load_settings

if TYPE_CHECKING:
    from pathlib import Path


def test_a_missing_ca_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRISTMILL_TLS_CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match=r"^GRISTMILL_TLS_CA_FILE: /nonexistent/ca.pem: no such"):
        load_settings()


def test_a_key_without_its_certificate_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "client.key"
    key.write_text("not checked yet")
    monkeypatch.setenv("GRISTMILL_TLS_KEY_FILE", str(key))
    with pytest.raises(ConfigError, match="^GRISTMILL_TLS_CERT_FILE and GRISTMILL_TLS_KEY_FILE"):
        load_settings()


def test_plain_tcp_urls_get_no_tls_options() -> None:
    settings = Settings(tls_check_hostname=False)
    assert tls_options("redis://127.0.0.1:6379/0", settings) == {}
    assert tls_context("redis://127.0.0.1:6379/0", settings) is None
    assert tls_options("rediss://h:1/0", settings)["ssl_check_hostname"] is False
    context = tls_context("rediss://h:1/0", settings)
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED  # only the name check is ever turned off


def test_a_verify_failure_deep_in_a_chain_is_named() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise ConnectionError("Error 1 connecting") from exc
    except ConnectionError as outer:
        described = tls_failure(outer)
    assert described is not None
    assert described[0] == (
        "TLS: the server's certificate is not trusted (unable to get local issuer certificate)"
    )
    assert described[1].startswith("set GRISTMILL_TLS_CA_FILE")
    assert tls_failure(ConnectionError("Connection refused")) is None
