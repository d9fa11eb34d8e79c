"""Traces, metrics and structured logs of a running gristmill process (OpenTelemetry).

The pipeline calls into this package from a few marked lines (`# telemetry hook`); everything
else lives here, so a pipeline rewrite only has to keep those calls.
"""
