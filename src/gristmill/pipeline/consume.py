"""Stage 1 of 5: read entries for a consumer group, new ones and reclaimed ones.

The read command never changes for a processor, so it is packed once. Replies are hiredis's
plain lists; an entry is (input index, entry id, flat fields, deliveries) with no dict built.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from gristmill.pipeline.resp import ReplyError, RespConnection, pack_command

# (index of the input stream, entry id, [f1, v1, f2, v2, ...], delivery count)
Entry = tuple[int, bytes, list[bytes], int]


def consumer_name() -> str:
    """`<host>-<pid>`: readable in XINFO, unique per live process (two never share a PEL)."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Reader:
    """How one processor reads: its group, consumer name and input streams."""

    group: bytes
    consumer: bytes
    streams: tuple[bytes, ...]
    count: int
    block_ms: int

    def read_command(self) -> bytes:
        """XREADGROUP ... STREAMS s1 s2 > >, packed once."""
        return pack_command(
            (b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", self.count,
             b"BLOCK", self.block_ms, b"STREAMS", *self.streams, *[b">"] * len(self.streams))
        )  # fmt: skip

    def own_pending_command(self) -> bytes:
        """XREADGROUP ... STREAMS s1 s2 0 0: this consumer's own pending entries (restart)."""
        return pack_command(
            (b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", self.count,
             b"STREAMS", *self.streams, *[b"0"] * len(self.streams))
        )  # fmt: skip

    def parse(self, reply: Any, deliveries: int = 1) -> list[Entry]:
        """Entries of an XREADGROUP reply (None when BLOCK timed out)."""
        if not reply:
            return []
        index_of = {stream: index for index, stream in enumerate(self.streams)}
        entries: list[Entry] = []
        for stream, items in reply:
            index = index_of[stream]
            entries += [
                (index, entry_id, fields, deliveries) for entry_id, fields in items if fields
            ]
        return entries

    async def reclaim(
        self, connection: RespConnection, min_idle_ms: int, cursors: list[bytes]
    ) -> tuple[list[Entry], list[bytes]]:
        """Claim entries idle longer than `min_idle_ms` from any consumer of the group.

        Returns the claimed entries (with their delivery counts) and the ids that were pending
        but deleted from the stream meanwhile (trimmed or XDEL'd: losses to report).
        """
        commands = [
            (b"XAUTOCLAIM", stream, self.group, self.consumer, min_idle_ms, cursors[index],
             b"COUNT", self.count)
            for index, stream in enumerate(self.streams)
        ]  # fmt: skip
        replies = await connection.pipeline(commands)
        claimed: list[Entry] = []
        deleted: list[bytes] = []
        for index, reply in enumerate(replies):
            cursors[index] = reply[0]
            claimed += [(index, entry_id, fields, 2) for entry_id, fields in reply[1] if fields]
            if len(reply) > 2:
                deleted += reply[2]
        if claimed:
            claimed = await self._with_delivery_counts(connection, claimed)
        return claimed, deleted

    async def _with_delivery_counts(
        self, connection: RespConnection, claimed: list[Entry]
    ) -> list[Entry]:
        commands = [
            (b"XPENDING", self.streams[index], self.group, entry_id, entry_id, 1, self.consumer)
            for index, entry_id, _, _ in claimed
        ]
        replies = await connection.pipeline(commands)
        return [
            (index, entry_id, fields, int(reply[0][3]) if reply else deliveries)
            for (index, entry_id, fields, deliveries), reply in zip(claimed, replies, strict=True)
        ]


async def ensure_groups(
    connection: RespConnection, streams: tuple[bytes, ...], group: bytes, from_beginning: bool
) -> None:
    """Create `group` on every stream (and the stream) if missing; an existing group is kept."""
    start = b"0" if from_beginning else b"$"
    for stream in streams:
        try:
            await connection.call(b"XGROUP", b"CREATE", stream, group, start, b"MKSTREAM")
        except ReplyError as exc:
            if exc.code != "BUSYGROUP":
                raise
