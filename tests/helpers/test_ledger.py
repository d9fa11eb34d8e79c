"""The checker sorts every id into exactly the bucket the vocabulary defines."""

from __future__ import annotations

from tests.helpers.ledger import Ledger, check, digest, set_digest


def test_a_clean_run_is_ok() -> None:
    verdict = check(acked=[1, 2, 3], observed=[3, 1, 2])
    assert verdict.ok
    assert verdict.summary() == {
        "acked": 3, "observed": 3, "lost": 0, "duplicated": 0, "unexpected": 0, "recovered": 0,
        "dead_letter": 0, "corrupt": 0,
    }  # fmt: skip


def test_lost_is_acked_and_never_seen() -> None:
    verdict = check(acked=["a", "b", "c"], observed=["a"], dead_lettered=["b"])
    assert verdict.lost == {"c"}
    assert verdict.dead_letter == {"b"}
    assert not verdict.ok


def test_duplicates_are_counted_with_their_distribution() -> None:
    verdict = check(acked=[1, 2, 3], observed=[1, 1, 2, 2, 2, 3], dead_lettered=[3])
    assert verdict.duplicated == {1: 2, 2: 3, 3: 2}
    assert verdict.duplicate_distribution() == {2: 2, 3: 1}
    assert verdict.ok  # at-least-once allows duplicates


def test_unexpected_is_seen_but_never_attempted() -> None:
    verdict = check(acked=[1], observed=[1, 99])
    assert verdict.unexpected == {99}
    assert not verdict.ok


def test_indeterminate_writes_that_show_up_are_recovered_not_unexpected() -> None:
    ledger: Ledger[str] = Ledger()
    for key in ("a", "b", "c"):
        ledger.attempt(key)
    ledger.ack("a")
    ledger.unsure("b")
    ledger.unsure("c")
    verdict = ledger.check(observed=["a", "b"])
    assert verdict.recovered == {"b"}
    assert verdict.lost == frozenset()  # c was never acked: missing it is not a loss
    assert verdict.unexpected == frozenset()
    assert verdict.ok


def test_a_late_ack_clears_indeterminate() -> None:
    ledger: Ledger[int] = Ledger()
    ledger.attempt(1)
    ledger.unsure(1)
    ledger.ack(1)
    ledger.unsure(1)  # a retry that timed out after the first write was acked
    assert ledger.indeterminate == set()
    assert ledger.check(observed=[]).lost == {1}


def test_corrupt_is_a_digest_mismatch() -> None:
    ledger: Ledger[str] = Ledger()
    ledger.attempt("a", b"alpha")
    ledger.attempt("b", b"beta")
    ledger.ack("a")
    ledger.ack("b")
    verdict = ledger.check(
        observed=["a", "b"], observed_digests=[("a", digest(b"alpha")), ("b", digest(b"BETA"))]
    )
    assert verdict.corrupt == {"b"}
    assert not verdict.ok


def test_set_digest_ignores_order_but_not_content() -> None:
    assert set_digest([b"x", b"y", b"z"]) == set_digest([b"z", b"x", b"y"])
    assert set_digest([b"x", b"y"]) != set_digest([b"x", b"y", b"y"])
