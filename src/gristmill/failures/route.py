"""The failure router: a failed entry -> its commit operations (a retry parked, or a dead letter).

The decision is `policy.decide` (pure); here it becomes the ops of the batch's commit: a retry
is the input entry with a new attempt number, its origin and first failure time, parked in the
processor's own delayed store; a dead letter is a record (deadletter.build_fields) added to the
dead-letter lane of the entry's input. Both ack the input in the same commit.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from gristmill import keys
from gristmill.envelope import ATTEMPT, FAILED_AT, ORIGIN, REQUEUES, with_fields
from gristmill.failures.deadletter import build_fields
from gristmill.failures.policy import Decision, RetryAfter, decide
from gristmill.timing.packing import pack_entry

if TYPE_CHECKING:
    from gristmill.pipeline.batch import ProcessorStats, Slot
    from gristmill.pipeline.publish import Commit, Delayed
    from gristmill.specs import ProcessorSpec

log = logging.getLogger("gristmill.pipeline.processor")  # where operators look for entry outcomes


class FailureRouter:
    """Routes the failed entries of one processor, whose stream index `i` reads `streams[i]`."""

    def __init__(
        self,
        spec: ProcessorSpec,
        streams: tuple[bytes, ...],
        origins: tuple[str, ...],
        stores: tuple[bytes, ...],
        stats: ProcessorStats,
    ) -> None:
        self.spec = spec
        self.streams = streams  # the key each stream index acks (an input or an own lane)
        self.origins = origins  # the input each stream index belongs to
        self.stores = stores  # the delayed store each stream index parks its retries in
        self.dead_lanes = tuple(keys.dead_lane(s, spec.group).encode() for s in origins)
        self.stats = stats
        self._random = random.Random()

    def requeue(self, slot: Slot, now_ms: int) -> Delayed | None:
        """The entry parked again as its handler asked (`ctx.requeue`), or None if it did not.

        A requeue is not a failure: its attempt count starts again, one more requeue counted.
        """
        if slot.requeue_delay is None:
            return None
        requeues = slot.envelope.requeues + 1 if slot.envelope is not None else 1
        updates = {ATTEMPT: None, REQUEUES: str(requeues).encode()}
        member = pack_entry(with_fields(slot.entry[2], updates))
        self.stats.requeued += 1
        return [(self.stores[slot.entry[0]], now_ms + round(slot.requeue_delay * 1000), member)]

    def route(self, commit: Commit, slot: Slot, now_ms: int) -> None:
        """Retry the entry later through the delayed store, or dead-letter it, per the policy."""
        index, entry_id, fields, deliveries = slot.entry
        envelope = slot.envelope
        attempt = envelope.attempt + deliveries - 1 if envelope else deliveries
        # a retry keeps naming the input entry it came from, and when it first failed
        origin = (envelope.origin if envelope else None) or b"%s/%s" % (
            self.origins[index].encode(), entry_id,
        )  # fmt: skip
        first_failure_ms = (envelope.failed_at if envelope else None) or now_ms
        failure = slot.failure
        decision: Decision
        if slot.verdict is not None:
            decision = slot.verdict
        else:
            assert isinstance(failure, Exception)
            tasks = self.spec.tasks
            policy = (tasks.policy(slot) if tasks is not None else None) or self.spec.retry
            decision = decide(failure, attempt, policy, self._random.random())
        input_key = self.streams[index]
        where = f"{self.origins[index]} {entry_id.decode()}"
        extra = {"processor": self.spec.name, "entry_id": entry_id.decode()}
        if isinstance(decision, RetryAfter):
            retry = {
                ATTEMPT: str(decision.next_attempt).encode(),
                ORIGIN: origin,
                FAILED_AT: str(first_failure_ms).encode(),
            }
            retry.update(zip(slot.trace[::2], slot.trace[1::2], strict=True))  # telemetry hook
            member = pack_entry(with_fields(fields, retry))
            tasks = self.spec.tasks
            record = (
                tasks.retried(slot, decision.next_attempt, decision.delay_ms, now_ms)
                if tasks is not None
                else None
            )
            parked = [(self.stores[index], now_ms + decision.delay_ms, member)]
            commit.entry(input_key, entry_id, [], parked, record)
            self.stats.retried += 1
            log.info(
                "%s: attempt %d failed (%s: %s); retry in %d ms", where, attempt,
                type(failure).__name__, failure, decision.delay_ms, extra=extra,
            )  # fmt: skip
            return
        reason = decision.reason
        self.stats.errors_by_reason[reason] = self.stats.errors_by_reason.get(reason, 0) + 1
        if slot.verdict is not None:
            runs = attempt - 1  # it crashed its workers that often; it was not run again
        elif slot.message is None:
            runs = envelope.attempt - 1 if envelope else 0  # bad input: never reached the handler
        else:
            runs = attempt
        origin_stream, _, origin_id = origin.decode(errors="replace").rpartition("/")
        dead = build_fields(
            fields, reason=reason, origin_stream=origin_stream, origin_id=origin_id,
            attempts=runs, first_failure_ms=first_failure_ms, last_failure_ms=now_ms,
            exc=failure, message=decision.detail,
        )  # fmt: skip
        detail = decision.detail or (f"{type(failure).__name__}: {failure}" if failure else "")
        tasks = self.spec.tasks
        record = tasks.dead(slot, reason, detail, now_ms) if tasks is not None else None
        commit.entry(input_key, entry_id, [(self.dead_lanes[index], dead)], None, record)
        self.stats.dead_lettered += 1
        log.warning(
            "%s: entry dead-lettered to %s after %d runs: %s (%s)", where,
            self.dead_lanes[index].decode(), runs, reason, decision.detail or failure, extra=extra,
        )  # fmt: skip
