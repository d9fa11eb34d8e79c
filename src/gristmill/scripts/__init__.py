"""Lua scripts shipped as package data, one file per atomic operation, and their loader.

A line `--!include lib/name.lua` is replaced by that file, so scripts share Lua helpers (for
instance the delayed store's add, used by both the commit and the schedule scripts) without
copying them. Calls go through EVALSHA; on NOSCRIPT (a restarted or failed-over server) the
script is loaded and the call retried once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)
_MAX_INCLUDE_DEPTH = 4


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _expand(source: str, depth: int = 0) -> str:
    if depth > _MAX_INCLUDE_DEPTH:
        raise RecursionError("Lua includes nest too deep")
    return _INCLUDE.sub(lambda match: _expand(_read(match.group(1)), depth + 1), source)


class Script:
    """One Lua script: its expanded source and SHA1, called by EVALSHA."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self, redis: Redis, keys: Sequence[str | bytes], args: Sequence[str | bytes | int]
    ) -> Any:
        """Run the script with `keys` and `args`; loads it once if the server lost it."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    async def many(
        self,
        redis: Redis,
        calls: Sequence[tuple[Sequence[str | bytes], Sequence[str | bytes | int]]],
    ) -> list[Any]:
        """Run the script once per (keys, args) in one round trip; the replies in order.

        A call refused with NOSCRIPT did not run, so after loading the script only those
        calls are sent again. Any other error reply is raised. redis-py's cluster client
        refuses EVALSHA in a pipeline: there the calls go concurrently, each to its key's
        master (a round trip per call, all at once).
        """
        if isinstance(redis, RedisCluster):
            return list(await asyncio.gather(*(self(redis, k, a) for k, a in calls)))
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = redis.pipeline(transaction=False)
            for index in todo:
                keys, args = calls[index]
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            missing = []
            for index, reply in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(index)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    replies[index] = reply
            if not missing:
                break
            await redis.script_load(self.source)
            todo = missing
        return replies


@cache
def load(name: str) -> Script:
    """The script `name` (e.g. `"commit_batch"` for `scripts/commit_batch.lua`)."""
    return Script(name, _expand(_read(f"{name}.lua")))
