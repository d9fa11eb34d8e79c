"""What to do with an entry whose handler failed: retry it later, or dead-letter it (pure).

No Redis, no await, no clock: the caller passes the attempt number and a random unit, and turns
the decision into I/O (schedule the retry at `now + delay_ms`, or write the dead-letter entry).

    decision = decide(exc, attempt, policy, random.random())
    if isinstance(decision, RetryAfter):
        due_ms = clock.now_ms() + decision.delay_ms
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gristmill.errors import ConfigError, DeadLetter, DecodeError, Retry, SchemaError
from gristmill.failures import reasons

_DETAIL_CHARS = 2000  # enough for a message; a dead-letter entry must stay small


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a processor retries a failed entry, and when it gives up.

    The defaults are safe for a handler that calls other services: five runs over about fifteen
    seconds, spread by full jitter so that a burst of failures does not come back as a burst.

    Args:
        max_attempts: Runs of the handler per entry, the first included (1: never retry).
        initial_delay: Seconds before the second run, before jitter.
        multiplier: Each further retry waits this many times longer than the one before.
        max_delay: Seconds that no computed delay exceeds.
        jitter: The fraction of each delay that is random: 1.0 is full jitter (a delay is
            uniform between 0 and its computed value), 0.0 makes delays exact.
        retry_on: Exception types that are retried; any other exception is dead-lettered as
            `not_retryable`.
        dead_on: Exception types dead-lettered at once as `not_retryable`; checked before
            `retry_on`, so it can carve exceptions out of a broad `retry_on`.
        max_deliveries: The crash-loop cap: an entry delivered more often than this (because
            it kills the worker before it can fail cleanly) is dead-lettered unrun.

    Raises:
        ConfigError: If a value is out of range.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dead_on: tuple[type[BaseException], ...] = ()
    max_deliveries: int = 5

    def __post_init__(self) -> None:
        problems = []
        if self.max_attempts < 1:
            problems.append(f"max_attempts={self.max_attempts}: give 1 or more")
        if not 0 <= self.initial_delay <= self.max_delay:
            problems.append(
                f"initial_delay={self.initial_delay}, max_delay={self.max_delay}: "
                "give 0 <= initial_delay <= max_delay"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            problems.append(f"multiplier={self.multiplier}: give a finite number >= 1")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter={self.jitter}: give a fraction from 0.0 to 1.0")
        if self.max_deliveries < 1:
            problems.append(f"max_deliveries={self.max_deliveries}: give 1 or more")
        if not math.isfinite(self.max_delay):
            problems.append(f"max_delay={self.max_delay}: give a finite number of seconds")
        if problems:
            raise ConfigError("RetryPolicy: " + "; ".join(problems))

    @property
    def initial_ms(self) -> int:
        """`initial_delay` in milliseconds."""
        return round(self.initial_delay * 1000)

    @property
    def max_ms(self) -> int:
        """`max_delay` in milliseconds."""
        return round(self.max_delay * 1000)


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Run the entry again as attempt `next_attempt`, `delay_ms` from now."""

    delay_ms: int
    next_attempt: int


@dataclass(frozen=True, slots=True)
class ToDeadLetter:
    """Move the entry to its dead-letter lane with `reason` (a token from `reasons`)."""

    reason: str
    detail: str


Decision = RetryAfter | ToDeadLetter

DEFAULT_POLICY = RetryPolicy()


def backoff_ms(attempt: int, policy: RetryPolicy, random_unit: float) -> int:
    """The delay after failed run number `attempt` (1-based): exponential, capped, jittered.

    `random_unit` is uniform in [0, 1); it takes off up to `policy.jitter` of the delay.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if not 0 <= random_unit < 1:
        raise ValueError(f"random_unit must be in [0, 1), got {random_unit}")
    initial_ms, max_ms = policy.initial_ms, policy.max_ms
    if initial_ms == 0:
        return 0
    growth_steps = attempt - 1
    # compare logarithms first: multiplier ** attempt overflows a float for large attempts
    if policy.multiplier > 1 and growth_steps * math.log(policy.multiplier) >= math.log(
        max_ms / initial_ms
    ):
        raw_ms = float(max_ms)
    else:
        raw_ms = min(initial_ms * policy.multiplier**growth_steps, float(max_ms))
    return round(raw_ms * (1 - policy.jitter * random_unit))


def decide(exc: Exception, attempt: int, policy: RetryPolicy, random_unit: float) -> Decision:
    """Retry the entry whose run number `attempt` (1-based) raised `exc`, or dead-letter it.

    Bad input (`DecodeError`, `SchemaError`) never retries; a programming error
    (`ConfigError`: a bad return value, an undeclared stream) never retries (`handler_error`);
    `DeadLetter` never retries;
    `Retry(delay=...)` uses its delay (None: the policy's backoff) but still counts against
    `max_attempts`; other exceptions follow `dead_on`, then `retry_on`.
    """
    if isinstance(exc, DecodeError | SchemaError):
        return ToDeadLetter(exc.reason, _detail(exc))
    if isinstance(exc, ConfigError):  # a programming error: the same run fails the same way
        return ToDeadLetter(reasons.HANDLER_ERROR, _detail(exc))
    if isinstance(exc, DeadLetter):
        if reasons.is_reason_token(exc.reason):
            return ToDeadLetter(exc.reason, "")
        return ToDeadLetter(reasons.HANDLER, exc.reason[:_DETAIL_CHARS])
    if not isinstance(exc, Retry) and (
        isinstance(exc, policy.dead_on) or not isinstance(exc, policy.retry_on)
    ):
        return ToDeadLetter(reasons.NOT_RETRYABLE, _detail(exc))
    if attempt >= policy.max_attempts:
        return ToDeadLetter(
            reasons.RETRIES_EXHAUSTED, f"after {attempt} attempts: {_detail(exc)}"[:_DETAIL_CHARS]
        )
    if isinstance(exc, Retry) and exc.delay is not None:
        delay_ms = max(0, round(exc.delay * 1000))  # the handler knows better than the policy
    else:
        delay_ms = backoff_ms(attempt, policy, random_unit)
    return RetryAfter(delay_ms, attempt + 1)


def crash_loop(deliveries: int, policy: RetryPolicy) -> ToDeadLetter | None:
    """Dead-letter an entry delivered `deliveries` times before it runs, if past the cap.

    The delivery count (XPENDING, XAUTOCLAIM) grows each time the entry is read without being
    acked: an entry that kills its worker comes back with a higher count every time.
    """
    if deliveries > policy.max_deliveries:
        return ToDeadLetter(
            reasons.CRASH_LOOP,
            f"delivered {deliveries} times, over max_deliveries={policy.max_deliveries}",
        )
    return None


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS]
