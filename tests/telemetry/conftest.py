"""System tools the observability tests use (tests.helpers.debian installs them), and traces."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)

from tests.helpers.debian import debian_tool

if TYPE_CHECKING:
    from collections.abc import Iterator

ASYNCAPI_SPECS = "6.11.1"  # @asyncapi/specs: its schemas/3.0.0 is the AsyncAPI 3.0.0 schema


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's `prometheus` server."""
    return debian_tool("prometheus", "prometheus")


@pytest.fixture(scope="session")
def dot_binary() -> str:
    """Graphviz's `dot`, which `runtime docs` draws with."""
    return debian_tool("dot", "graphviz")


class _Switch(Sampler):
    """Samples like the SDK's default (parent-based, always on) only while a test turns it on.

    The global tracer provider can be set once per process; with this sampler off, every
    other test sees unsampled spans, so no entry gets trace fields it did not expect.
    """

    def __init__(self) -> None:
        self.on = False
        self._default = ParentBased(ALWAYS_ON)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        if not self.on:
            return ALWAYS_OFF.should_sample(*args, **kwargs)
        return self._default.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "test switch"


_SWITCH = _Switch()
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def traces() -> Iterator[InMemorySpanExporter]:
    """Spans finished in this process during the test (an in-memory exporter)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(sampler=_SWITCH)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _SWITCH.on = True
    try:
        yield _EXPORTER
    finally:
        _SWITCH.on = False
        _EXPORTER.clear()


@pytest.fixture(scope="session")
def asyncapi_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema, from npm's `@asyncapi/specs` package."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: apt-get install npm (the AsyncAPI schema ships on npm)")
    where = tmp_path_factory.mktemp("asyncapi")
    subprocess.run(
        [npm, "pack", f"@asyncapi/specs@{ASYNCAPI_SPECS}", "--silent"],
        cwd=where, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (archive,) = where.glob("asyncapi-specs-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.extractfile("package/schemas/3.0.0-without-$id.json")
        assert member is not None
        schema: dict[str, Any] = json.load(member)
    return schema
