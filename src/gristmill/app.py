"""Declarations: an App and its processors. Nothing here does I/O; `runtime serve` runs them.

    app = App("billing")

    @app.processor(input="orders", output="invoices")
    async def bill(order: Message, ctx: Context) -> Message: ...

A handler returns one message, several (a list or tuple), or None. Returned messages go to
every stream in `output`; `ctx.publish(stream, message)` sends to one stream of `output` or
`side_outputs` (streams written only on purpose, e.g. an audit trail).
"""

from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any, Never

from gristmill.errors import ConfigError
from gristmill.specs import (
    NAME,
    Handler,
    ProcessorSpec,
    ScheduleSpec,
    TickerSpec,
    TickHandler,
    check_streams,
    processor_spec,
)

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from datetime import timedelta

    from google.protobuf.message import Message

    from gristmill.bridges.spec import BridgeSpec
    from gristmill.failures.policy import RetryPolicy
    from gristmill.inprocess import ThreadedApp
    from gristmill.runtime import Runtime
    from gristmill.schemas.descriptors import BuiltSchema
    from gristmill.settings import Settings
    from gristmill.tasks.client import TaskClient
    from gristmill.tasks.declare import Task, TaskDecorator


def _refuse_keywords(given: Mapping[str, object], declaration: Callable[..., object]) -> None:
    valid = [
        name
        for name, parameter in inspect.signature(declaration).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    problems = []
    for name in sorted(given):
        close = difflib.get_close_matches(name, valid, n=1)
        problems.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(
        f"{declaration.__name__}() got unknown keywords {', '.join(problems)}; "
        f"valid keywords: {', '.join(valid)}"
    )


class App:
    """A named registry of processors; the one module-level state a service has.

    Args:
        name: The service's name; it prefixes its consumer groups (`<app>.<processor>`).
        schemas: Schemas the service defines (`load_proto(...)`, `SchemaBuilder.build()`):
            registered at start (an incompatible change fails the start), and entries of
            these types reach handlers as instances of these very classes.
    """

    def __init__(self, name: str, *, schemas: Sequence[BuiltSchema] = ()) -> None:
        if not NAME.match(name):
            raise ConfigError(f"app name {name!r}: use letters, digits, '.', '_' or '-'")
        self.name = name
        self.schemas: list[BuiltSchema] = list(schemas)
        self.processors: dict[str, ProcessorSpec] = {}
        self.tickers: dict[str, TickerSpec] = {}
        self.eager: dict[str, float] = {}  # stream -> seconds it may be released early when idle
        self.bridges: dict[str, BridgeSpec] = {}  # name -> pub/sub bridge (bridges/pubsub.py)
        self.tasks: dict[str, Task[Any, Any]] = {}  # name -> task (gristmill.tasks)
        self.schedules: dict[str, ScheduleSpec] = {}  # name -> declared schedule of a task

    def processor(
        self,
        *,
        input: str | Sequence[str],
        output: str | Sequence[str] | None = None,
        side_outputs: str | Sequence[str] | None = None,
        name: str | None = None,
        group: str | None = None,
        batch: int | None = None,
        concurrency: int | None = None,
        from_beginning: bool = False,
        claim_idle: float | None = None,
        maxlen: int | None = None,
        min_age: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        input_type: type[Message] | None = None,
        input_format: str = "protobuf",
        json_unknown_fields: str = "reject",
        **unknown: Never,
    ) -> Callable[[Handler], Handler]:
        """Declare `async def handler(message, ctx)` as a processor of `input`.

        Args:
            input: The stream (or streams) to read; each processor reads with its own group.
            output: The stream (or streams) every returned message goes to.
            side_outputs: Streams only `ctx.publish` writes to (besides `output`).
            name: The processor's name; defaults to the function's name.
            group: The consumer group; defaults to `<app>.<name>`, stable across deploys.
            batch: Entries per read; defaults to the setting GRISTMILL_BATCH.
            concurrency: Handlers in flight; defaults to GRISTMILL_CONCURRENCY.
            from_beginning: A newly created group reads the stream's history (default: only
                entries added after the group was created).
            claim_idle: Seconds an entry may sit with a silent consumer before another one
                claims it; defaults to GRISTMILL_CLAIM_IDLE.
            maxlen: Trim the output streams to about this many entries, never dropping an
                entry that one of their groups has not delivered and acked (see README).
            min_age: Trim output entries older than this many seconds, with the same guard.
            retry: How failed entries are retried and when they are dead-lettered; the
                default retries 5 times over about 15 s (see RetryPolicy).
            timeout: Seconds one run of the handler may take; a run past it is cancelled and
                fails with TimeoutError (retried by `retry`). None: no limit.
            input_type: The message class entries must be; others are dead-lettered as
                `wrong_type`. Defaults to the handler's first parameter annotation when that
                is a message class (not `Message` itself, not `Any`).
            input_format: `"json"`: entries carry the input type as JSON (protobuf's JSON
                mapping) in their payload; bad JSON is dead-lettered with a reason of its own.
            json_unknown_fields: With JSON input, `"reject"` (dead-letter as
                `json_unknown_field`) or `"ignore"` keys the type has no field for.

        Raises:
            ConfigError: If a name repeats, a stream name is empty, the handler is not async,
                or a keyword is not one of the above (a typo fails at import, not silently).
        """
        if unknown:
            _refuse_keywords(unknown, self.processor)

        def register(handler: Handler) -> Handler:
            proc_name = str(name or getattr(handler, "__name__", ""))
            if proc_name in self.processors or proc_name in self.tickers:
                raise ConfigError(f"app {self.name!r} already has a processor {proc_name!r}")
            self.processors[proc_name] = processor_spec(
                self.name, proc_name, handler, input=input, output=output,
                side_outputs=side_outputs, group=group, batch=batch, concurrency=concurrency,
                from_beginning=from_beginning, claim_idle=claim_idle, maxlen=maxlen,
                min_age=min_age, retry=retry, timeout=timeout, input_type=input_type,
                input_format=input_format, json_unknown_fields=json_unknown_fields,
            )  # fmt: skip
            return handler

        return register

    def task(
        self,
        *,
        queue: str = "default",
        name: str | None = None,
        retry: RetryPolicy | None = None,
        ttl: float | None = None,
        result_ttl: float = 86_400.0,
        timeout: float | None = None,
        target: str | None = None,
        tracked: bool = True,
        batch: int | None = None,
        concurrency: int | None = None,
        fifo: bool = False,
        fifo_key: str | None = None,
        partitions: int | None = None,
        **unknown: Never,
    ) -> TaskDecorator:
        """Declare `async def` as a task: calls to `.enqueue(...)` queue it, workers run it.

        Args:
            queue: The queue it is enqueued to; each queue is one stream, read by the workers
                of every app that declares a task of that queue (group `tasks.<queue>`).
            name: The task's name (unique per queue); defaults to the function's name.
            retry: How failed runs are retried, then dead-lettered (default: RetryPolicy()).
            ttl: Seconds a task may wait in its queue before it starts; past it, it is
                dead-lettered as `expired` (state `expired`). None: it waits forever.
            result_ttl: Seconds the record (state, result, history) is kept once finished.
            timeout: Seconds one run may take; past it the run fails with TimeoutError.
            target: Run only on workers whose GRISTMILL_TARGETS lists this target (its own
                stream, `gm:tasks:<queue>@<target>`); enqueueing works from anywhere.
            tracked: False: no record, no state, no result; only the run (fastest).
            batch: Entries per read for this queue (default: GRISTMILL_BATCH).
            concurrency: Tasks of this queue in flight per process (GRISTMILL_CONCURRENCY).
            fifo: The queue runs one task at a time across all replicas, in enqueue order; a
                failed task is retried in place, and the queue waits for it (docs/tasks.md).
            fifo_key: The name of a str/int/bytes parameter: tasks with the same value run in
                enqueue order, one at a time; different values run in parallel (implies fifo).
            partitions: A keyed FIFO queue's streams, each one ordered (default 8): keys are
                spread over them, so at most this many tasks of the queue run at once.

        Raises:
            ConfigError: If the function is not `async def`, a hint is not supported
                (docs/tasks.md lists them), a name repeats, or a value is out of range.
        """
        if unknown:
            _refuse_keywords(unknown, self.task)
        from gristmill.tasks.declare import TaskDecorator

        options = {
            "queue": queue, "name": name, "retry": retry, "ttl": ttl, "result_ttl": result_ttl,
            "timeout": timeout, "target": target, "tracked": tracked, "batch": batch,
            "concurrency": concurrency, "fifo": fifo, "fifo_key": fifo_key,
            "partitions": partitions,
        }  # fmt: skip
        return TaskDecorator(self, options)

    def schedule(
        self,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        catch_up: int = 0,
        name: str | None = None,
        queue: str = "schedules",
        **task_options: Any,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Task[Any, Any]]:
        """Declare `async def` (no arguments, or a TaskContext) as a task fired on a schedule.

        Fired by one process at a time (the holder of the "scheduler" lease), once per fire
        time even across a failover; `runtime schedules` lists, pauses and triggers it.

        Args:
            cron: A 5-field cron expression, read in `tz` (DST handled as Debian's cron does:
                docs/tasks.md), or
            every: an interval, counted from the schedule's creation.
            tz: The IANA zone of `cron` (e.g. "Europe/Berlin").
            catch_up: After an outage (or a pause): 0 fires only the latest missed time, N
                fires the latest N missed times.
            name: The schedule's name; defaults to the function's.
            queue: The task queue its runs go to.
            task_options: Any other keyword of `App.task` (retry, ttl, timeout, target...).

        Raises:
            ConfigError: If the timetable is wrong (bad cron, unknown zone, both or neither
                of cron/every) or the function needs arguments.
        """
        from gristmill.tasks.declare import schedule_decorator

        return schedule_decorator(
            self, cron=cron, every=every, tz=tz, catch_up=catch_up, name=name, queue=queue,
            task_options=task_options,
        )  # fmt: skip

    def every(
        self, seconds: float, *, output: str | Sequence[str], name: str | None = None
    ) -> Callable[[TickHandler], TickHandler]:
        """Declare `async def tick()` run every `seconds`; its returned messages go to `output`.

        Each process that hosts the app runs its tickers (a source for demos and tests): with
        three replicas it runs three times per interval. For work that must happen once per
        interval across replicas, use `@app.schedule(every=...)`, fired by one leader.

        Raises:
            ConfigError: If `seconds` is not positive or the name repeats.
        """

        def register(handler: TickHandler) -> TickHandler:
            tick_name = str(name or getattr(handler, "__name__", ""))
            if seconds <= 0:
                raise ConfigError(f"ticker {tick_name!r}: every must be positive seconds")
            if tick_name in self.processors or tick_name in self.tickers:
                raise ConfigError(f"app {self.name!r} already has a processor {tick_name!r}")
            outputs = check_streams(output, "output", tick_name)
            self.tickers[tick_name] = TickerSpec(tick_name, self.name, handler, seconds, outputs)
            return handler

        return register

    def bridge(
        self,
        *,
        stream: str,
        channel: str | None = None,
        pattern: str | None = None,
        name: str | None = None,
        redundant: bool = False,
        dedup_field: str | None = None,
        window: float = 10.0,
        buffer: int = 100_000,
        batch: int = 1000,
        maxlen: int | None = None,
    ) -> BridgeSpec:
        """Write every message published to `channel` (or `pattern`) into `stream`.

        `runtime serve` runs the bridge in every replica; by default the holder of its lease
        subscribes and writes, the others take over when it dies (what is published during
        the failover is lost: pub/sub keeps nothing). Entries carry the message as received
        in `payload` (and `channel` for a pattern); read them with `input_format="json"`.

        Args:
            stream: The stream to write to.
            channel: The channel to subscribe to; or `pattern` (PSUBSCRIBE), not both.
            name: The bridge's name (its lease); defaults to the channel or pattern.
            redundant: Every replica subscribes and writes through a deduplicating script:
                a dead replica loses nothing while another lives (README: bridges).
            dedup_field: Redundant mode: deduplicate by this top-level JSON field of the
                message instead of a digest of its bytes.
            window: Redundant mode: seconds a message is remembered (at least one window,
                at most two); a copy arriving later is written again.
            buffer: Messages held while the server is slower than the publishers; beyond
                it they are dropped, logged once per incident and counted.
            batch: Messages per write (one script call), at most 1,000.
            maxlen: Trim the stream to about this many entries as it is written.

        Raises:
            ConfigError: If a value is out of range or the name repeats.
        """
        from gristmill.bridges.spec import bridge_spec

        spec = bridge_spec(
            channel=channel, pattern=pattern, stream=stream, name=name, redundant=redundant,
            dedup_field=dedup_field, window=window, buffer=buffer, batch=batch, maxlen=maxlen,
        )  # fmt: skip
        if spec.name in self.bridges:
            raise ConfigError(f"app {self.name!r} already has a bridge {spec.name!r}")
        self.bridges[spec.name] = spec
        return spec

    def connected(
        self, *, url: str | None = None, settings: Settings | None = None
    ) -> contextlib.AbstractAsyncContextManager[TaskClient]:
        """`async with app.connected():` enqueue and read this app's tasks (no workers run).

        With no `url` (and no GRISTMILL_REDIS_URL) it uses the embedded server, as `serve`.
        """
        from gristmill.inprocess import connected

        return connected(self, url=url, settings=settings)

    def running(
        self, *, url: str | None = None, settings: Settings | None = None
    ) -> contextlib.AbstractAsyncContextManager[Runtime]:
        """`async with app.running():` run this app's processors and task queues in this event
        loop (e.g. a web app's lifespan) while the block runs; they drain on exit."""
        from gristmill.inprocess import running

        return running(self, url=url, settings=settings)

    def start_in_thread(
        self, *, url: str | None = None, settings: Settings | None = None
    ) -> ThreadedApp:
        """Run this app's workers in a background thread (a sync program: Flask, Django);
        `task.enqueue_sync(...)` enqueues through it, `.stop()` drains it."""
        from gristmill.inprocess import start_in_thread

        return start_in_thread(self, url=url, settings=settings)

    def release_early(self, stream: str, *, within: float) -> None:
        """Let delayed entries of `stream` out up to `within` seconds early when it is idle.

        When no consumer group of `stream` has a backlog (no lag, nothing pending), the
        sweeper releases the earliest entries due in the next `within` seconds rather than let
        the consumers wait. Opt-in per stream (docs/delayed.md: eager when idle).

        Raises:
            ConfigError: If `within` is not positive.
        """
        if within <= 0:
            raise ConfigError(f"release_early({stream!r}): within must be positive seconds")
        self.eager[stream] = within

    def include(self, other: App) -> None:
        """Host `other`'s processors in this app too (their groups keep `other`'s names).

        Raises:
            ConfigError: If a processor name repeats.
        """
        for spec in other.processors.values():
            if spec.tasks is not None:
                continue  # task queues merge below: both apps may declare tasks of one queue
            if spec.name in self.processors:
                raise ConfigError(f"app {self.name!r} already has a processor {spec.name!r}")
            self.processors[spec.name] = spec
        from gristmill.tasks.declare import include_tasks

        include_tasks(self, other)
        for ticker in other.tickers.values():
            if ticker.name in self.tickers:
                raise ConfigError(f"app {self.name!r} already has a ticker {ticker.name!r}")
            self.tickers[ticker.name] = ticker
        self.schemas += [schema for schema in other.schemas if schema not in self.schemas]
        self.eager.update(other.eager)
        for schedule_name, schedule in other.schedules.items():
            self.schedules.setdefault(schedule_name, schedule)
        for bridge in other.bridges.values():
            if bridge.name in self.bridges:
                raise ConfigError(f"app {self.name!r} already has a bridge {bridge.name!r}")
            self.bridges[bridge.name] = bridge
