"""What a declaration becomes: the specs of processors, tickers and schedules, and the checks
that refuse a wrong declaration at import (pure: no I/O). `App` (app.py) is the surface that
makes them; the runtime and the pipeline read them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from gristmill.errors import ConfigError
from gristmill.failures.policy import RetryPolicy
from gristmill.schemas.jsonformat import json_input_of

if TYPE_CHECKING:
    from datetime import timedelta

    from google.protobuf.message import Message

    from gristmill.context import Context
    from gristmill.pipeline.batch import TaskTracking
    from gristmill.tasks.declare import Task

HandlerResult: TypeAlias = "Message | Sequence[Message] | None"
Handler: TypeAlias = Callable[["Message", "Context"], Awaitable[HandlerResult]]
TickHandler: TypeAlias = Callable[[], Awaitable[HandlerResult]]

NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _input_type(given: type[Message] | None, handler: Handler) -> str | None:
    """The full name of the message type a handler takes: `given`, else its annotation."""
    from google.protobuf.message import Message

    if given is not None:
        return str(given.DESCRIPTOR.full_name)
    parameters = list(inspect.signature(handler).parameters.values())
    first: object = parameters[0].annotation if parameters else None
    if isinstance(first, str):  # `from __future__ import annotations`: a name or a dotted one
        head, *rest = first.split(".")
        first = getattr(handler, "__globals__", {}).get(head)
        for part in rest:
            first = getattr(first, part, None)
    if isinstance(first, type) and issubclass(first, Message) and first is not Message:
        return str(first.DESCRIPTOR.full_name)
    return None


def _returns_messages(handler: Handler) -> bool:
    """True if the handler's return annotation names a message type (not None, not Any)."""
    annotation = inspect.signature(handler).return_annotation
    if isinstance(annotation, str):
        return "Message" in annotation
    from google.protobuf.message import Message

    return isinstance(annotation, type) and issubclass(annotation, Message)


def check_streams(value: str | Sequence[str] | None, what: str, name: str) -> tuple[str, ...]:
    streams = (value,) if isinstance(value, str) else tuple(value or ())
    for stream in streams:
        if not stream or any(ch.isspace() for ch in stream):
            raise ConfigError(f"processor {name!r}: {what} stream {stream!r} must be a name")
    if len(set(streams)) != len(streams):
        raise ConfigError(f"processor {name!r}: {what} streams repeat: {streams}")
    return streams


@dataclass(frozen=True)
class ProcessorSpec:
    """One processor as declared: what it reads, what it writes, and how it is run."""

    name: str
    app: str
    handler: Handler
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    group: str
    side_outputs: tuple[str, ...] = ()
    batch: int | None = None  # None: the setting GRISTMILL_BATCH
    concurrency: int | None = None  # None: the setting GRISTMILL_CONCURRENCY
    from_beginning: bool = False  # a new group reads the stream's history too
    claim_idle: float | None = None  # seconds; None: the setting GRISTMILL_CLAIM_IDLE
    maxlen: int | None = None  # approximate cap on each output stream (see README: retention)
    min_age: float | None = None  # seconds of history each output stream keeps at least
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None  # seconds one handler run may take; None: no limit
    input_type: str | None = None  # full protobuf name entries must have; None: any type
    input_class: type[Message] | None = None  # the class given as input_type=, if any
    input_format: str = "protobuf"  # "json": entries carry JSON for the input type
    json_unknown_fields: str = "reject"  # JSON keys the type has no field for: reject / ignore
    tasks: TaskTracking | None = None  # a task queue's processor (gristmill.tasks.worker)
    target: str | None = None  # a task queue's target: run only where GRISTMILL_TARGETS has it
    ordered: bool = False  # a FIFO queue: one reader (its lease), all own pending read first

    @property
    def publishable(self) -> frozenset[str]:
        """The streams `ctx.publish` may write to."""
        return frozenset(self.outputs + self.side_outputs)


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule declared in code; the runtime writes it to Redis at start (keys.schedule)."""

    name: str
    task: Task[Any, Any]
    cron: str | None
    every: timedelta | None
    tz: str
    catch_up: int


@dataclass(frozen=True)
class TickerSpec:
    """A coroutine run every `every` seconds whose returned messages go to `outputs`."""

    name: str
    app: str
    handler: TickHandler
    every: float
    outputs: tuple[str, ...]


def processor_spec(
    app_name: str,
    proc_name: str,
    handler: Handler,
    *,
    input: str | Sequence[str],
    output: str | Sequence[str] | None,
    side_outputs: str | Sequence[str] | None,
    group: str | None,
    batch: int | None,
    concurrency: int | None,
    from_beginning: bool,
    claim_idle: float | None,
    maxlen: int | None,
    min_age: float | None,
    retry: RetryPolicy | None,
    timeout: float | None,
    input_type: type[Message] | None,
    input_format: str,
    json_unknown_fields: str,
) -> ProcessorSpec:
    """The checked spec of one `@app.processor(...)` (App.processor documents the arguments).

    Raises:
        ConfigError: If a name, stream, number or the handler's kind is wrong.
    """
    if not NAME.match(proc_name):
        raise ConfigError(f"processor name {proc_name!r}: use letters, digits, . _ -")
    if not inspect.iscoroutinefunction(handler):
        raise ConfigError(f"processor {proc_name!r}: the handler must be `async def`")
    for number, label in ((batch, "batch"), (concurrency, "concurrency")):
        if number is not None and number < 1:
            raise ConfigError(f"processor {proc_name!r}: {label} must be at least 1")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"processor {proc_name!r}: timeout must be positive seconds")
    inputs = check_streams(input, "input", proc_name)
    if not inputs:
        raise ConfigError(f"processor {proc_name!r}: needs at least one input stream")
    outputs = check_streams(output, "output", proc_name)
    sides = check_streams(side_outputs, "side output", proc_name)
    if not outputs and _returns_messages(handler):
        raise ConfigError(
            f"processor {proc_name!r}: its handler returns messages but no output= is "
            "declared, so they would go nowhere: declare output=, or return None"
        )
    written = set(outputs) | set(sides)
    if set(inputs) & written:
        raise ConfigError(
            f"processor {proc_name!r}: reads and writes {sorted(set(inputs) & written)}; "
            "use ctx.requeue() to process an entry again"
        )
    spec = ProcessorSpec(
        name=proc_name,
        app=app_name,
        handler=handler,
        inputs=inputs,
        outputs=outputs,
        side_outputs=sides,
        group=group or f"{app_name}.{proc_name}",
        batch=batch,
        concurrency=concurrency,
        from_beginning=from_beginning,
        claim_idle=claim_idle,
        maxlen=maxlen,
        min_age=min_age,
        retry=retry or RetryPolicy(),
        timeout=timeout,
        input_type=_input_type(input_type, handler),
        input_class=input_type,
        input_format=input_format,
        json_unknown_fields=json_unknown_fields,
    )
    json_input_of(spec)  # a bad JSON declaration fails at import
    return spec
