"""A declared task: `@app.task(...)` on an `async def`, and the calls that enqueue it.

    @app.task(queue="emails", retry=RetryPolicy(max_attempts=3), ttl=600)
    async def send_email(recipient: str, subject: str) -> str: ...

    handle = await send_email.enqueue(recipient="ada@example.com", subject="hi")
    await handle.result(timeout=30)            # the return value, once it is done
    await send_email.enqueue_as("welcome-42", recipient=...)  # the same id: one task
    await send_email.defer(60, recipient=...)  # seconds, a timedelta or an aware datetime
    await send_email.enqueue_many([{"recipient": ..., "subject": ...}, ...])  # one round trip

Enqueueing needs a connection: under `runtime serve` the runtime gives one; in a program of
your own, `async with app.connected():` or `async with app.running():` (gristmill.inprocess).
"""

from __future__ import annotations

import inspect
import re
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from gristmill import keys
from gristmill.errors import ConfigError
from gristmill.tasks.spec import Call, TaskSpec, check_id, due_ms_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping
    from datetime import datetime, timedelta

    from gristmill.app import App
    from gristmill.failures.policy import RetryPolicy
    from gristmill.tasks.client import Pending, TaskClient, TaskHandle
    from gristmill.tasks.context import TaskContext

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_PARTITIONS = 8  # a keyed FIFO queue's streams: keys spread over them, in order within
FIFO_BATCH = 10  # a FIFO queue's entries per read: they run one by one, in order
_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


class Task(Generic[P, R]):
    """A declared task; `enqueue` it to run on a worker of its queue."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.client: TaskClient | None = None  # bound by the runtime or app.connected()
        self.__doc__ = spec.function.__doc__
        self.__name__ = spec.name

    def _client(self) -> TaskClient:
        if self.client is None:
            raise ConfigError(
                f"task {self.spec.name!r} is not connected: enqueue inside "
                "`async with app.connected():` (or app.running()), or under `runtime serve`"
            )
        return self.client

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Queue one run with these arguments; returns its handle (a new uuid)."""
        message = self.spec.signature.message_of(args, kwargs)
        (handle,) = await self._client().enqueue(self.spec, [(str(uuid.uuid4()), message, None)])
        return handle

    async def enqueue_as(self, task_id: str, /, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Queue one run under `task_id`: while a task of that id exists (its record lives, up
        to `result_ttl` after it finished), enqueueing it again adds nothing."""
        message = self.spec.signature.message_of(args, kwargs)
        pending: list[Pending] = [(check_id(task_id), message, None)]
        (handle,) = await self._client().enqueue(self.spec, pending)
        return handle

    async def defer(
        self, when: float | timedelta | datetime, /, *args: P.args, **kwargs: P.kwargs
    ) -> TaskHandle:
        """Queue one run for later: `when` is seconds or a timedelta from now, or a datetime.

        It waits as `todo` in the queue's delayed store (swept by the leader) and becomes due
        then; a task's `ttl` counts from that time.
        """
        message = self.spec.signature.message_of(args, kwargs)
        due_ms = due_ms_of(when)
        (handle,) = await self._client().enqueue(self.spec, [(str(uuid.uuid4()), message, due_ms)])
        return handle

    async def enqueue_many(self, calls: Iterable[Mapping[str, object] | Call]) -> list[TaskHandle]:
        """Queue many runs in one round trip per 1,000: each a dict of keyword arguments, or
        a `Call` with its own id and due time. Handles come back in order; an id that exists
        already gives the existing task's handle (`handle.created` is False)."""
        batch = []
        for call in calls:
            if not isinstance(call, Call):
                call = Call(call)
            message = self.spec.signature.message_of((), call.kwargs)
            task_id = check_id(call.task_id) if call.task_id is not None else str(uuid.uuid4())
            batch.append((task_id, message, call.due_ms))
        return await self._client().enqueue(self.spec, batch)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """`enqueue` from sync code (a Flask view, a script) while `app.start_in_thread()`
        runs: the call goes to that thread's event loop and this one waits for the id."""
        return self._client().from_thread(self.enqueue(*args, **kwargs))

    def handle(self, task_id: str, *, key: str | int | bytes | None = None) -> TaskHandle:
        """The handle of a task of this kind enqueued earlier, by id (and, for a task with a
        `fifo_key`, that argument's value: it picks the partition the task is in)."""
        stream = self.spec.stream
        if self.spec.fifo_key is not None:
            message = self.spec.signature.message_class(**{self.spec.fifo_key: key})
            stream = self.spec.stream_for(message)
        return self._client().handle(stream, task_id)


def _kind(fifo: bool, partitions: int) -> str:
    if not fifo:
        return "not FIFO"
    return f"FIFO by key over {partitions} partitions" if partitions > 1 else "FIFO"


class TaskDecorator:
    """What `app.task(...)` returns: applied to a function, declares it.

    For type checkers, a `TaskContext` parameter goes first (`async def f(ctx, x: int)`):
    `enqueue` then takes the other parameters. At runtime it may be anywhere.
    """

    def __init__(self, app: App, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options

    @overload
    def __call__(
        self, function: Callable[Concatenate[TaskContext, P], Awaitable[R]]
    ) -> Task[P, R]: ...

    @overload
    def __call__(self, function: Callable[P, Awaitable[R]]) -> Task[P, R]: ...

    def __call__(self, function: Callable[..., Awaitable[Any]]) -> Task[Any, Any]:
        return declare_task(self.app, function, **self.options)


def declare_task(
    app: App,
    function: Callable[..., Awaitable[Any]],
    *,
    queue: str,
    name: str | None,
    retry: RetryPolicy | None,
    ttl: float | None,
    result_ttl: float,
    timeout: float | None,
    target: str | None,
    tracked: bool,
    batch: int | None,
    concurrency: int | None,
    fifo: bool = False,
    fifo_key: str | None = None,
    partitions: int | None = None,
) -> Task[Any, Any]:
    """Check and record one task of `app` (App.task documents the arguments)."""
    from gristmill.failures.policy import RetryPolicy
    from gristmill.specs import ProcessorSpec
    from gristmill.tasks.signature import signature_of
    from gristmill.tasks.worker import TaskWork

    task_name = str(name or getattr(function, "__name__", ""))
    where = f"task {task_name!r}"
    if not _TASK_NAME.fullmatch(task_name):
        raise ConfigError(f"{where}: a name is letters, digits and '_', not starting with a digit")
    for label, value in (("queue", queue), ("target", target or "x")):
        if not _QUEUE_NAME.fullmatch(value):
            raise ConfigError(f"{where}: {label} {value!r}: use letters, digits, '.', '_', '-'")
    if not inspect.iscoroutinefunction(function):
        raise ConfigError(f"{where}: the function must be `async def`")
    if task_name in app.tasks:
        raise ConfigError(f"app {app.name!r} already has a task {task_name!r}")
    for label, seconds in (("ttl", ttl), ("result_ttl", result_ttl), ("timeout", timeout)):
        if seconds is not None and not seconds > 0:
            raise ConfigError(f"{where}: {label} must be positive seconds (or None)")
    for label, number in (("batch", batch), ("concurrency", concurrency)):
        if number is not None and number < 1:
            raise ConfigError(f"{where}: {label} must be at least 1")
    signature = signature_of(function, task_name)
    fifo = fifo or fifo_key is not None
    if fifo_key is not None:
        kinds = {f.name: (f.kind, f.shape) for f in signature.fields}
        if kinds.get(fifo_key) not in ((str, "one"), (int, "one"), (bytes, "one")):
            raise ConfigError(
                f"{where}: fifo_key={fifo_key!r} must name a str, int or bytes parameter"
            )
    if fifo and concurrency not in (None, 1):
        raise ConfigError(f"{where}: a FIFO queue runs one task at a time; drop concurrency=")
    if partitions is not None and (fifo_key is None or partitions < 1):
        raise ConfigError(f"{where}: partitions= goes with fifo_key= and is at least 1")
    count = (partitions or DEFAULT_PARTITIONS) if fifo_key is not None else 1
    base = keys.task_queue(queue, target)
    streams = (base,) if count == 1 else tuple(f"{base}#{p}" for p in range(count))
    doc = (function.__doc__ or "").strip().splitlines()
    spec = TaskSpec(
        name=task_name, queue=queue, streams=streams, function=function, signature=signature,
        retry=retry or RetryPolicy(), ttl_ms=round((ttl or 0) * 1000),
        result_ttl_ms=round(result_ttl * 1000), timeout=timeout, tracked=tracked, target=target,
        description=doc[0] if doc else "", fifo=fifo, fifo_key=fifo_key,
    )  # fmt: skip
    processor = f"tasks.{queue}" + (f"@{target}" if target else "")
    first = app.processors.get(processor) or app.processors.get(f"{processor}#0")
    queue_kind = (fifo, count)
    if first is not None:
        assert isinstance(first.tasks, TaskWork)
        if (first.tasks.fifo, first.tasks.partitions) != queue_kind:
            raise ConfigError(
                f"{where}: queue {queue!r} is {_kind(first.tasks.fifo, first.tasks.partitions)} "
                f"from an earlier task, this one {_kind(fifo, count)}: a queue is one kind"
            )
    for number, stream in enumerate(streams):
        name_p = processor if count == 1 else f"{processor}#{number}"
        existing = app.processors.get(name_p)
        if existing is None:
            work = TaskWork(stream, fifo=fifo, partitions=count)
            app.processors[name_p] = ProcessorSpec(
                name=name_p, app=app.name, handler=work.handler, inputs=(stream,), outputs=(),
                group=name_p, batch=batch or (FIFO_BATCH if fifo else None),
                concurrency=1 if fifo else concurrency, from_beginning=True, tasks=work,
                target=target, ordered=fifo,
            )  # fmt: skip
        else:
            assert isinstance(existing.tasks, TaskWork)
            work = existing.tasks
            changes = {"batch": batch, "concurrency": concurrency}
            for option, given in changes.items():
                if given is not None and getattr(existing, option) not in (None, given):
                    raise ConfigError(
                        f"{where}: queue {queue!r} has {option}={getattr(existing, option)} "
                        "from an earlier task; give it once (or the same value)"
                    )
            app.processors[name_p] = replace(
                existing, batch=existing.batch or batch,
                concurrency=existing.concurrency or concurrency,
            )  # fmt: skip
        work.add(spec)
    if signature.schema is not None:
        app.schemas.append(signature.schema)
    task: Task[Any, Any] = Task(spec)
    app.tasks[task_name] = task
    return task


def include_tasks(app: App, other: App) -> None:
    """Host `other`'s tasks in `app` too: a queue both declare becomes one processor.

    Raises:
        ConfigError: If a task name repeats, or the two declare one queue of different kinds.
    """
    from gristmill.tasks.worker import TaskWork

    for name, task in other.tasks.items():  # check everything first: a refusal changes nothing
        if app.tasks.get(name, task) is not task:
            raise ConfigError(f"app {app.name!r} already has a task {name!r}")
    queues = [(p, s.tasks) for p, s in other.processors.items() if isinstance(s.tasks, TaskWork)]
    for processor, theirs in queues:
        existing = app.processors.get(processor)
        mine = existing.tasks if existing is not None else None
        if isinstance(mine, TaskWork) and (mine.fifo, mine.partitions) != (
            theirs.fifo, theirs.partitions,
        ):  # fmt: skip
            raise ConfigError(
                f"{processor}: {_kind(mine.fifo, mine.partitions)} in {app.name!r}, "
                f"{_kind(theirs.fifo, theirs.partitions)} in {other.name!r}: a queue is one kind"
            )
    app.tasks.update(other.tasks)
    for processor, theirs in queues:
        existing = app.processors.get(processor)
        if existing is None:
            app.processors[processor] = other.processors[processor]
            continue
        assert isinstance(existing.tasks, TaskWork)
        for task_spec in theirs.tasks.values():
            existing.tasks.add(task_spec)


def schedule_decorator(
    app: App,
    *,
    cron: str | None,
    every: timedelta | None,
    tz: str,
    catch_up: int,
    name: str | None,
    queue: str,
    task_options: dict[str, Any],
) -> Callable[[Callable[..., Awaitable[Any]]], Task[Any, Any]]:
    """What `@app.schedule(...)` returns (App.schedule documents the arguments).

    Raises:
        ConfigError: If the timetable is wrong, now; if the function needs arguments, when
            it is decorated.
    """
    from gristmill.specs import ScheduleSpec
    from gristmill.tasks.timetable import timetable

    timetable(cron=cron, every=every, tz=tz, anchor_ms=0)  # a bad timetable fails here

    def register(function: Callable[..., Awaitable[Any]]) -> Task[Any, Any]:
        schedule_name = name or str(getattr(function, "__name__", ""))
        if schedule_name in app.schedules:
            raise ConfigError(f"app {app.name!r} already has a schedule {schedule_name!r}")
        declared = app.task(queue=queue, name=name, **task_options)(function)
        try:
            declared.spec.signature.message_of((), {})
        except TypeError as exc:
            raise ConfigError(
                f"schedule {schedule_name!r}: its task is called with no arguments ({exc})"
            ) from None
        app.schedules[schedule_name] = ScheduleSpec(
            schedule_name, declared, cron, every, tz, catch_up
        )
        return declared

    return register
