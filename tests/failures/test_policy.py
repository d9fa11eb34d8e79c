"""The retry policy is pure: these tests need no server and no sleeps, only a FakeClock."""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

import pytest

from gristmill.clock import FakeClock
from gristmill.errors import (
    ConfigError,
    DeadLetter,
    DecodeError,
    Retry,
    SchemaNotFound,
    ServerError,
)
from gristmill.failures import reasons
from gristmill.failures.policy import (
    DEFAULT_POLICY,
    RetryAfter,
    RetryPolicy,
    ToDeadLetter,
    backoff_ms,
    crash_loop,
    decide,
)

if TYPE_CHECKING:
    from collections.abc import Callable

EXACT = RetryPolicy(max_attempts=5, initial_delay=1.0, multiplier=2.0, max_delay=5.0, jitter=0.0)


def run_with_retries(
    handler: Callable[[int], None], policy: RetryPolicy, clock: FakeClock, rng: random.Random
) -> tuple[list[int], ToDeadLetter | None]:
    """The runtime's loop in miniature: run, and on failure wait as `decide` says, then rerun.

    Returns the clock time of each run and the dead-letter decision, if it came to that.
    """
    runs: list[int] = []
    attempt = 1
    while True:
        runs.append(clock.now_ms())
        try:
            handler(attempt)
        except Exception as exc:  # noqa: BLE001 - a failing handler is the subject here
            decision = decide(exc, attempt, policy, rng.random())
            if isinstance(decision, ToDeadLetter):
                return runs, decision
            clock.advance(decision.delay_ms / 1000)
            attempt = decision.next_attempt
        else:
            return runs, None


def flaky(failures: int) -> Callable[[int], None]:
    def handler(attempt: int) -> None:
        if attempt <= failures:
            raise ConnectionError(f"attempt {attempt} fails")

    return handler


def test_failing_twice_then_succeeding_runs_three_times_with_policy_delays() -> None:
    clock = FakeClock()
    runs, dead = run_with_retries(flaky(2), EXACT, clock, random.Random(1))
    assert dead is None
    assert len(runs) == 3
    assert [b - a for a, b in itertools.pairwise(runs)] == [1000, 2000]


def test_full_jitter_keeps_each_delay_between_zero_and_its_cap() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=2.0, max_delay=60.0)
    for seed in range(50):
        clock = FakeClock()
        runs, dead = run_with_retries(flaky(2), policy, clock, random.Random(seed))
        assert dead is None
        gaps = [b - a for a, b in itertools.pairwise(runs)]
        assert len(gaps) == 2
        assert 0 < gaps[0] <= 1000
        assert 0 < gaps[1] <= 2000


def test_full_jitter_spreads_delays() -> None:
    rng = random.Random(7)
    delays = {backoff_ms(3, DEFAULT_POLICY, rng.random()) for _ in range(200)}
    assert len(delays) > 100  # a burst of failures does not come back as a burst
    assert max(delays) <= 4000


def test_a_handler_that_always_fails_runs_max_attempts_then_is_dead_lettered() -> None:
    clock = FakeClock()
    runs, dead = run_with_retries(flaky(99), EXACT, clock, random.Random(1))
    assert len(runs) == 5
    assert [b - a for a, b in itertools.pairwise(runs)] == [1000, 2000, 4000, 5000]
    assert dead is not None
    assert dead.reason == reasons.RETRIES_EXHAUSTED
    assert "ConnectionError: attempt 5 fails" in dead.detail


def test_backoff_is_exponential_and_capped() -> None:
    assert [backoff_ms(n, EXACT, 0.0) for n in range(1, 7)] == [1000, 2000, 4000, 5000] + [
        5000,
        5000,
    ]


def test_backoff_survives_huge_attempt_numbers() -> None:
    assert backoff_ms(10_000, EXACT, 0.0) == 5000
    assert backoff_ms(10_000, RetryPolicy(multiplier=1.0, jitter=0.0), 0.0) == 1000


def test_zero_initial_delay_retries_at_once() -> None:
    assert backoff_ms(4, RetryPolicy(initial_delay=0.0), 0.5) == 0


@pytest.mark.parametrize(("attempt", "unit"), [(0, 0.5), (1, 1.0), (1, -0.1)])
def test_backoff_refuses_out_of_range_inputs(attempt: int, unit: float) -> None:
    with pytest.raises(ValueError, match="attempt|random_unit"):
        backoff_ms(attempt, EXACT, unit)


def test_retry_signal_uses_its_own_delay() -> None:
    assert decide(Retry(delay=30.0), 1, EXACT, 0.0) == RetryAfter(30_000, 2)


def test_retry_signal_without_delay_uses_the_backoff() -> None:
    assert decide(Retry(), 2, EXACT, 0.0) == RetryAfter(2000, 3)


def test_retry_signal_still_counts_against_max_attempts() -> None:
    decision = decide(Retry(delay=1.0), 5, EXACT, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reasons.RETRIES_EXHAUSTED


def test_retry_signal_is_retried_even_when_retry_on_excludes_it() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError,), jitter=0.0)
    assert isinstance(decide(Retry(), 1, policy, 0.0), RetryAfter)


def test_dead_letter_signal_never_retries() -> None:
    assert decide(DeadLetter(reason="total_cents must be positive"), 1, EXACT, 0.0) == (
        ToDeadLetter(reasons.HANDLER, "total_cents must be positive")
    )


def test_dead_letter_signal_with_a_token_keeps_it_as_the_reason() -> None:
    assert decide(DeadLetter(reason="invalid_total"), 1, EXACT, 0.0) == ToDeadLetter(
        "invalid_total", ""
    )


@pytest.mark.parametrize("reason", sorted(reasons.BAD_INPUT))
def test_decode_errors_never_retry_and_keep_their_reason(reason: str) -> None:
    decision = decide(DecodeError(reason, "broken"), 1, EXACT, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reason
    assert "broken" in decision.detail


def test_schema_errors_never_retry() -> None:
    decision = decide(SchemaNotFound("no schema 0xab"), 1, EXACT, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reasons.UNKNOWN_SCHEMA


def test_dead_on_wins_over_retry_on() -> None:
    policy = RetryPolicy(dead_on=(KeyError,))
    decision = decide(KeyError("sku"), 1, policy, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reasons.NOT_RETRYABLE
    assert decision.detail == "KeyError: 'sku'"
    assert isinstance(decide(ValueError("x"), 1, policy, 0.0), RetryAfter)


def test_exceptions_outside_retry_on_are_not_retried() -> None:
    policy = RetryPolicy(retry_on=(ConnectionError, ServerError))
    assert isinstance(decide(ConnectionResetError(), 1, policy, 0.0), RetryAfter)
    decision = decide(ZeroDivisionError("x"), 1, policy, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reasons.NOT_RETRYABLE


def test_max_attempts_one_never_retries() -> None:
    decision = decide(ConnectionError(), 1, RetryPolicy(max_attempts=1), 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert decision.reason == reasons.RETRIES_EXHAUSTED


def test_detail_is_bounded() -> None:
    decision = decide(ValueError("x" * 100_000), 5, EXACT, 0.0)
    assert isinstance(decision, ToDeadLetter)
    assert len(decision.detail) <= 2000


def test_crash_loop_cap() -> None:
    policy = RetryPolicy(max_deliveries=3)
    assert crash_loop(3, policy) is None
    decision = crash_loop(4, policy)
    assert decision is not None
    assert decision.reason == reasons.CRASH_LOOP


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_delay": -1.0},
        {"initial_delay": 10.0, "max_delay": 1.0},
        {"multiplier": 0.5},
        {"multiplier": float("inf")},
        {"jitter": 1.5},
        {"max_deliveries": 0},
        {"max_delay": float("inf")},
    ],
)
def test_bad_policies_fail_at_construction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_safe() -> None:
    assert 1 < DEFAULT_POLICY.max_attempts <= 10
    assert DEFAULT_POLICY.jitter == 1.0
    assert 3 <= DEFAULT_POLICY.max_deliveries <= 20  # >= 3: a restart re-read counts (P4)
    worst_ms = sum(backoff_ms(n, DEFAULT_POLICY, 0.0) for n in range(1, 5))
    assert worst_ms == 15_000


def test_every_reason_is_a_token() -> None:
    assert all(reasons.is_reason_token(reason) for reason in reasons.KNOWN)
    assert not reasons.is_reason_token("Not a token")
    assert not reasons.is_reason_token("x" * 65)
