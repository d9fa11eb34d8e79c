"""Traces through the streams: W3C trace context in entry fields, a span per handler run.

An entry carries `traceparent` (and `tracestate`) fields; a handler's span is a child of the
context its entry carries, and everything the handler writes (outputs, its retry) carries the
handler span's context in turn, so one message's path across services is one trace. Tracing is
off unless the OTEL_* variables configure an exporter: then `tracer` is None and the pipeline
skips every call here.

Sampling is parent-based and decided where a trace starts (`Publisher.publish`, by the SDK's
OTEL_TRACES_SAMPLER, or any producer that writes a `traceparent`). Processors follow that
decision: an entry with no trace context, or with an unsampled one (which the envelope drops
as it reads the entry, see `envelope.sampled`), runs with no span at all.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gristmill.envelope import TRACEPARENT, TRACESTATE
from gristmill.telemetry.config import trace_exporters

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from opentelemetry.sdk.resources import Attributes as ResourceAttributes
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer


_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_EMPTY = otel_context.Context()
NAME = "gristmill"


def configure(environ: Mapping[str, str], service: str) -> TracerProvider | None:
    """Install a global TracerProvider if OTEL_* asks for traces; returns it (or None).

    `runtime serve` calls this once; a process embedding gristmill may install its own
    provider instead, and the runtime uses whatever SDK provider is installed.
    """
    exporters = trace_exporters(environ)
    if not exporters:
        return None
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": service}).merge(OTELResourceDetector().detect())
    # the sampler comes from OTEL_TRACES_SAMPLER
    provider = TracerProvider(resource=_hashed_once(resource))
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _hashed_once(resource: Resource) -> Resource:
    """`resource` with its hash computed once. The OTLP encoder groups every exported span by
    its resource, and `Resource.__hash__` writes all its attributes as JSON each time (about
    a tenth of a span's encoding); a Resource is immutable, so its hash never changes."""
    from opentelemetry.sdk.resources import Resource

    class HashedResource(Resource):
        def __init__(self, attributes: ResourceAttributes, schema_url: str | None = None) -> None:
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    return HashedResource(resource.attributes, resource.schema_url)


def runtime_tracer() -> Tracer | None:
    """The tracer of the installed SDK provider, or None when tracing is off (the no-op API)."""
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return None
    return provider.get_tracer(NAME)


def carried(fields_trace: Mapping[str, str]) -> otel_context.Context | None:
    """The parent context an entry's `traceparent`/`tracestate` carry (None: untraced).

    The usual field (version 00, no `tracestate`) is read here directly; anything else goes
    through the W3C propagator, which knows every other shape.
    """
    if not fields_trace:
        return None
    traceparent = fields_trace.get("traceparent", "")
    match = _TRACEPARENT_00.fullmatch(traceparent) if len(fields_trace) == 1 else None
    if match is None:
        return _PROPAGATOR.extract(carrier=fields_trace)
    trace_id, span_id, flags = int(match[1], 16), int(match[2], 16), int(match[3], 16)
    if not trace_id or not span_id:
        return _EMPTY  # the propagator's answer too: an invalid parent, so a new root
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(parent), _EMPTY)


def trace_fields(span: Span) -> list[bytes]:
    """Entry fields carrying `span`'s context (empty when it is not sampled): what the W3C
    propagator writes, formatted here directly."""
    span_context = span.get_span_context()
    if not span_context.is_valid or not span_context.trace_flags.sampled:
        return []
    traceparent = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{span_context.trace_flags:02x}"
    )
    fields = [TRACEPARENT, traceparent.encode()]
    if span_context.trace_state:
        fields += (TRACESTATE, span_context.trace_state.to_header().encode())
    return fields


@contextlib.contextmanager
def handler_span(
    tracer: Tracer,
    processor: str,
    stream: str,
    group: str,
    entry_id: str,
    schema_id: bytes,
    attempt: int,
    fields_trace: Mapping[str, str],
) -> Iterator[Span]:
    """The span of one handler run, current while the handler runs (its own spans nest)."""
    span = tracer.start_span(
        f"handle {processor}",
        context=carried(fields_trace),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "redis_streams",
            "messaging.destination.name": stream,
            "messaging.consumer.group.name": group,
            "messaging.message.id": entry_id,
            "gristmill.processor": processor,
            "gristmill.schema_id": schema_id.decode(errors="replace"),
            "gristmill.attempt": attempt,
        },
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


def batch_span(tracer: Tracer, name: str, processor: str, size: int) -> Span:
    """A span for one batch step (`consume`, `commit`): a root of its own, sampled as such."""
    return tracer.start_span(
        f"{name} {processor}",
        context=otel_context.Context(),
        attributes={"gristmill.processor": processor, "messaging.batch.message_count": size},
    )


def publish_fields(stream: str) -> tuple[Span, list[bytes]] | None:
    """A producer span for `Publisher.publish` and the fields carrying it; None if untraced.

    Uses the global API: with no SDK installed this costs one no-op span and returns None.
    """
    span = trace.get_tracer(NAME).start_span(
        f"publish {stream}", kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "redis_streams", "messaging.destination.name": stream},
    )  # fmt: skip
    fields = trace_fields(span)
    if not fields:
        span.end()
        return None
    return span, fields


def end_run(span: Span, failure: BaseException | None) -> None:
    """Mark a handler span failed (with its exception) when its run failed."""
    if failure is not None:
        span.record_exception(failure)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(failure).__name__))
