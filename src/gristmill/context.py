"""What a handler receives besides its message: where it came from, and ways to send more."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill.envelope import NO_HEADERS
from gristmill.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from google.protobuf.message import Message


class Context:
    """One entry's context: its stream, id, attempt, requeues, key, headers and trace context.

    `attempt` is 1 on the first run and counts retries and redeliveries; a requeue starts it
    at 1 again, while `requeues` counts the requeues (carried on the wire), so a handler can
    requeue an entry a bounded number of times. `key` is the entry's partition key and `trace`
    its W3C trace context (`traceparent`, `tracestate`); both are carried onto the outputs.
    User `headers` are not. Outputs are buffered and leave with the batch's acks in one
    round trip.
    """

    __slots__ = (
        "_allowed",
        "_outputs",
        "_requeue_delay",
        "attempt",
        "entry_id",
        "headers",
        "key",
        "processor",
        "requeues",
        "stream",
        "task",
        "trace",
    )

    def __init__(
        self,
        processor: str,
        outputs: frozenset[str],
        stream: str,
        entry_id: str,
        attempt: int,
        headers: Mapping[str, str],
        *,
        key: bytes | None = None,
        trace: Mapping[str, str] = NO_HEADERS,
        requeues: int = 0,
        task: bytes | None = None,
    ) -> None:
        self.processor = processor
        self.stream = stream
        self.entry_id = entry_id
        self.attempt = attempt  # 1 on the first run; counts retries and redeliveries
        self.headers = headers
        self.key = key
        self.trace = trace
        self.requeues = requeues
        self.task = task  # a task queue's entry: `<task name>/<task id>` (gristmill.tasks)
        self._outputs: list[tuple[str, Message]] = []
        self._requeue_delay: float | None = None
        self._allowed = outputs

    def publish(self, stream: str, message: Message) -> None:
        """Send `message` to `stream` in the same round trip as this batch's acks.

        Raises:
            ConfigError: If `stream` is not an output of this processor.
        """
        if stream not in self._allowed:
            raise ConfigError(
                f"processor {self.processor!r} cannot publish to {stream!r}: "
                f"declare it in output= or side_outputs= (it may publish to {sorted(self._allowed)})"
            )
        self._outputs.append((stream, message))

    def requeue(self, delay: float) -> None:
        """Process this entry again in `delay` seconds (acked now, in the same round trip).

        It comes back through this processor's own lane, so other consumer groups of the
        input stream never see it twice. Messages returned or published are sent as usual.

        Raises:
            ValueError: If `delay` is negative.
        """
        if delay < 0:
            raise ValueError(f"requeue delay {delay}: give 0 or more seconds")
        self._requeue_delay = delay

    def drain(self) -> tuple[list[tuple[str, Message]], float | None]:
        """What the handler asked for besides its return value, for the runtime to commit.

        Returns the `(stream, message)` pairs given to `publish`, in order, and the delay given
        to `requeue` (None if not called); the context holds neither afterwards.
        """
        published, self._outputs = self._outputs, []
        delay, self._requeue_delay = self._requeue_delay, None
        return published, delay
