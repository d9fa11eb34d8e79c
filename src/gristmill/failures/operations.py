"""What an operator does to a dead-letter lane, for `runtime dlq` and `runtime ui` alike.

Checking that a lane exists, selecting entries, reading them with their payloads decoded
through the registry, replaying them and purging them: both front ends call these, so the
dashboard's buttons do exactly what the commands do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from gristmill.errors import ConfigError
from gristmill.failures import lanes
from gristmill.schemas.decoding import decoded_payloads

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.settings import Settings

_ENTRY_ID = re.compile(r"\(?\d+(-\d+)?")


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a replay did to the lane of one group: the keys and the counts."""

    dead_lane: str
    retry_lane: str
    moved: int
    skipped: int  # gone before they could move (replayed or purged meanwhile)
    refused: int  # not replayable (see the log)


def selection_problem(start: str, end: str, limit: int | None = None) -> tuple[str, str] | None:
    """What is wrong with a selection, as (problem, fix), or None if it is fine (pure)."""
    for name, value in (("--start", start), ("--end", end)):
        if value not in ("-", "+") and not _ENTRY_ID.fullmatch(value):
            return f"{name} {value!r} is not a stream entry id", f"give {name} like 1700000000000-0"
    if limit is not None and limit < 1:
        return f"--limit {limit}", "give --limit a number of entries, 1 or more"
    return None


def selection(
    reasons: tuple[str, ...] | frozenset[str], start: str, end: str, limit: int | None = None
) -> lanes.Selection:
    """The entries to act on: by reason (any of) and by id range (inclusive), at most `limit`.

    Raises:
        ConfigError: If `selection_problem` finds one (its problem and fix, in one line).
    """
    problem = selection_problem(start, end, limit)
    if problem is not None:
        raise ConfigError("; ".join(problem))
    return lanes.Selection(frozenset(reasons), start, end, limit)


async def missing_lane(redis: Redis, stream: str, group: str) -> str | None:
    """Why there is no dead lane of `group` reading `stream` to look at, or None if there is."""
    dead, _ = lanes.lane_keys(stream, group)
    if await redis.exists(dead):
        return None
    if not await redis.exists(stream):
        return f"no stream {stream} (and no dead lane {dead})"
    try:
        groups = sorted(str(info["name"], "utf-8") for info in await redis.xinfo_groups(stream))
    except ResponseError:
        return f"{stream} is not a stream"
    if group not in groups:
        return f"{stream} has no group {group}; its groups: {', '.join(groups) or 'none'}"
    return None  # a real group that has dead-lettered nothing yet: an empty lane


async def entries_with_payloads(
    redis: Redis, settings: Settings, stream: str, group: str, chosen: lanes.Selection
) -> tuple[list[lanes.DeadEntry], list[dict[str, Any]]]:
    """The selected entries, and for each its payload as JSON (or why it does not decode)."""
    found = [entry async for entry in lanes.read_entries(redis, stream, group, chosen)]
    return found, await decoded_payloads(redis, settings, found)


async def replay(redis: Redis, stream: str, group: str, chosen: lanes.Selection) -> ReplayOutcome:
    """Move the selected entries to the group's retry lane with a fresh budget (`lanes.replay`)."""
    dead, retry = lanes.lane_keys(stream, group)
    result = await lanes.replay(redis, stream, group, chosen)
    return ReplayOutcome(dead, retry, result.moved, result.skipped, result.refused)


async def count_replayable(redis: Redis, stream: str, group: str, chosen: lanes.Selection) -> int:
    """How many entries a replay of `chosen` would consider (a dry run)."""
    return len(await lanes.select_ids(redis, stream, group, chosen))


async def purge_ids(redis: Redis, stream: str, group: str, entry_ids: list[str]) -> int:
    """Delete exactly `entry_ids` (selected and confirmed before) from the lane, for good."""
    return await lanes.delete(redis, stream, group, entry_ids)


async def select_ids(redis: Redis, stream: str, group: str, chosen: lanes.Selection) -> list[str]:
    """The ids of the selected entries, for a purge that deletes exactly what was confirmed."""
    return await lanes.select_ids(redis, stream, group, chosen)
