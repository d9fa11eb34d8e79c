"""Idle processors park: they close their connections, and one watcher per process wakes them.

A processor that found nothing several reads in a row (`consume.Idling`) takes a last look
(the newest id of each of its streams, then one read that does not block); if that brings
nothing it closes both its connections and parks here. The watcher holds one connection:

- one blocking XREAD over every parked processor's streams, each from the newest id seen in
  the last look, so an entry added at any moment after that look wakes its processor (an
  entry added before it was returned by the look's read);
- every claim_idle / 2 (the processors' own reclaim cadence), one pipeline that looks for
  entries idle past claim_idle on their streams (a dead consumer's, to reclaim) and keeps each
  parked consumer seen (an XCLAIM that cannot claim anything resets its idle time, so upkeep
  and `runtime status` do not take a parked consumer for a dead one).

A woken processor reconnects and reads as after any reconnect: its own pending entries
first, then new ones, and it reclaims at once. A parked processor holds no connection, so a
process hosting 1,000 mostly idle processors holds a few connections, not 2,000; the price is
the reconnect on the first entry after a quiet spell (`python -m bench many`: first entry).
If the watcher loses its connection it wakes every parked processor: each then meets the
trouble on its own and rides it out with its usual backoff.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from gristmill.errors import ReplyError
from gristmill.pipeline.resp import is_error, pack_command

if TYPE_CHECKING:
    from collections.abc import Iterable

    from redis.asyncio import Redis

    from gristmill.pipeline.consume import Reader
    from gristmill.pipeline.resp import RespConnection
    from gristmill.pipeline.session import Session

log = logging.getLogger(__name__)

WATCH_BLOCK_MS = 5000  # the longest one watching XREAD blocks (new parkers unblock it)
NEVER_IDLE_MS = 2**63 - 1  # an XCLAIM min-idle no entry reaches: it only marks the consumer seen
NUDGE_RETRY_S = 0.002  # a CLIENT UNBLOCK that came before the XREAD blocked is sent again


@dataclass(eq=False)
class Parked:
    """One parked processor: what wakes it, and the event it waits on."""

    streams: tuple[bytes, ...]
    after: tuple[bytes, ...]  # per stream: the newest id when it parked (b"0-0" if empty)
    group: bytes
    consumer: bytes
    claim_idle_ms: int
    woken: anyio.Event = field(default_factory=anyio.Event)

    @classmethod
    def reading(cls, reader: Reader, after: tuple[bytes, ...], claim_idle_ms: int) -> Parked:
        """A parked processor that reads like `reader`, its streams' newest ids `after`."""
        return cls(reader.streams, after, reader.group, reader.consumer, claim_idle_ms)

    def wake(self) -> None:
        """Wake the processor (again: nothing more happens)."""
        self.woken.set()


def stream_id(raw: bytes) -> tuple[int, int]:
    """A stream entry id as a comparable pair (`b"1700000000000-3"` -> (1700000000000, 3))."""
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


def watch_command(parked: Iterable[Parked], block_ms: int) -> bytes | None:
    """XREAD COUNT 1 BLOCK ms STREAMS ... over every parked stream, each from the lowest id
    its parked processors saw (pure); None when nothing is parked."""
    lowest: dict[bytes, bytes] = {}
    for one in parked:
        for stream, after in zip(one.streams, one.after, strict=True):
            seen = lowest.get(stream)
            if seen is None or stream_id(after) < stream_id(seen):
                lowest[stream] = after
    if not lowest:
        return None
    return pack_command(
        (b"XREAD", b"COUNT", 1, b"BLOCK", block_ms, b"STREAMS", *lowest, *lowest.values())
    )


def woken_by(reply: Any, parked: Iterable[Parked]) -> list[Parked]:
    """The parked processors reading a stream that an XREAD reply brought entries of (pure)."""
    if not reply:
        return []
    streams = {stream for stream, entries in reply if entries}
    return [one for one in parked if streams.intersection(one.streams)]


def check_commands(parked: list[Parked]) -> list[tuple[Any, ...]]:
    """Per parked processor and stream: XPENDING of entries idle past its claim_idle (any
    consumer's), and an XCLAIM that claims nothing but marks the parked consumer seen."""
    commands: list[tuple[Any, ...]] = []
    for one in parked:
        for stream in one.streams:
            commands.append(
                (b"XPENDING", stream, one.group, b"IDLE", one.claim_idle_ms, b"-", b"+", 1)
            )
            commands.append((b"XCLAIM", stream, one.group, one.consumer, NEVER_IDLE_MS, b"0-1"))
    return commands


def with_idle_entries(parked: list[Parked], replies: list[Any]) -> list[Parked]:
    """The parked processors whose streams hold entries idle past their claim_idle (pure)."""
    found = []
    at = 0
    for one in parked:
        looks = replies[at : at + 2 * len(one.streams) : 2]
        at += 2 * len(one.streams)
        if any(looks):
            found.append(one)
    return found


class Watcher:
    """Wakes the parked processors of one process (see the module's docstring)."""

    def __init__(self, session: Session, redis: Redis) -> None:
        self.session = session
        self.redis = redis  # for CLIENT UNBLOCK of the watching connection
        self._parked: set[Parked] = set()
        self._generation = 0  # counts parkings; the watching XREAD covers up to `_watching`
        self._watching = 0
        self._blocked_id: int | None = None
        self._changed = anyio.Event()
        self._stale = anyio.Event()
        self._next_check = 0.0

    @property
    def parked(self) -> int:
        """How many processors are parked now."""
        return len(self._parked)

    def park(self, parked: Parked) -> None:
        """Watch `parked`'s streams from now on, until it is woken or `leave`s."""
        self._parked.add(parked)
        self._generation += 1
        self._changed.set()
        self._stale.set()

    def leave(self, parked: Parked) -> None:
        """Stop watching for `parked` (it was woken, or is stopping)."""
        self._parked.discard(parked)

    async def run(self) -> None:
        """Watch until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._nudge)
            await self._watch()

    async def _watch(self) -> None:
        failures = 0
        connection: RespConnection | None = None
        while True:
            if not self._parked:
                self._changed = anyio.Event()
                await self._changed.wait()
                continue
            try:
                if connection is None:
                    connection = await self.session.open("watch")
                    failures = 0
                await self._check_if_due(connection)
                await self._watch_once(connection)
            except Exception as exc:  # noqa: BLE001 - the parked meet any trouble themselves
                # a lost connection, or an error reply (a group deleted: NOGROUP; a stream
                # replaced by another type): every parked processor wakes and reads, and so
                # recreates its group or reports the key, as after any incident
                self._blocked_id = None
                connection = None
                await self.session.close()
                failures += 1
                self._wake_all()
                if failures == 1:
                    log.warning("parking watcher: %s; parked processors woken", exc)
                await anyio.sleep(min(0.1 * 2**failures, 5.0))

    async def _watch_once(self, connection: RespConnection) -> None:
        generation = self._generation
        command = watch_command(self._parked, self._block_ms())
        if command is None:
            return
        self._watching = generation
        self._blocked_id = connection.client_id
        try:
            with anyio.fail_after(WATCH_BLOCK_MS / 1000 + self.session.settings.socket_timeout):
                reply = await connection.send_packed(command)
        finally:
            self._blocked_id = None
        if is_error(reply):  # a stream became another type
            raise ReplyError(f"XREAD refused: {reply}")
        for one in woken_by(reply, self._parked):
            self._parked.discard(one)
            one.wake()  # new entries

    def _block_ms(self) -> int:
        until_check = max(self._next_check - time.monotonic(), 0.0)
        return max(1, min(WATCH_BLOCK_MS, round(until_check * 1000)))

    async def _check_if_due(self, connection: RespConnection) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        parked = list(self._parked)
        if not parked:
            return
        self._next_check = now + min(one.claim_idle_ms for one in parked) / 2000
        replies = await connection.pipeline(check_commands(parked))
        for one in with_idle_entries(parked, replies):
            self._parked.discard(one)
            one.wake()  # idle entries to reclaim

    async def _nudge(self) -> None:
        """Unblock the watching XREAD when processors parked after it was sent."""
        while True:
            await self._stale.wait()
            self._stale = anyio.Event()
            while self._watching < self._generation and self._parked:
                blocked = self._blocked_id
                if blocked is None:  # between two reads: the next one covers every parker
                    await anyio.sleep(NUDGE_RETRY_S * 5)
                    continue
                try:
                    unblocked = await self.redis.client_unblock(blocked)
                except Exception:  # noqa: BLE001 - the watch loop meets the trouble too
                    await anyio.sleep(NUDGE_RETRY_S * 50)
                    continue
                await anyio.sleep(0 if unblocked else NUDGE_RETRY_S)

    def _wake_all(self) -> None:
        parked, self._parked = self._parked, set()
        for one in parked:
            one.wake()
