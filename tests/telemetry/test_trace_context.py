"""The direct reading and writing of `traceparent` give exactly what the W3C propagator gives."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gristmill.telemetry import tracing

PROPAGATOR = TraceContextTextMapPropagator()
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    "carrier",
    [
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},  # the usual field: read directly
        {"traceparent": f"00-{TRACE}-{SPAN}-00"},
        {"traceparent": f"00-{TRACE}-{SPAN}-03"},  # flags beyond sampled are kept
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},  # invalid ids: no parent
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},  # not lowercase: the propagator's
        {"traceparent": f"01-{TRACE}-{SPAN}-01-future"},  # a later version
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=abc,other=1"},
        {"traceparent": "garbage"},
    ],
)
def test_a_carried_context_is_the_propagators(carrier: dict[str, str]) -> None:
    ours = trace.get_current_span(tracing.carried(carrier)).get_span_context()
    theirs = trace.get_current_span(PROPAGATOR.extract(carrier=carrier)).get_span_context()
    assert ours == theirs
    assert ours.trace_state == theirs.trace_state
    assert ours.is_remote == theirs.is_remote


@pytest.mark.parametrize("state", [TraceState(), TraceState([("vendor", "abc"), ("x", "1")])])
@pytest.mark.parametrize("flags", [0x01, 0x03])
def test_trace_fields_are_what_the_propagator_writes(state: TraceState, flags: int) -> None:
    context = SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(flags), state)
    span = NonRecordingSpan(context)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    expected = [b"traceparent", carrier["traceparent"].encode()]
    if "tracestate" in carrier:
        expected += [b"tracestate", carrier["tracestate"].encode()]
    assert tracing.trace_fields(span) == expected


def test_an_unsampled_span_writes_no_fields() -> None:
    span = NonRecordingSpan(SpanContext(int(TRACE, 16), int(SPAN, 16), False, TraceFlags(0)))
    assert tracing.trace_fields(span) == []


def test_the_runtime_resource_hashes_and_compares_like_the_sdks() -> None:
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": "orders"})
    hashed = tracing._hashed_once(resource)
    assert hash(hashed) == hash(resource)
    assert hashed == resource
    assert hashed.attributes == resource.attributes
    provider = TracerProvider(resource=hashed)
    assert provider.resource.attributes["service.name"] == "orders"
