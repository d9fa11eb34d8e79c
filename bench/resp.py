"""A minimal RESP client over one asyncio connection, parsed by hiredis.Reader.

What `handloop-raw` and the load generators speak: commands are packed with
`hiredis.pack_command` and pipelined by writing them back to back, then reading as many
replies. Imports only hiredis, so the peers' virtualenvs can use it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import hiredis

_READ_CHUNK = 1 << 18


class ReplyError(Exception):
    """Raised when the server answers a command with an error."""


class RespConnection:
    """One connection; `call` sends packed commands in one write and returns their replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader(replyError=ReplyError)

    @classmethod
    async def open(cls, url: str) -> RespConnection:
        """Connect to `redis://host:port[/db]`."""
        parts = urlparse(url)
        reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port)
        connection = cls(reader, writer)
        db = (parts.path or "/0").lstrip("/") or "0"
        if db != "0":
            await connection.call(pack("SELECT", db))
        return connection

    async def call(self, *packed: bytes) -> list[Any]:
        """Send every packed command in one write; return their replies in order.

        Raises:
            ReplyError: If any reply is an error (after all replies were read).
        """
        self._writer.write(b"".join(packed))
        replies: list[Any] = []
        while len(replies) < len(packed):
            reply = self._parser.gets()
            if reply is False:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self._parser.feed(data)
                continue
            replies.append(reply)
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        await self._writer.wait_closed()


def pack(*args: str | bytes | float) -> bytes:
    """One command in RESP."""
    return bytes(hiredis.pack_command(args))  # type: ignore[arg-type]  # stub: a 1-tuple
