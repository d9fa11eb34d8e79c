"""TLS from settings: custom CA, client certificates, host name checks; against a real server.

Debian's redis-server with TLS (see servers.py). The server's certificate names `localhost`
only, so connecting to 127.0.0.1 shows the host name check working and being turned off.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from gristmill.connect import redis_client, tls_context
from gristmill.pipeline.resp import RespConnection
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.testing import run_until_idle
from services.orders import app as orders_app
from services.schemas import LineItem, Order

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

    from redis.asyncio import Redis

    from tests.beyond.servers import Certificates, TlsServer

pytestmark = pytest.mark.slow


def tls_settings(certs: Certificates, *, client: bool = True, **extra: Any) -> Settings:
    files: dict[str, Any] = {"tls_ca_file": certs.ca}
    if client:
        files |= {"tls_cert_file": certs.client_cert, "tls_key_file": certs.client_key}
    return Settings(block_ms=50, claim_idle=5.0, **files, **extra)


@pytest.fixture
async def admin(mtls: TlsServer) -> AsyncIterator[Redis]:
    client = redis_client(mtls.url(), tls_settings(mtls.certs))
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_orders_pipeline_runs_end_to_end_over_verified_tls(
    mtls: TlsServer, admin: Redis
) -> None:
    settings = tls_settings(mtls.certs)
    orders = [
        Order(id=f"o-{n}", currency="EUR", items=[LineItem(sku="tea", quantity=n + 1,
              unit_price_cents=250)])
        for n in range(20)
    ]  # fmt: skip
    # the groups read only new entries: make them first, as a deploy before traffic does
    for stream, group in (("orders.placed", "orders.validate"), ("orders.valid", "orders.bill")):
        await admin.xgroup_create(stream, group, id="0", mkstream=True)
    await Publisher(admin).publish_many("orders.placed", orders)
    result = await run_until_idle(orders_app, url=mtls.url(), redis=admin, settings=settings)
    invoices: list[Any] = await result.published("invoices")
    assert [(i.order_id, i.total_cents) for i in invoices] == [
        (f"o-{n}", (n + 1) * 250) for n in range(20)
    ]


async def test_the_hot_path_connection_uses_the_tls_settings(mtls: TlsServer) -> None:
    settings = tls_settings(mtls.certs)
    connection = await RespConnection.open(
        mtls.url(), connect_timeout=5, tls=tls_context(mtls.url(), settings)
    )
    try:
        assert await connection.call("PING") == b"PONG"
    finally:
        connection.close()
    without_cert = tls_settings(mtls.certs, client=False)
    with pytest.raises((ConnectionError, TimeoutError)):
        await _ping_once(mtls.url(), tls_context(mtls.url(), without_cert))


async def _ping_once(url: str, tls: ssl.SSLContext | None) -> object:
    connection = await RespConnection.open(url, connect_timeout=5, tls=tls)
    try:  # TLS 1.3: a refused client certificate surfaces at the first reply, not the handshake
        return await connection.call("PING")
    finally:
        connection.close()


async def test_a_server_requiring_client_certificates_refuses_a_client_without(
    mtls: TlsServer,
) -> None:
    with_cert = redis_client(mtls.url(), tls_settings(mtls.certs))
    without = redis_client(mtls.url(), tls_settings(mtls.certs, client=False))
    try:
        assert await with_cert.ping()
        with pytest.raises(Exception, match="(?i)certificate|connection|reset|closed"):
            await without.ping()
    finally:
        await with_cert.aclose()
        await without.aclose()


async def test_the_host_name_check_can_be_turned_off(tls: TlsServer) -> None:
    by_ip = tls.url(host="127.0.0.1")  # the certificate names localhost only
    checked = redis_client(by_ip, tls_settings(tls.certs, client=False))
    unchecked = redis_client(by_ip, tls_settings(tls.certs, client=False, tls_check_hostname=False))
    try:
        with pytest.raises(Exception, match="(?i)hostname|ip address mismatch"):
            await checked.ping()
        assert await unchecked.ping()
        off = tls_settings(tls.certs, client=False, tls_check_hostname=False)
        assert await _ping_once(by_ip, tls_context(by_ip, off)) == b"PONG"
    finally:
        await checked.aclose()
        await unchecked.aclose()


def _runtime(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRISTMILL_")}
    return subprocess.run(
        [sys.executable, "-m", "gristmill", *args],
        check=False, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("command", [["schemas", "list"], ["serve", "services.orders:app"]])
def test_a_wrong_ca_is_refused_in_one_error_line_with_its_fix(
    tls: TlsServer, command: list[str]
) -> None:
    done = _runtime(
        {"GRISTMILL_REDIS_URL": tls.url(), "GRISTMILL_TLS_CA_FILE": str(tls.certs.other_ca)},
        *command,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: TLS: the server's certificate is not trusted")
    assert lines[1].startswith("fix: set GRISTMILL_TLS_CA_FILE")


def test_a_client_certificate_without_its_key_fails_at_start(
    tls: TlsServer, certs: Certificates
) -> None:
    done = _runtime(
        {"GRISTMILL_REDIS_URL": tls.url(), "GRISTMILL_TLS_CERT_FILE": str(certs.client_cert)},
        "schemas", "list",
    )  # fmt: skip
    assert done.returncode == 2
    assert "GRISTMILL_TLS_CERT_FILE and GRISTMILL_TLS_KEY_FILE go together" in done.stderr
    assert "Traceback" not in done.stderr
