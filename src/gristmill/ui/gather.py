"""What the dashboard reads from Redis and does to it (the I/O half; the shaping is pure).

One `Dashboard` per server process: it takes a snapshot every `interval` seconds with the
same `take_snapshot` as `runtime status`, keeps the last ones in a `History` (rates and the
throughput charts come from them), and answers the page from the newest. However many pages
poll, Redis sees one snapshot per interval. Dead-letter lanes are read and acted on through
`failures.operations`, the code `runtime dlq` runs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
from redis.exceptions import RedisError

from gristmill import keys
from gristmill.failures import lanes, operations
from gristmill.observe.snapshot import take_snapshot
from gristmill.schemas.cache import SchemaCache
from gristmill.schemas.registry import SchemaRegistry
from gristmill.tasks import inspect
from gristmill.tasks.schedules import Schedules
from gristmill.timing.waiting import store_stats
from gristmill.ui import panels
from gristmill.ui.history import History
from gristmill.ui.model import Topology, live_view

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.observe.shape import Snapshot
    from gristmill.settings import Settings

log = logging.getLogger(__name__)

LANE_ENTRIES = 20  # entries listed per lane
REASONS_SCAN = 1000  # entries per lane read to count reasons
INVENTORY_ROWS = 50  # delayed stores, schedules, tasks and subjects shown at most
INVENTORY_MAX_AGE_S = 5.0  # pages asking more often share one reading


class Dashboard:
    """The dashboard's view of one server: its snapshots, and the reads and actions it runs."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        streams: list[str] | None = None,
        topology: Topology | None = None,
        history: History | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.streams = streams  # None: every stream on the server
        self.topology = topology or Topology()
        self.history = history or History()
        self.problem: str | None = None  # why the last snapshot failed, until one works
        self._inventory: tuple[float, dict[str, Any]] | None = None  # (monotonic s, document)

    async def refresh(self) -> Snapshot:
        """Take one snapshot (the same function `runtime status` uses) and keep it."""
        snapshot = await take_snapshot(self.redis, self.streams, prefix=self.settings.key_prefix)
        return self.history.add(snapshot)

    async def sample_forever(self, interval: float) -> None:
        """`refresh` every `interval` seconds; a failure is shown on the page, logged once."""
        while True:
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:
                if self.problem is None:
                    log.warning("dashboard snapshot failed: %s", exc)
                self.problem = f"cannot read the server: {type(exc).__name__}: {exc}"
            else:
                self.problem = None
            await anyio.sleep(interval)

    def live(self) -> dict[str, Any]:
        """The live document: the newest snapshot with its series, or why there is none."""
        latest = self.history.latest
        if latest is None:
            return {"taken_ms": None, "problem": self.problem or "no snapshot yet"}
        return {
            **live_view(latest, self.history.all_series(), self.topology),
            "problem": self.problem,
        }

    async def inventory(self) -> dict[str, Any]:
        """Delayed stores with buckets, schedules, the newest tasks, schemas by subject; read
        at most once per `INVENTORY_MAX_AGE_S`, however many pages ask."""
        now = time.monotonic()
        if self._inventory is not None and now - self._inventory[0] < INVENTORY_MAX_AGE_S:
            return self._inventory[1]
        document = await self._read_inventory()
        self._inventory = (now, document)
        return document

    async def _read_inventory(self) -> dict[str, Any]:
        prefix = self.settings.key_prefix
        now_ms = self.history.latest.taken_ms if self.history.latest else 0
        targets = sorted(
            m.decode() if isinstance(m, bytes) else str(m)
            for m in await self.redis.smembers(keys.delayed_targets(prefix))
        )[:INVENTORY_ROWS]
        stats = [await store_stats(self.redis, target) for target in targets]
        registry = SchemaRegistry(self.redis, prefix)
        schedules = await Schedules(self.redis, SchemaCache(registry), prefix).all()
        tasks = await inspect.newest(self.redis, prefix=prefix, limit=INVENTORY_ROWS)
        subjects: dict[str, list[tuple[str, str | None]]] = {}
        modes: dict[str, str] = {}
        for subject in (await registry.subjects())[:INVENTORY_ROWS]:
            versions = []
            for schema_id in await registry.versions(subject):
                record = await registry.fetch(schema_id)
                versions.append((schema_id, record.message_name if record else None))
            subjects[subject] = versions
            modes[subject] = (await registry.compatibility(subject)).value
        return {
            "delayed": panels.delayed_json(stats, now_ms),
            "schedules": panels.schedules_json(schedules[:INVENTORY_ROWS]),
            "tasks": panels.tasks_json(tasks),
            "schemas": panels.schemas_json(subjects, modes),
        }

    async def lane(self, stream: str, group: str, entry_id: str | None) -> dict[str, Any] | str:
        """One dead-letter lane (reasons, first entries, one decoded), or why there is none."""
        missing = await operations.missing_lane(self.redis, stream, group)
        if missing is not None:
            return missing
        reasons, partial = await lanes.reason_counts(self.redis, stream, group, limit=REASONS_SCAN)
        listed = lanes.Selection(limit=LANE_ENTRIES)
        entries = [entry async for entry in lanes.read_entries(self.redis, stream, group, listed)]
        wanted = entry_id or (entries[0].entry_id if entries else None)
        shown = None
        if wanted is not None:  # as `runtime dlq show STREAM GROUP ID` reads one entry
            one = operations.selection((), wanted, wanted, 1)
            found, decoded = await operations.entries_with_payloads(
                self.redis, self.settings, stream, group, one
            )
            shown = (found[0], decoded[0]) if found else None
        return panels.lane_view(stream, group, reasons, partial, entries, shown)

    async def replay(self, stream: str, group: str, chosen: lanes.Selection) -> dict[str, Any]:
        """`runtime dlq replay`: the selected entries back to the group's retry lane."""
        return dataclasses.asdict(await operations.replay(self.redis, stream, group, chosen))

    async def purge(self, stream: str, group: str, chosen: lanes.Selection) -> dict[str, Any]:
        """`runtime dlq purge --yes`: the selected entries deleted for good."""
        ids = await operations.select_ids(self.redis, stream, group, chosen)
        deleted = await operations.purge_ids(self.redis, stream, group, ids) if ids else 0
        return {
            "dead_lane": lanes.lane_keys(stream, group)[0],
            "selected": len(ids),
            "deleted": deleted,
        }
