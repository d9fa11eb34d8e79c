"""The health port: `/livez`, `/readyz` and `/metrics` over HTTP, served from its own thread.

    GET /livez    200 "ok" while the event loop turns (its heartbeat is fresh), else 503
    GET /readyz   200 "ready" when connected, every processor's groups ready and not draining;
                  else 503 and a one-line reason
    GET /metrics  the Prometheus text exposition

The server runs in a thread of its own (stdlib `http.server`), not on the event loop: a blocked
loop must still be reported as not alive, and a scrape must not add latency to a batch. The
thread reads only plain attributes the loop writes (a float, a bool, a string).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar

from gristmill.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    """What the probes answer; the event loop keeps it current (`beat`, `connected`)."""

    def __init__(
        self, stale_after_s: float, not_ready: Callable[[], str | None] = lambda: None
    ) -> None:
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()
        self.connected = False
        self.connection_error = "not connected yet"
        self._not_ready = not_ready

    def beat(self) -> None:
        """Called by the event loop: it turns."""
        self.last_beat = time.monotonic()

    def alive(self) -> bool:
        """True while the loop's heartbeat is fresher than `stale_after_s`."""
        return time.monotonic() - self.last_beat < self.stale_after_s

    def not_ready_reason(self) -> str | None:
        """Why the process should get no traffic now, or None if it is ready."""
        if not self.alive():
            return "the event loop is blocked"
        if not self.connected:
            return f"no server connection: {self.connection_error}"
        return self._not_ready()


class HealthServer:
    """An HTTP server for `health` (and `metrics`, a callable returning the exposition)."""

    def __init__(
        self, health: Health, metrics: Callable[[], bytes] | None, host: str, port: int
    ) -> None:
        handler = type("Handler", (_Handler,), {"sources": _Sources(health, metrics)})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"GRISTMILL_HEALTH_PORT: cannot listen on {host}:{port} ({exc.strerror}); "
                "pick a free port, or 0 to turn the health server off"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gristmill-health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port bound (useful when asked for port 0 by a test)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread until `close()`."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class _Sources:
    health: Health
    metrics: Callable[[], bytes] | None


class _Handler(BaseHTTPRequestHandler):
    sources: ClassVar[_Sources]
    server_version = "gristmill"

    def do_GET(self) -> None:  # the name http.server dispatches to
        path = self.path.partition("?")[0]
        if path == "/livez":
            alive = self.sources.health.alive()
            self._reply(200 if alive else 503, b"ok\n" if alive else b"event loop blocked\n")
        elif path == "/readyz":
            reason = self.sources.health.not_ready_reason()
            if reason is None:
                self._reply(200, b"ready\n")
            else:
                self._reply(503, f"not ready: {reason}\n".encode())
        elif path == "/metrics" and self.sources.metrics is not None:
            self._reply(200, self.sources.metrics(), PROMETHEUS_TEXT)
        else:
            self._reply(404, b"not found: try /livez, /readyz or /metrics\n")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds would flood the log: stay quiet."""
