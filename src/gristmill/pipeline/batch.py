"""What the stages pass along: one entry of a batch on its way through, and the counters.

Each stage fills in its part of a `Slot`: decode sets `envelope` and `message` (or `failure`,
or `verdict` for a crash-looped entry), handle sets `context`, `result`, `published` and
`requeue_delay` (or `failure`), and the commit building turns it into commit operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from gristmill.context import Context
    from gristmill.envelope import Envelope
    from gristmill.failures.policy import RetryPolicy, ToDeadLetter
    from gristmill.pipeline.consume import Entry
    from gristmill.pipeline.publish import RecordOp


@dataclass(slots=True)
class Slot:
    """One entry of a batch on its way through the stages."""

    entry: Entry
    envelope: Envelope | None = None
    message: Message | None = None
    context: Context | None = None
    result: object = None
    published: list[tuple[str, Message]] = field(default_factory=list)  # ctx.publish calls
    requeue_delay: float | None = None  # ctx.requeue(delay)
    failure: BaseException | None = None
    verdict: ToDeadLetter | None = None  # dead-lettered unrun (crash-loop cap)
    trace: list[bytes] = field(default_factory=list)  # telemetry hook: the handler span's fields


class TaskTracking(Protocol):
    """What a task queue's processor adds to its batches (gristmill.tasks.worker.TaskWork):
    a start per batch, and each entry's record update in the batch's commit."""

    async def start(self, slots: list[Slot]) -> None:
        """Mark the batch's tasks running (one round trip); unrun the cancelled, expire the late."""

    def policy(self, slot: Slot) -> RetryPolicy | None:
        """The retry policy of the slot's task (None: the processor's)."""

    def done(self, slot: Slot, now_ms: int) -> RecordOp | None:
        """The record update of a task that ran and returned (or was acked unrun)."""

    def retried(self, slot: Slot, next_attempt: int, delay_ms: int, now_ms: int) -> RecordOp | None:
        """The record update of a failed run that will be retried after `delay_ms`."""

    def dead(self, slot: Slot, reason: str, detail: str, now_ms: int) -> RecordOp | None:
        """The record update of a task dead-lettered with `reason`."""


@dataclass
class ProcessorStats:
    """Counters of one processor since start; read by health and metrics."""

    batches: int = 0
    handled: int = 0
    published: int = 0
    dead_lettered: int = 0
    retried: int = 0  # failed entries parked in the delayed store for another run
    requeued: int = 0  # entries the handler asked to see again later (ctx.requeue)
    skipped: int = 0  # claimed by another consumer before our commit
    split_commits: int = 0  # on a cluster: batches with outputs in other slots than the input
    written_ahead: int = 0  # those outputs, written before the commit (at-least-once)
    reclaimed: int = 0
    lost_deleted: int = 0  # pending entries deleted from the stream before anyone acked them
    incidents: int = 0
    last_error: str = ""
    errors_by_reason: dict[str, int] = field(default_factory=dict)
