"""Which exporters the standard OTEL_* variables ask for: pure, given the environment.

Traces and OTLP metrics are off unless configured. The OpenTelemetry SDK reads the rest of
its variables itself (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
OTEL_EXPORTER_OTLP_*), so gristmill passes them through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT",)


def _exporters(environ: Mapping[str, str], signal: str) -> set[str]:
    raw = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "")
    return {name.strip().lower() for name in raw.split(",") if name.strip()}


def _otlp_endpoint(environ: Mapping[str, str], signal: str) -> bool:
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    return bool(environ.get(own) or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def trace_exporters(environ: Mapping[str, str]) -> set[str]:
    """`otlp` and/or `console` if traces are configured; empty (tracing off) otherwise."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return set()
    named = _exporters(environ, "traces")
    if "none" in named:
        return set()
    if not named and _otlp_endpoint(environ, "traces"):
        return {"otlp"}
    return named & {"otlp", "console"}


def otlp_metrics(environ: Mapping[str, str]) -> bool:
    """True if metrics should also be pushed over OTLP (besides the Prometheus endpoint)."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    named = _exporters(environ, "metrics")
    if "none" in named:
        return False
    return "otlp" in named or (not named and _otlp_endpoint(environ, "metrics"))
