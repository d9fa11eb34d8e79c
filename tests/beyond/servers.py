"""Real servers for the beyond-one-node tests: Debian's redis-server with TLS, certificates.

The embedded Valkey is built without TLS, so TLS tests run Debian's `redis-server` (installed
here with apt-get when missing, once per machine). Certificates are made with the `openssl`
command: a CA, a server certificate for `localhost` only (so 127.0.0.1 fails the host name
check), a client certificate, and a second CA that signed nothing the server holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis as sync_redis

from gristmill.embedded import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT_S = 20.0


def debian_redis_server() -> Path:
    """`/usr/bin/redis-server` (Debian's, built with TLS), installed with apt-get if missing."""
    found = shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=quiet, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True, env=quiet, capture_output=True,
        )  # fmt: skip
        found = shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    assert found is not None, "apt-get installed redis-server but it is not on /usr/bin"
    return Path(found)


@dataclass(frozen=True)
class Certificates:
    """PEM files made for one test session."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # trusted by nobody: a wrong GRISTMILL_TLS_CA_FILE


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], check=True, cwd=cwd, capture_output=True)


def _signed(name: str, subject: str, ca: str, directory: Path, extensions: str = "") -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=directory)  # fmt: skip
    extra = []
    if extensions:
        (directory / f"{name}.ext").write_text(extensions)
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *extra, cwd=directory)  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for DNS:localhost, a client certificate, and a stray CA."""
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=gristmill {ca}",
                 cwd=directory)  # fmt: skip
    _signed("server", "/CN=localhost", "ca", directory, "subjectAltName=DNS:localhost\n")
    _signed("client", "/CN=orders", "ca", directory)
    return Certificates(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )


@dataclass(frozen=True)
class TlsServer:
    """A redis-server listening for TLS only, on 127.0.0.1:`port`."""

    port: int
    certs: Certificates
    client_certs_required: bool

    def url(self, host: str = "localhost") -> str:
        return f"rediss://{host}:{self.port}/0"

    def admin(self) -> sync_redis.Redis:
        """A client that passes every check (CA, client certificate, host name)."""
        return sync_redis.Redis.from_url(
            self.url(), ssl_ca_certs=str(self.certs.ca), ssl_certfile=str(self.certs.client_cert),
            ssl_keyfile=str(self.certs.client_key),
        )  # fmt: skip


@contextlib.contextmanager
def tls_server(
    directory: Path, certs: Certificates, *, require_client_certs: bool
) -> Iterator[TlsServer]:
    """Start Debian's redis-server with TLS on a free port; stop it on exit."""
    port = free_port()
    argv = [
        str(debian_redis_server()), "--port", "0", "--tls-port", str(port),
        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory),
        "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "yes" if require_client_certs else "no",
    ]  # fmt: skip
    with (directory / f"redis-{port}.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = TlsServer(port, certs, require_client_certs)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(server: TlsServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        client = server.admin()
        try:
            if client.ping():
                return
        except sync_redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()
