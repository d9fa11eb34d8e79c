"""The worker's side of a task queue: a processor of the queue stream, plus its records.

A queue is one stream (`gm:tasks:<queue>[@<target>]`) read by one consumer group
(`tasks.<queue>[@<target>]`), whatever app declares its tasks, so the replicas of every service
that declares a queue share its work. Per batch:

    task_start.lua     one call: each tracked task becomes `running` (cancelled ones are acked
                       unrun, those past their ttl are dead-lettered as `expired`)
    handlers           `TaskWork.handler` finds the task by the entry's `task` field and calls
                       it with its arguments read back from the message
    commit_batch.lua   the ack, the retry or the dead letter, and the record's new state and
                       result, in the batch's one commit (`done` / `retried` / `dead` below)
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import anyio
from google.protobuf import json_format
from google.protobuf.message import Message

from gristmill import keys, scripts
from gristmill.clock import SYSTEM_CLOCK
from gristmill.failures import reasons
from gristmill.failures.policy import RetryAfter, ToDeadLetter, decide
from gristmill.tasks.context import TaskContext
from gristmill.tasks.record import event_line, items_of

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.failures.policy import RetryPolicy
    from gristmill.pipeline.batch import Slot
    from gristmill.pipeline.publish import RecordOp
    from gristmill.tasks.spec import TaskSpec

START = scripts.load("task_start")
NOTE = scripts.load("task_note")
_ERROR_CHARS = 500


class TaskWork:
    """The tasks of one queue stream, as its processor runs them (pipeline.batch.TaskTracking)."""

    def __init__(self, stream: str, *, fifo: bool = False, partitions: int = 1) -> None:
        self.stream = stream
        self.fifo = fifo  # one task at a time, in order; retries run in place (below)
        self.partitions = partitions  # the queue's streams (a keyed FIFO queue has several)
        self.tasks: dict[str, TaskSpec] = {}
        self.redis: Redis | None = None  # bound by the runtime before the first batch
        self._flags: dict[bytes, str] = {}  # entry id -> task_start's letter, this batch
        self._results: dict[bytes, str] = {}  # entry id -> the JSON of the return value
        self._attempts: dict[bytes, int] = {}  # entry id -> the run it is (tracked tasks)
        self._random = random.Random()

    def add(self, spec: TaskSpec) -> None:
        self.tasks[spec.name] = spec

    def _spec_of(self, slot: Slot) -> tuple[TaskSpec | None, str]:
        envelope = slot.envelope
        if envelope is None or envelope.task is None:
            return None, ""
        name, _, task_id = envelope.task.decode(errors="replace").partition("/")
        return self.tasks.get(name), task_id

    # -- before the handlers -------------------------------------------------------------------

    async def start(self, slots: list[Slot]) -> None:
        self._flags.clear()
        self._results.clear()
        self._attempts.clear()
        tracked: list[Slot] = []
        record_keys: list[str] = []
        now_ms = SYSTEM_CLOCK.now_ms()
        for slot in slots:
            if slot.message is None:
                continue
            spec, task_id = self._spec_of(slot)
            if spec is None:
                named = slot.envelope.task if slot.envelope is not None else None
                slot.verdict = ToDeadLetter(
                    reasons.UNKNOWN_TASK, f"no task {named!r} is declared by this worker's app"
                )
                slot.message = None
                continue
            if spec.tracked:
                tracked.append(slot)
                record_keys.append(keys.task_record(self.stream, task_id))
        if not tracked:
            return
        assert self.redis is not None
        flags, *attempts = await START(self.redis, record_keys, [now_ms])
        for slot, flag, attempt in zip(tracked, flags.decode(), attempts, strict=True):
            self._flags[slot.entry[1]] = flag
            self._attempts[slot.entry[1]] = attempt
            if flag == "c":
                slot.message = None  # acked unrun: cancelled, or done already
            elif flag == "x":
                slot.message = None
                slot.verdict = ToDeadLetter(reasons.EXPIRED, "not started within its ttl")

    def policy(self, slot: Slot) -> RetryPolicy | None:
        spec, _ = self._spec_of(slot)
        if spec is None:
            return None
        # a FIFO task was retried in place already: what reaches the router is its last failure
        return dataclasses.replace(spec.retry, max_attempts=1) if self.fifo else spec.retry

    # -- the handler -----------------------------------------------------------------------------

    async def handler(self, message: Message, ctx: Context) -> None:
        """The queue processor's handler: run the task the entry names; keep its result."""
        assert ctx.task is not None
        name, _, task_id = ctx.task.decode().partition("/")
        spec = self.tasks[name]  # start() dead-lettered the unknown ones
        entry_id = ctx.entry_id.encode()
        record_key = None
        if spec.tracked and self._flags.get(entry_id) == "r":
            record_key = keys.task_record(self.stream, task_id)
        attempt = self._attempts.get(entry_id) or ctx.attempt  # untracked: deliveries
        context = TaskContext(task_id, name, spec.queue, attempt, self.redis, record_key)
        kwargs = spec.signature.arguments_of(message, context)
        while True:
            try:
                value = await self._run(spec, kwargs)
                break
            except Exception as exc:
                if not self.fifo:
                    raise  # retried through the delayed store by the router
                decision = decide(exc, context.attempt, spec.retry, self._random.random())
                if not isinstance(decision, RetryAfter):
                    raise  # the router dead-letters it (policy() allows no retry)
                # FIFO: the queue waits for this task; it is run again here, in its place
                await self._note_retry(record_key, exc, decision, context.attempt)
                await anyio.sleep(decision.delay_ms / 1000)
                context.attempt = await self._restart(record_key, context.attempt)
        if record_key is not None:
            self._results[entry_id] = result_json(value)

    @staticmethod
    async def _run(spec: TaskSpec, kwargs: dict[str, object]) -> object:
        if spec.timeout is None:
            return await spec.function(**kwargs)
        with anyio.fail_after(spec.timeout):
            return await spec.function(**kwargs)

    async def _note_retry(
        self, record_key: str | None, failure: Exception, decision: RetryAfter, attempt: int
    ) -> None:
        if record_key is None or self.redis is None:
            return
        now_ms = SYSTEM_CLOCK.now_ms()
        error = _error_of(failure)
        lines = event_line(now_ms, "error", error) + event_line(
            now_ms, "queued", f"retry {attempt} in {decision.delay_ms} ms, in place (FIFO)"
        )
        items = items_of({"state": "queued", "state_at": now_ms, "updated_at": now_ms,
                          "retries_used": attempt, "error": error})  # fmt: skip
        await NOTE(self.redis, [record_key], [lines, *items])

    async def _restart(self, record_key: str | None, attempt: int) -> int:
        if record_key is None or self.redis is None:
            return attempt + 1
        _, started = await START(self.redis, [record_key], [SYSTEM_CLOCK.now_ms()])
        return int(started) or attempt + 1

    # -- the record's update in the batch's commit -----------------------------------------------

    def _record_key(self, slot: Slot) -> bytes | None:
        spec, task_id = self._spec_of(slot)
        if spec is None or not spec.tracked:
            return None
        flag = self._flags.get(slot.entry[1])
        if flag in ("c", "n"):
            return None  # acked unrun, or it has no record
        # "r" ran, "x" expired; no flag: dead-lettered before the start (the crash-loop cap)
        return keys.task_record(self.stream, task_id).encode()

    def done(self, slot: Slot, now_ms: int) -> RecordOp | None:
        key = self._record_key(slot)
        spec, _ = self._spec_of(slot)
        if key is None or spec is None:
            return None
        result = self._results.pop(slot.entry[1], "")
        items = items_of({"state": "done", "state_at": now_ms, "updated_at": now_ms,
                          "finished_at": now_ms, "result": result})  # fmt: skip
        return key, spec.result_ttl_ms, b"", items  # no line: `finished_at` tells it

    def retried(self, slot: Slot, next_attempt: int, delay_ms: int, now_ms: int) -> RecordOp | None:
        key = self._record_key(slot)
        if key is None:
            return None
        error = _error_of(slot.failure)
        items = items_of({"state": "queued", "state_at": now_ms, "updated_at": now_ms,
                          "retries_used": next_attempt - 1, "error": error})  # fmt: skip
        lines = event_line(now_ms, "error", error) + event_line(
            now_ms, "queued", f"retry {next_attempt - 1} in {delay_ms} ms"
        )
        return key, 0, lines.encode(), items

    def dead(self, slot: Slot, reason: str, detail: str, now_ms: int) -> RecordOp | None:
        key = self._record_key(slot)
        spec, _ = self._spec_of(slot)
        if key is None or spec is None:
            return None
        state = "expired" if reason == reasons.EXPIRED else "error"
        error = f"{reason}: {detail}"[:_ERROR_CHARS] if detail else reason
        items = items_of({"state": state, "state_at": now_ms, "updated_at": now_ms,
                          "finished_at": now_ms, "error": error})  # fmt: skip
        line = event_line(now_ms, state, error).encode()
        return key, spec.result_ttl_ms, line, items


def _error_of(failure: BaseException | None) -> str:
    if failure is None:
        return ""
    return " ".join(f"{type(failure).__name__}: {failure}".split())[:_ERROR_CHARS]


def result_json(value: object) -> str:
    """A task's return value as JSON: JSON types as they are, a message as its JSON mapping,
    datetimes as ISO 8601, dataclasses as objects.

    Raises:
        TypeError: If the value has no JSON form (the run fails, and is retried by policy).
    """
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: object) -> Any:
    if isinstance(value, Message):
        return json_format.MessageToDict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"a task returned a {type(value).__name__}, which has no JSON form")
