"""One embedded server per data dir, shared by every gristmill process that uses that dir.

`<data_dir>/server.json` records the server's port (and the pid that started it). The port is
stable: it is chosen once per data dir and reused by every later start, so a URL a process
holds stays right across restarts. The first process to find no server answering on that port
starts one (under `<data_dir>/server.lock`, so two processes never start two servers on one
AOF); the others attach. A server dies with the process that started it; a long-running
process (`runtime serve`) keeps watching the port and, if the server is gone, starts it again
on the same port and data, so the processes that shared it reconnect to the same URL.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gristmill.embedded import EmbeddedServer, answers_ping
from gristmill.errors import ServerError

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

RECORD = "server.json"
LOCK = "server.lock"
WATCH_INTERVAL_S = 0.5  # how often a keeper checks that the server still answers
SAME_PORT_RETRY_S = 5.0  # a stopping server may hold the port for a moment: retry it this long


def url_of(port: int) -> str:
    """The redis:// URL of an embedded server on `port`."""
    return f"redis://127.0.0.1:{port}/0"


def listening(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:`port`.

    Not PING: a server that is busy (a long script) or still loading its AOF answers late or
    with -LOADING, and must not be taken for gone: starting a second one on its data would
    corrupt it.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def recorded_port(data_dir: Path) -> int | None:
    """The port `server.json` records for `data_dir`, or None if there is no valid record."""
    try:
        return int(json.loads((data_dir / RECORD).read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_record(data_dir: Path, server: EmbeddedServer) -> None:
    record = {
        "port": server.port,
        "url": server.url,
        "pid": server.process.pid,
        "owner_pid": os.getpid(),
        "binary": str(server.binary),
    }
    temporary = data_dir / f"{RECORD}.{os.getpid()}"
    temporary.write_text(json.dumps(record) + "\n")
    temporary.replace(data_dir / RECORD)  # readers never see half a record


@dataclass
class Attachment:
    """How this process reached the server: its URL, and whether it started it."""

    url: str
    started: bool
    fresh: bool  # the data dir held no data before: a new, empty server


class SharedServer:
    """This process's hold on the embedded server of `data_dir`; `open()`, then `close()`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port: int | None = None
        self.owned: EmbeddedServer | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def open(self, *, keep: bool = False) -> Attachment:
        """Attach to the server of the data dir, starting it if none answers.

        With `keep`, a thread watches it until `close()` and restarts it when it is gone.

        Raises:
            ServerError: If the data dir is unusable or the server does not start.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerError(
                f"cannot use {self.data_dir} for the embedded server's data: {exc.strerror}"
            ) from None
        fresh = not (self.data_dir / "appendonlydir").exists()
        started = self._ensure()
        if keep:
            self._watcher = threading.Thread(
                target=self._watch, name="gristmill-server-keeper", daemon=True
            )
            self._watcher.start()
        assert self.port is not None
        return Attachment(url_of(self.port), started, fresh)

    def _ensure(self) -> bool:
        """Make a server answer on the recorded port; True if this process started it."""
        with (self.data_dir / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            port = recorded_port(self.data_dir)
            if port is not None and (answers_ping(port) or listening(port)):
                self.port = port
                return False
            server = self._start(port)
            _write_record(self.data_dir, server)
            if self.owned is not None:
                self.owned.stop()  # the one we had died: reap it
            self.owned, self.port = server, server.port
            return True

    def _start(self, port: int | None) -> EmbeddedServer:
        if port is None:
            return EmbeddedServer.start(self.data_dir)
        deadline = time.monotonic() + SAME_PORT_RETRY_S
        while True:
            try:
                return EmbeddedServer.start(self.data_dir, port=port)
            except ServerError as exc:
                if time.monotonic() > deadline:
                    log.error(
                        "the embedded server's port %d stays taken (%s); starting it on a new "
                        "port: processes still using %s must be restarted",
                        port, exc, url_of(port),
                    )  # fmt: skip
                    return EmbeddedServer.start(self.data_dir)
                time.sleep(0.2)

    def _watch(self) -> None:
        down_since: float | None = None
        while not self._stop.wait(WATCH_INTERVAL_S):
            assert self.port is not None
            if answers_ping(self.port) or listening(self.port):
                if down_since is not None:
                    log.info(
                        "embedded server back on %s after %.1f s",
                        url_of(self.port), time.monotonic() - down_since,
                    )  # fmt: skip
                    down_since = None
                continue
            if down_since is None:  # once per outage, however long it lasts
                down_since = time.monotonic()
                log.warning("embedded server on %s is gone; starting it again", url_of(self.port))
            try:
                if self._ensure():
                    log.warning("restarted the embedded server on %s", url_of(self.port))
            except ServerError as exc:
                log.debug("embedded server restart failed, will retry: %s", exc)

    def close(self) -> None:
        """Stop watching, and stop the server if this process started it."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        if self.owned is not None:
            self.owned.stop()
            self.owned = None
