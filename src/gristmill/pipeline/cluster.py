"""Redis Cluster on the hot path: the slot map, a processor's home slot, redirects.

A processor reads all of its streams (its inputs and their lanes) in one XREADGROUP, which on
a cluster must stay in one hash slot: its *home slot*. Its two connections go to the master
that owns that slot, and its commit script touches only keys of that slot. Outputs in other
slots are written before the script, by plain XADDs to their own masters (`Session.node`):
at-least-once, where outputs of the home slot are exactly-once with the ack.

A redirect (MOVED, ASK), TRYAGAIN (a multi-key command during a slot migration) or
CLUSTERDOWN refused the command whole: it is an incident like a lost connection. The
session closes everything, waits its backoff, reads the slot map again and reconnects to
the slot's owner now; the entries still pending are read again from there.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from gristmill import keys
from gristmill.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

SLOTS = 16384
# error codes that refuse a command whole on a cluster: the slot map must be read again
REDIRECT_CODES = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"})

Address = tuple[str, int]


@dataclass(frozen=True)
class SlotMap:
    """Which master serves which slots (from CLUSTER SLOTS)."""

    starts: tuple[int, ...]  # sorted range starts
    ends: tuple[int, ...]  # the matching range ends (inclusive)
    owners: tuple[Address, ...]  # the master of each range

    @classmethod
    def parse(cls, reply: Sequence[Any]) -> SlotMap:
        """The map a CLUSTER SLOTS reply describes: `[[start, end, [host, port, id], ...]]`.

        Raises:
            ValueError: If the reply names no slot.
        """
        ranges = []
        for item in reply:
            start, end, master = int(item[0]), int(item[1]), item[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            ranges.append((start, end, (host or "127.0.0.1", int(master[1]))))
        if not ranges:
            raise ValueError("the cluster serves no slot yet")
        ranges.sort()
        return cls(
            tuple(r[0] for r in ranges), tuple(r[1] for r in ranges), tuple(r[2] for r in ranges)
        )

    def owner(self, slot: int) -> Address | None:
        """The master serving `slot`, or None if no master does (the cluster is down there)."""
        at = bisect.bisect_right(self.starts, slot) - 1
        if at < 0 or slot > self.ends[at]:
            return None
        return self.owners[at]

    @property
    def masters(self) -> frozenset[Address]:
        return frozenset(self.owners)


def is_redirect(code: str) -> bool:
    """True for the error codes that mean "ask the slot map again", not "refused"."""
    return code in REDIRECT_CODES


def node_url(seed_url: str, address: Address) -> str:
    """The URL of the node at `address`, with the seed's scheme and credentials (db 0)."""
    parts = urlsplit(seed_url)
    credentials = parts.netloc.rpartition("@")[0]
    host, port = address
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


def home_slot(processor: str, streams: Iterable[str]) -> int:
    """The one hash slot of every stream a processor reads.

    Raises:
        ConfigError: If they span slots: one XREADGROUP cannot read them on a cluster.
    """
    by_slot: dict[int, list[str]] = {}
    for stream in streams:
        by_slot.setdefault(keys.key_slot(stream.encode()), []).append(stream)
    if len(by_slot) == 1:
        return next(iter(by_slot))
    spread = "; ".join(f"slot {slot}: {', '.join(names)}" for slot, names in by_slot.items())
    raise ConfigError(
        f"processor {processor} reads streams in several hash slots of the cluster ({spread})",
        fix="give its inputs one hash tag, e.g. `{orders}.paid` and `{orders}.refunded`, or "
        "split it into one processor per input",
    )


def foreign_outputs(home: int, outputs: Iterable[str]) -> frozenset[bytes]:
    """The outputs outside the home slot: written before the commit, at-least-once."""
    return frozenset(s.encode() for s in outputs if keys.key_slot(s.encode()) != home)


def check_prefix(prefix: str) -> None:
    """On a cluster, gristmill's own keys (registry, leases) need a hash tag in the prefix.

    Raises:
        ConfigError: If the prefix has none: the registry's script touches several of them.
    """
    if not keys.has_hash_tag(prefix):
        raise ConfigError(
            f"GRISTMILL_KEY_PREFIX {prefix!r} has no hash tag, and on Redis Cluster the schema "
            "registry and the leases write several of gristmill's keys in one script",
            fix="set GRISTMILL_KEY_PREFIX to a prefix with a hash tag, e.g. `{gm}:`",
        )
