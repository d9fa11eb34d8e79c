"""The runtime's metrics (OpenTelemetry), exposed for Prometheus and, if configured, OTLP.

Counters are read from each processor's `ProcessorStats`, each bridge's `BridgeCounts` and the
sweeper's `SweeperCounts` when a reader collects (observable instruments): the hot path only
keeps its plain integer counts. Histograms take a few values
per batch (`batch_done`), never one per entry. Gauges of lag, pending, lanes, the delayed
store and leases come from the last `Snapshot` the runtime's sampler took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

    from gristmill.bridges.buffer import BridgeCounts
    from gristmill.observe.shape import Snapshot
    from gristmill.pipeline.processor import ProcessorStats
    from gristmill.schemas.cache import SchemaCache
    from gristmill.timing.sweeper import SweeperCounts

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)

StatsSource = Callable[[], Iterable[tuple[str, "ProcessorStats"]]]
BridgeSource = Callable[[], Iterable[tuple[str, "BridgeCounts", int]]]  # name, counts, buffered
BRIDGE_OUTCOMES = ("received", "written", "skipped", "dropped_full", "dropped_fenced")


class RuntimeMetrics:
    """Every metric of one runtime process; `exposition()` is the Prometheus text."""

    def __init__(
        self,
        service: str,
        stats: StatsSource,
        cache: SchemaCache | None = None,
        *,
        bridges: BridgeSource = lambda: (),
        sweeper: Callable[[], SweeperCounts | None] = lambda: None,
        otlp: bool = False,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        readers: list[MetricReader] = [
            PrometheusMetricReader(
                registry=self.registry, disable_target_info=True, scope_info_enabled=False
            )
        ]
        if otlp:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        views = [
            View(instrument_name="gristmill_batch_size",
                 aggregation=ExplicitBucketHistogramAggregation(BATCH_BUCKETS)),
            View(instrument_name="gristmill_*_seconds",
                 aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_S)),
        ]  # fmt: skip
        self.provider = MeterProvider(
            metric_readers=readers,
            resource=Resource.create({"service.name": service}),
            views=views,
        )
        self._stats = stats
        self._bridges = bridges
        self._sweeper = sweeper
        self._cache = cache
        self.snapshot: Snapshot | None = None
        self.schema_versions: dict[str, int] = {}
        meter = self.provider.get_meter("gristmill")
        self._batch_size = meter.create_histogram("gristmill_batch_size", "1", "entries per batch")
        self._handle_s = meter.create_histogram(
            "gristmill_batch_handle_seconds", "s", "time a batch spent in its handlers"
        )
        self._latency_s = meter.create_histogram(
            "gristmill_end_to_end_latency_seconds", "s",
            "entry id time to commit, for the first and last entry of each batch",
        )  # fmt: skip
        counters = {
            "handled": "entries committed (acked), whatever their outcome",
            "published": "entries written to outputs",
            "retried": "failed entries parked for another attempt",
            "dead_lettered": "entries sent to a dead-letter lane",
            "failed": "entries whose run failed (retried or dead-lettered)",
            "batches": "batches committed",
            "reclaimed": "entries claimed from silent consumers",
            "split_commits": "on Redis Cluster: batches with outputs in other hash slots than "
            "their input, written before the commit (at-least-once)",
            "written_ahead": "on Redis Cluster: outputs in other hash slots than their input",
        }
        metric_names = {"batches": "gristmill_batches", "split_commits": "gristmill_split_commits"}
        for name, text in counters.items():
            meter.create_observable_counter(
                metric_names.get(name, f"gristmill_entries_{name}"),
                [self._counter(name)], "1", text,
            )  # fmt: skip
        meter.create_observable_counter(
            "gristmill_dead_lettered_by_reason", [self._by_reason], "1",
            "entries dead-lettered, per processor and reason",
        )  # fmt: skip
        meter.create_observable_counter(
            "gristmill_schema_cache", [self._cache_counts], "1", "schema cache hits/misses/fetches"
        )
        meter.create_observable_counter(
            "gristmill_bridge_messages", [self._bridge_counts], "1",
            "pub/sub messages per bridge and outcome: received, written, skipped (redundant: "
            "another replica wrote it), dropped_full (buffer full), dropped_fenced (lease lost)",
        )  # fmt: skip
        meter.create_observable_counter(
            "gristmill_bridge_slow_writes", [self._bridge_slow], "1",
            "bridge batches the server took longer than the warning threshold to accept",
        )  # fmt: skip
        for name, text in {
            "moved": "entries this process's sweeper moved from delayed stores into their streams "
            "(the sweep rate is its rate)",
            "batches": "sweep scripts this process's sweeper ran",
            "refused": "sweeps refused by the lease token check (this process had lost the lease)",
        }.items():
            meter.create_observable_counter(
                f"gristmill_sweeper_{name}", [self._sweeper_count(name)], "1", text
            )
        meter.create_observable_gauge(
            "gristmill_schema_versions",
            [self._versions],
            description="versions registered per subject, for the messages the app declares",
        )
        meter.create_observable_gauge(
            "gristmill_delayed_next_due_seconds",
            [self._next_due],
            description="seconds until a delayed store's earliest entry is due (below 0: overdue)",
        )
        meter.create_observable_gauge(
            "gristmill_bridge_buffered", [self._bridge_buffered],
            description="messages received and not yet written",
        )  # fmt: skip
        gauges: dict[str, tuple[Callable[[CallbackOptions], Iterable[Observation]], str]] = {
            "gristmill_group_lag": (self._group("lag"), "entries not yet delivered to the group"),
            "gristmill_group_pending": (self._group("pending"), "delivered, not yet acked"),
            "gristmill_group_oldest_pending_age_seconds": (
                self._oldest_pending, "age of the oldest pending entry"),
            "gristmill_dead_letter_lane_size": (self._group("dead_letters"), "dead-lane length"),
            "gristmill_retry_waiting": (self._group("retry_waiting"), "retries waiting to run"),
            "gristmill_delayed_entries": (self._delayed, "entries waiting in a delayed store"),
            "gristmill_lease_holder": (self._leases, "1 for the current holder of a role"),
        }  # fmt: skip
        for name, (callback, text) in gauges.items():
            meter.create_observable_gauge(name, [callback], description=text)

    # -- hot path: once per batch ------------------------------------------------------------

    def batch_done(
        self, processor: str, size: int, handle_s: float, first_ms: int, last_ms: int
    ) -> None:
        """Record one committed batch: its size, handler time and two end-to-end latencies."""
        attributes = {"processor": processor}
        self._batch_size.record(size, attributes)
        self._handle_s.record(handle_s, attributes)
        now_ms = time.time() * 1000
        self._latency_s.record(max(now_ms - first_ms, 0) / 1000, attributes)
        self._latency_s.record(max(now_ms - last_ms, 0) / 1000, attributes)

    def observe(self, snapshot: Snapshot, schema_versions: dict[str, int] | None = None) -> None:
        """Take the gauges' values from `snapshot` and the versions per subject (the sampler)."""
        self.snapshot = snapshot
        if schema_versions is not None:
            self.schema_versions = schema_versions

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, collected now."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Flush OTLP and stop the readers."""
        self.provider.shutdown()

    # -- collection callbacks (run in the scraping thread) -----------------------------------

    def _counter(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for processor, stats in self._stats():
                if name == "failed":
                    value = stats.retried + stats.dead_lettered
                else:
                    value = getattr(stats, name)
                yield Observation(value, {"processor": processor})

        return observe

    def _by_reason(self, _: CallbackOptions) -> Iterable[Observation]:
        for processor, stats in self._stats():
            for reason, count in list(stats.errors_by_reason.items()):
                yield Observation(count, {"processor": processor, "reason": reason})

    def _cache_counts(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._cache is not None:
            for outcome, count in self._cache.stats().items():
                if outcome in ("hits", "misses", "fetches"):
                    yield Observation(count, {"outcome": outcome})

    def _bridge_counts(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, counts, _buffered in self._bridges():
            for outcome in BRIDGE_OUTCOMES:
                yield Observation(getattr(counts, outcome), {"bridge": name, "outcome": outcome})

    def _bridge_slow(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, counts, _buffered in self._bridges():
            yield Observation(counts.slow_writes, {"bridge": name})

    def _bridge_buffered(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, _counts, buffered in self._bridges():
            yield Observation(buffered, {"bridge": name})

    def _sweeper_count(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            counts = self._sweeper()
            if counts is not None:
                yield Observation(getattr(counts, name))

        return observe

    def _versions(self, _: CallbackOptions) -> Iterable[Observation]:
        for subject, count in list(self.schema_versions.items()):
            yield Observation(count, {"subject": subject})

    def _next_due(self, _: CallbackOptions) -> Iterable[Observation]:
        snapshot = self.snapshot
        if snapshot is None:
            return
        for store in snapshot.delayed:
            if store.next_due_ms is not None:
                seconds = (store.next_due_ms - snapshot.taken_ms) / 1000
                yield Observation(seconds, {"stream": store.stream})

    def _group(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snapshot = self.snapshot
            for stream in snapshot.streams if snapshot else ():
                for group in stream.groups:
                    value = getattr(group, name)
                    if value is not None:
                        yield Observation(value, {"stream": group.stream, "group": group.group})

        return observe

    def _oldest_pending(self, _: CallbackOptions) -> Iterable[Observation]:
        snapshot = self.snapshot
        for stream in snapshot.streams if snapshot else ():
            for group in stream.groups:
                age_s = (group.oldest_pending_age_ms or 0) / 1000
                yield Observation(age_s, {"stream": group.stream, "group": group.group})

    def _delayed(self, _: CallbackOptions) -> Iterable[Observation]:
        for store in self.snapshot.delayed if self.snapshot else ():
            yield Observation(store.entries, {"stream": store.stream})

    def _leases(self, _: CallbackOptions) -> Iterable[Observation]:
        for lease in self.snapshot.leases if self.snapshot else ():
            if lease.holder is not None:
                yield Observation(1, {"role": lease.role, "holder": lease.holder})
