"""Small helpers for the health-port tests: a free port, a GET, polling for an answer."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET `url`: (status, body); a refused connection is status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


async def get_async(url: str) -> tuple[int, str]:
    """`get` from a worker thread, so the event loop keeps turning meanwhile."""
    return await anyio.to_thread.run_sync(get, url)


async def wait_for_status(url: str, status: int, within: float = 30.0) -> str:
    """Poll `url` until it answers `status`; returns the body."""
    deadline = time.monotonic() + within
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        seen = await get_async(url)
        if seen[0] == status:
            return seen[1]
        await anyio.sleep(0.1)
    raise TimeoutError(f"{url} answered {seen} for {within} s, never {status}")


def metric_samples(body: str, *prefixes: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition whose names start with `prefixes`:
    `'name{labels}'` -> value."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(prefixes)
    }


def poll(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait (blocking) until `condition()` holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within} s")
        time.sleep(0.1)
