"""A lean Redis connection for the hot path: RESP2 over one asyncio transport, parsed by hiredis.

redis-py's per-command overhead (building response dicts, connection checkout, callbacks) was
the ceiling of a naive loop (~62k msg/s against ~212k over raw RESP, measured before this
module existed; bench/ keeps both hand loops as peers). The hot path sends
pre-packed commands here and gets hiredis's plain lists back. Everything off the hot path keeps
using redis-py.

Replies arrive in command order; each command gets a future. A cancelled caller leaves its
future in the queue so the late reply is consumed and dropped, keeping the stream aligned.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import hiredis

from gristmill.errors import ReplyError

if TYPE_CHECKING:
    from collections.abc import Sequence

Arg = bytes | str | int | float


def pack_command(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP, packed by hiredis (in C)."""
    return cast("bytes", hiredis.pack_command(args))  # type: ignore[arg-type]  # stub too narrow


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled caller's reply is dropped here
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the server")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"lost the connection: {self.lost}"))
                waiter.exception()  # retrieved: a caller that moved on must not log it
        if not self.closed.done():
            self.closed.set_result(None)


class RespConnection:
    """One connection to the server; `call` one command, `pipeline` several in one write.

    `call`, `call_packed` and `pipeline` give up after `timeout` seconds (a silent server,
    a half-open link); `send_packed` leaves waiting to the caller, which knows how long a
    blocking read may take.
    """

    def __init__(self, protocol: _Protocol, timeout: float | None = None) -> None:
        self._protocol = protocol
        self.timeout = timeout
        self.client_id = 0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_timeout: float,
        reply_timeout: float | None = None,
        name: str = "gristmill",
        tls: ssl.SSLContext | None = None,  # h8: from connect.tls_context (TLS settings)
    ) -> RespConnection:
        """Connect to `url` (redis://, rediss://, unix://), authenticate, select the db.

        A rediss:// URL uses `tls`, or the system trust store when it is None.

        Raises:
            ConnectionError: If the server cannot be reached in `connect_timeout` seconds.
            TimeoutError: If it connects but does not answer the set-up in that time.
            ReplyError: If authentication or SELECT is refused.
        """
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                if parts.scheme == "unix":
                    _, protocol = await loop.create_unix_connection(_Protocol, parts.path)
                else:
                    if tls is None and parts.scheme in ("rediss", "valkeys"):
                        tls = ssl.create_default_context()
                    _, protocol = await loop.create_connection(
                        _Protocol, parts.hostname or "127.0.0.1", parts.port or 6379, ssl=tls
                    )
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to the server: {exc}") from exc
        connection = cls(protocol, reply_timeout)
        setup: list[tuple[Arg, ...]] = []
        if parts.password:
            user = unquote(parts.username) if parts.username else "default"
            setup.append(("AUTH", user, unquote(parts.password)))
        db = parts.path.strip("/") if parts.scheme != "unix" else ""
        if db and db != "0":
            setup.append(("SELECT", db))
        setup.append(("CLIENT", "SETNAME", name))
        setup.append(("CLIENT", "ID"))
        try:
            async with asyncio.timeout(connect_timeout):  # a half-open link accepts, then hangs
                replies = await connection.pipeline(setup)
        except BaseException:
            connection.close()
            raise
        connection.client_id = int(replies[-1])
        return connection

    def _send(self, payload: bytes, count: int) -> list[asyncio.Future[Any]]:
        protocol = self._protocol
        if protocol.transport is None or protocol.lost is not None:
            raise ConnectionError(f"lost the connection: {protocol.lost}")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        protocol.waiters.extend(futures)
        protocol.transport.write(payload)
        return futures

    async def call(self, *args: Arg) -> Any:
        """Send one command and return its reply.

        Raises:
            ReplyError: If the server answers with an error.
            ConnectionError: If the connection is lost.
        """
        (future,) = self._send(pack_command(args), 1)
        async with asyncio.timeout(self.timeout):
            return _checked(await future)

    async def call_packed(self, payload: bytes) -> Any:
        """Send one command packed already (see `pack_command`) and return its reply."""
        (future,) = self._send(payload, 1)
        async with asyncio.timeout(self.timeout):
            return _checked(await future)

    def send_packed(self, payload: bytes) -> asyncio.Future[Any]:
        """Send one packed command now; its raw reply (maybe an error) arrives in the future.

        The caller does other work meanwhile: this is how a batch's commit overlaps the next
        batch's handlers.
        """
        (future,) = self._send(payload, 1)
        return future

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Send `commands` in one write and return their replies (error replies raise)."""
        return [_checked(reply) for reply in await self.pipeline_raw(commands)]

    async def pipeline_raw(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Like `pipeline`, but error replies are returned in place (see `is_error`)."""
        futures = self._send(b"".join(map(pack_command, commands)), len(commands))
        async with asyncio.timeout(self.timeout):
            return [await future for future in futures]

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()

    async def wait_closed(self) -> None:
        await self._protocol.closed


def _checked(reply: Any) -> Any:
    if isinstance(reply, hiredis.ReplyError):
        raise ReplyError(str(reply))
    return reply


def is_error(reply: Any) -> bool:
    """True if a raw reply (from `send_packed`) is an error reply."""
    return isinstance(reply, hiredis.ReplyError)
