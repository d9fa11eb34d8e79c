"""Stage 1 of 5: read entries for a consumer group, new ones and reclaimed ones.

A processor's read commands are packed once: one blocking `block_ms`, and one blocking longer
for a processor that found nothing several reads in a row (`Idling`). Replies are hiredis's
plain lists; an entry is (input index, entry id, flat fields, deliveries) with no dict built.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from gristmill.errors import ReplyError
from gristmill.pipeline.resp import RespConnection, is_error, pack_command

log = logging.getLogger(__name__)

# (index of the input stream, entry id, [f1, v1, f2, v2, ...], delivery count)
Entry = tuple[int, bytes, list[bytes], int]


IDLE_READS = 3  # empty reads in a row before a processor blocks longer
IDLE_BLOCK_MAX_MS = 8000


class Idling:
    """How long the next read blocks (pure): `block_ms` while entries come; after `IDLE_READS`
    empty reads in a row, `idle_block_ms` (at most IDLE_BLOCK_MAX_MS and a quarter of the claim
    idle time, so the reclaim between reads is late by at most that much).

    A blocked read returns as soon as an entry arrives and a drain unblocks it (CLIENT UNBLOCK),
    so blocking longer costs an idle processor nothing but wakes it less often: with many
    processors in one process, those wake-ups are most of its idle CPU.
    """

    def __init__(self, block_ms: int, claim_idle_ms: int) -> None:
        self.block_ms = block_ms
        self.idle_block_ms = max(block_ms, min(IDLE_BLOCK_MAX_MS, claim_idle_ms // 4))
        self.empty_reads = 0

    @property
    def idle(self) -> bool:
        """True once the processor found nothing `IDLE_READS` times in a row."""
        return self.empty_reads >= IDLE_READS

    def read(self, found: int) -> None:
        """Note that a read returned `found` entries."""
        self.empty_reads = 0 if found else self.empty_reads + 1

    def woken(self) -> None:
        """A parked processor was woken: it reads as a busy one until it finds nothing again."""
        self.empty_reads = 0


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

    def read_command(self, block_ms: int | None = None) -> bytes:
        """XREADGROUP ... BLOCK ms STREAMS s1 s2 > > (`block_ms` by default), packed once."""
        block = self.block_ms if block_ms is None else block_ms
        return pack_command(
            (b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", self.count,
             b"BLOCK", block, b"STREAMS", *self.streams, *[b">"] * len(self.streams))
        )  # fmt: skip

    def own_pending_command(self, count: int | None = None) -> bytes:
        """XREADGROUP ... STREAMS s1 s2 0 0: this consumer's own pending entries (restart)."""
        return pack_command(
            (b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", count or self.count,
             b"STREAMS", *self.streams, *[b"0"] * len(self.streams))
        )  # fmt: skip

    async def last_look(
        self, connection: RespConnection
    ) -> tuple[tuple[bytes, ...] | None, list[Entry]]:
        """The newest id of each stream, then the entries not yet delivered (one round trip).

        The ids are None if this user may not run XREVRANGE (an ACL from before parking): the
        read's entries are still returned, and the caller does not park.
        """
        replies = await connection.pipeline_raw(self.last_look_commands())
        entries = self.parse(read_reply(replies[-1], self.streams))
        refused = next((reply for reply in replies[:-1] if is_error(reply)), None)
        if refused is None:
            return newest_ids(replies[:-1]), entries
        if not str(refused).startswith("NOPERM"):
            raise ReplyError(str(refused))
        log.warning(
            "idle reads keep blocking instead of parking: %s; `runtime acl` grants XREVRANGE "
            "and XREAD for parking", refused, extra={"group": self.group.decode()},
        )  # fmt: skip
        return None, entries

    def last_look_commands(self) -> list[tuple[Any, ...]]:
        """Before parking: the newest id of each stream, then a read that does not block.

        Sent in one pipeline, in this order: an entry added before the newest id was taken is
        returned by the read, and one added after has a higher id (parking.Watcher).
        """
        newest = [(b"XREVRANGE", stream, b"+", b"-", b"COUNT", 1) for stream in self.streams]
        read = (
            b"XREADGROUP", b"GROUP", self.group, self.consumer, b"COUNT", self.count,
            b"STREAMS", *self.streams, *[b">"] * len(self.streams),
        )  # fmt: skip
        return [*newest, read]

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

    async def idle_pending(
        self, connection: RespConnection, min_idle_ms: int
    ) -> list[tuple[int, bytes, int]]:
        """(stream index, entry id, deliveries) of entries idle past `min_idle_ms`, any owner.

        XPENDING does not count as a delivery, so looking does not push an innocent entry
        toward the crash-loop cap.
        """
        commands = [
            (b"XPENDING", stream, self.group, b"IDLE", min_idle_ms, b"-", b"+", self.count)
            for stream in self.streams
        ]
        replies = await connection.pipeline(commands)
        return [
            (index, entry_id, int(deliveries))
            for index, reply in enumerate(replies)
            for entry_id, _, _, deliveries in reply
        ]

    async def claim(
        self,
        connection: RespConnection,
        index: int,
        entry_ids: list[bytes],
        min_idle_ms: int,
        deliveries: dict[bytes, int],
    ) -> tuple[list[Entry], list[bytes]]:
        """XCLAIM `entry_ids` of stream `index` for this consumer if still idle.

        Returns the claimed entries and the ids that were deleted from the stream while
        pending (trimmed or XDEL'd: losses to report). Ids claimed by someone else meanwhile
        are in neither list.
        """
        stream = self.streams[index]
        reply = await connection.call(
            b"XCLAIM", stream, self.group, self.consumer, min_idle_ms, *entry_ids
        )
        claimed = [
            (index, entry_id, fields, deliveries.get(entry_id, 1) + 1)
            for entry_id, fields in reply
            if fields
        ]
        missing = set(entry_ids) - {entry_id for _, entry_id, _, _ in claimed}
        deleted = [
            entry_id
            for entry_id in sorted(missing)
            if not await connection.call(b"XRANGE", stream, entry_id, entry_id)
        ]
        return claimed, deleted


async def ensure_groups(
    connection: RespConnection, streams: tuple[bytes, ...], group: bytes, from_beginning: bool
) -> None:
    """Create `group` on every stream (and the stream) if missing; an existing group is kept.

    A group created at `$` skips the entries already in its stream: that is logged once, with
    their number and how to read them instead.
    """
    start = b"0" if from_beginning else b"$"
    for stream in streams:
        try:
            before = 0 if from_beginning else int(await connection.call(b"XLEN", stream))
            await connection.call(b"XGROUP", b"CREATE", stream, group, start, b"MKSTREAM")
        except ReplyError as exc:
            if exc.code == "WRONGTYPE":  # the server does not name the key
                raise ReplyError(f"{exc} (key {stream.decode()} is not a stream)") from None
            if exc.code != "BUSYGROUP":
                raise
            continue
        if before:
            log.warning(
                "new consumer group %s starts at the end of %s: it skips the %d entries "
                "already there; declare the processor with from_beginning=True to read them",
                group.decode(), stream.decode(), before,
            )  # fmt: skip


def read_reply(reply: Any, streams: tuple[bytes, ...]) -> Any:
    """A raw XREADGROUP reply, or ReplyError naming the streams read (for WRONGTYPE)."""
    if is_error(reply):
        text = str(reply)
        if text.startswith("WRONGTYPE"):  # the server does not say which key
            names = ", ".join(stream.decode() for stream in streams)
            text += f" (reading {names}: one of them is not a stream)"
        raise ReplyError(text)
    return reply


def newest_ids(replies: list[Any]) -> tuple[bytes, ...]:
    """The ids of `XREVRANGE s + - COUNT 1` replies (b"0-0" for an empty stream)."""
    return tuple(reply[0][0] if reply else b"0-0" for reply in replies)
