"""The fault-test checker, in rabbitmq/jepsen's vocabulary (reliability.md §4.2); pure.

A producer records each id as attempted, then acked (the XADD replied) or indeterminate (it
timed out: maybe written). After the run the test collects every id it observed in the outputs
and in the dead-letter lanes, and `check` sorts the ids:

    lost          acked, and neither observed nor dead-lettered
    duplicated    observed (outputs + dead letters) more than once: id -> times
    unexpected    observed, never attempted
    recovered     indeterminate, and observed after all (not lost, not an error)
    dead_letter   dead-lettered (neither lost nor processed)
    corrupt       observed with a different content digest than produced

    ledger = Ledger()
    for entry_id in ...: ledger.attempt(key); ...; ledger.ack(key)
    verdict = ledger.check(observed=output_keys, dead_lettered=dead_keys)
    assert verdict.lost == set() and verdict.unexpected == set(), verdict.summary()
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterable, Mapping

K = TypeVar("K", bound="Hashable")


@dataclass(frozen=True)
class Verdict(Generic[K]):
    """What happened to every id; `ok` when nothing was lost, unexpected or corrupt."""

    lost: frozenset[K]
    duplicated: dict[K, int]
    unexpected: frozenset[K]
    recovered: frozenset[K]
    dead_letter: frozenset[K]
    corrupt: frozenset[K]
    acked: int
    observed: int

    @property
    def ok(self) -> bool:
        """No loss, nothing unexpected, nothing corrupt (duplicates are at-least-once's price)."""
        return not (self.lost or self.unexpected or self.corrupt)

    def duplicate_distribution(self) -> dict[int, int]:
        """Times seen -> how many ids were seen that often (only for ids seen twice or more)."""
        return dict(sorted(Counter(self.duplicated.values()).items()))

    def summary(self) -> dict[str, int]:
        """The counts, for assertion messages and reports."""
        return {
            "acked": self.acked,
            "observed": self.observed,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "recovered": len(self.recovered),
            "dead_letter": len(self.dead_letter),
            "corrupt": len(self.corrupt),
        }


def check(
    acked: Iterable[K],
    observed: Iterable[K],
    *,
    dead_lettered: Iterable[K] = (),
    indeterminate: Iterable[K] = (),
    attempted: Iterable[K] | None = None,
    produced_digests: Mapping[K, bytes] | None = None,
    observed_digests: Iterable[tuple[K, bytes]] = (),
) -> Verdict[K]:
    """Sort ids into lost / duplicated / unexpected / recovered / dead_letter / corrupt.

    `attempted` defaults to acked + indeterminate. An id counts once per appearance in
    `observed` and in `dead_lettered`, so processed-and-dead-lettered is a duplicate too.
    """
    acked_set = set(acked)
    indeterminate_set = set(indeterminate)
    attempted_set = (
        acked_set | indeterminate_set if attempted is None else set(attempted) | acked_set
    )
    seen_count: Counter[K] = Counter(observed)
    dead_count: Counter[K] = Counter(dead_lettered)
    appearances = seen_count + dead_count
    everything_seen = set(appearances)
    corrupt: set[K] = set()
    if produced_digests is not None:
        for key, digest in observed_digests:
            expected = produced_digests.get(key)
            if expected is not None and expected != digest:
                corrupt.add(key)
    return Verdict(
        lost=frozenset(acked_set - everything_seen),
        duplicated={key: times for key, times in appearances.items() if times > 1},
        unexpected=frozenset(everything_seen - attempted_set),
        recovered=frozenset((indeterminate_set - acked_set) & everything_seen),
        dead_letter=frozenset(dead_count),
        corrupt=frozenset(corrupt),
        acked=len(acked_set),
        observed=sum(seen_count.values()),
    )


def digest(payload: bytes) -> bytes:
    """The content digest the checker compares (sha256)."""
    return hashlib.sha256(payload).digest()


def set_digest(payloads: Iterable[bytes]) -> int:
    """An order-independent digest of many payloads: the sum of their sha256, mod 2**256."""
    return sum(int.from_bytes(digest(payload), "big") for payload in payloads) % (1 << 256)


@dataclass
class Ledger(Generic[K]):
    """A producer's record: attempted before the write, then acked or indeterminate after."""

    attempted: set[K] = field(default_factory=set)
    acked: set[K] = field(default_factory=set)
    indeterminate: set[K] = field(default_factory=set)
    digests: dict[K, bytes] = field(default_factory=dict)

    def attempt(self, key: K, payload: bytes | None = None) -> None:
        """Record `key` before writing it (with its payload, to detect corruption later)."""
        self.attempted.add(key)
        if payload is not None:
            self.digests[key] = digest(payload)

    def ack(self, key: K) -> None:
        """The write of `key` was acknowledged by the server."""
        self.indeterminate.discard(key)
        self.acked.add(key)

    def unsure(self, key: K) -> None:
        """The write of `key` failed or timed out: it may or may not have been applied."""
        if key not in self.acked:
            self.indeterminate.add(key)

    def check(
        self,
        observed: Iterable[K],
        *,
        dead_lettered: Iterable[K] = (),
        observed_digests: Iterable[tuple[K, bytes]] = (),
    ) -> Verdict[K]:
        """`check` against this ledger's acked, indeterminate and attempted ids."""
        return check(
            self.acked, observed, dead_lettered=dead_lettered, indeterminate=self.indeterminate,
            attempted=self.attempted, produced_digests=self.digests,
            observed_digests=observed_digests,
        )  # fmt: skip
