"""Entries of silent consumers: found idle past `claim_idle`, claimed, run here instead.

An entry delivered before, and still not acked, may be what killed its worker. Claiming a
whole batch of them would count a delivery against every innocent entry beside it, so those
("suspects") are claimed and committed one at a time: only the poison entry climbs to the
crash-loop cap. First-time entries are claimed together and join the next batch.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gristmill.pipeline.batch import ProcessorStats
    from gristmill.pipeline.consume import Entry, Reader
    from gristmill.pipeline.resp import RespConnection

log = logging.getLogger(__name__)

Suspect = tuple[int, bytes, int]  # (stream index, entry id, deliveries so far)


class Reclaimer:
    """Looks for idle entries every `claim_idle / 2` seconds and claims them."""

    def __init__(
        self, reader: Reader, claim_idle_ms: int, processor: str, stats: ProcessorStats
    ) -> None:
        self.reader = reader
        self.claim_idle_ms = claim_idle_ms
        self.processor = processor
        self.stats = stats
        self._next = 0.0
        self._extra = {"processor": processor, "group": reader.group.decode()}

    def now(self) -> None:
        """Make the next look for idle entries due at once (a parked processor woke up)."""
        self._next = 0.0

    def due(self) -> bool:
        """True when the next look for idle entries is due."""
        return time.monotonic() >= self._next

    async def sweep(self, connection: RespConnection) -> tuple[list[Entry], list[Suspect]]:
        """First-time idle entries, claimed now; and the repeat ones, to claim singly."""
        self._next = time.monotonic() + self.claim_idle_ms / 2000
        idle = await self.reader.idle_pending(connection, self.claim_idle_ms)
        first_time: dict[int, dict[bytes, int]] = {}
        suspects = []
        for index, entry_id, deliveries in idle:
            if deliveries <= 1:
                first_time.setdefault(index, {})[entry_id] = deliveries
            else:
                suspects.append((index, entry_id, deliveries))
        claimed: list[Entry] = []
        for index, counts in first_time.items():
            entries, deleted = await self.reader.claim(
                connection, index, list(counts), self.claim_idle_ms, counts
            )
            claimed += entries
            self._report_deleted(deleted)
        if claimed or suspects:
            self.stats.reclaimed += len(claimed)
            log.info(
                "reclaimed %d entries idle for over %d ms (%d more to retry one by one)",
                len(claimed), self.claim_idle_ms, len(suspects), extra=self._extra,
            )  # fmt: skip
        return claimed, suspects

    async def claim_one(self, connection: RespConnection, suspect: Suspect) -> list[Entry]:
        """Claim one suspect if it is still idle (an empty list if someone else took it)."""
        index, entry_id, deliveries = suspect
        claimed, deleted = await self.reader.claim(
            connection, index, [entry_id], self.claim_idle_ms, {entry_id: deliveries}
        )
        self._report_deleted(deleted)
        self.stats.reclaimed += len(claimed)
        return claimed

    def _report_deleted(self, deleted: list[bytes]) -> None:
        if deleted:
            self.stats.lost_deleted += len(deleted)
            log.error(
                "%d pending entries were deleted from the stream before being acked (trimmed "
                "or XDEL'd): they are lost; first ids %s",
                len(deleted), [d.decode() for d in deleted[:5]], extra=self._extra,
            )  # fmt: skip
