"""A small asyncio TCP proxy for fault tests: pass, latency, cut, half-open (no toxiproxy here).

    async with TcpProxy(server.port) as proxy:
        client = Redis(port=proxy.port, socket_timeout=1.0, retry=None)
        proxy.mode = Mode.HALF_OPEN   # a blackhole: bytes held, sockets open
        ...
        proxy.mode = Mode.PASS        # held bytes flow again, as after a healed partition

Modes:
    PASS       bytes flow both ways.
    LATENCY    each chunk is forwarded `latency` seconds after it arrived (order kept).
    CUT        every open connection is reset (RST); new ones are reset as soon as they
               connect, until the mode changes.
    HALF_OPEN  bytes are held in both directions and sockets stay open; new connections are
               accepted (the kernel completes the handshake) and held too. Leaving HALF_OPEN
               delivers what was held, as TCP retransmission would after a healed partition:
               a write the client gave up on can still be applied (reliability.md P9).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_CLOSE_TIMEOUT_S = 5.0


class Mode(enum.Enum):
    """What the proxy does with bytes and connections."""

    PASS = "pass"
    LATENCY = "latency"
    CUT = "cut"
    HALF_OPEN = "half_open"


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream

    def abort(self) -> None:
        # abort(), not close(): the peer sees a reset (RST), like a dropped route or a crash
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of `target_port`, with a switchable fault `mode`."""

    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", latency: float = 0.0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.latency = latency
        self.port = 0
        self.accepted = 0  # connections accepted so far, reset ones included
        self._mode = Mode.PASS
        self._changed = asyncio.Event()
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def mode(self) -> Mode:
        """The current mode; setting it takes effect at once (CUT resets open connections)."""
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = mode
        self._changed.set()
        self._changed = asyncio.Event()  # pumps waiting on the old event wake and re-check
        if mode is Mode.CUT:
            for link in list(self._links):
                link.abort()

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.mode = (
            Mode.CUT
        )  # resets every link and wakes held pumps, so handlers end by themselves
        handlers = list(self._handlers)
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=_CLOSE_TIMEOUT_S)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode is Mode.CUT:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError as exc:
            log.debug("proxy: upstream refused: %s", exc)
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(reader, up_writer, link))
                group.create_task(self._pipe(up_reader, writer, link))
        finally:
            self._links.discard(link)
            link.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Copy one direction, chunk by chunk, obeying the mode; ends the link when done."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                while chunk := await source.read(_CHUNK):
                    queue.put_nowait((time.monotonic(), chunk))
            except OSError:
                pass  # reset by the peer or by a CUT: the writer side ends the link
            finally:
                queue.put_nowait(None)

        async def write() -> None:
            while (item := await queue.get()) is not None:
                arrived, chunk = item
                await self._wait_until_forwardable(arrived)
                try:
                    sink.write(chunk)
                    await sink.drain()
                except OSError:
                    break
            # one side closed: close both, so the other pipe's reader sees the end too
            for writer in (link.client, link.upstream):
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            group.create_task(write())

    async def _wait_until_forwardable(self, arrived: float) -> None:
        while True:
            mode = self._mode
            if mode is Mode.HALF_OPEN:
                await self._changed.wait()
                continue
            if mode is Mode.LATENCY:
                remaining = arrived + self.latency - time.monotonic()
                if remaining > 0:
                    changed = self._changed
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), remaining)
                    continue
            return  # PASS (and CUT: the link is being aborted, the write fails harmlessly)
