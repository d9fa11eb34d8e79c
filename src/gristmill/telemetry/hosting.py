"""What the runtime hosts for observability: the health port, metrics, the sampler, tracing.

`Runtime` makes one `RuntimeTelemetry`, calls `start()` before connecting, runs `watch()` in
its task group and `close()` at the end; `attach()` gives each processor loop its hooks.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import anyio

from gristmill import keys
from gristmill.health import Health, HealthServer
from gristmill.observe.snapshot import take_snapshot
from gristmill.telemetry import tracing
from gristmill.telemetry.config import otlp_metrics

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from redis.asyncio import Redis

    from gristmill.bridges.buffer import BridgeCounts
    from gristmill.bridges.pubsub import Bridge
    from gristmill.pipeline.processor import ProcessorLoop, ProcessorStats
    from gristmill.schemas.cache import SchemaCache
    from gristmill.settings import Settings
    from gristmill.telemetry.metrics import RuntimeMetrics
    from gristmill.timing.sweeper import Sweeper

log = logging.getLogger(__name__)

BEAT_INTERVAL_S = 0.25
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 1.0
SAMPLE_INTERVAL_S = 5.0  # one snapshot (a few commands per stream) every this often


def worker_env(env: dict[str, str], worker: int) -> dict[str, str]:
    """The environment of worker number `worker` (0-based) of `runtime serve --workers N`.

    Each worker is its own process with its own counters, so each gets a port of its own:
    the configured port plus its number (worker 0 keeps the configured port).
    """
    raw = env.get("GRISTMILL_HEALTH_PORT", "8080")
    if not raw.isdigit() or int(raw) == 0 or worker == 0:
        return env
    return {**env, "GRISTMILL_HEALTH_PORT": str(int(raw) + worker)}


class RuntimeTelemetry:
    """Health, metrics and tracing for one runtime process."""

    def __init__(
        self,
        service: str,
        settings: Settings,
        loops: list[ProcessorLoop],
        cache: SchemaCache,
        not_ready: Callable[[], str | None],
        bridges: Sequence[Bridge] = (),
        sweeper: Sweeper | None = None,
        subjects: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.loops = loops
        self.bridges = bridges
        self.health = Health(settings.health_stale, not_ready)
        self.metrics: RuntimeMetrics | None = None
        if settings.health_port or otlp_metrics(os.environ):
            from gristmill.telemetry.metrics import RuntimeMetrics  # deferred: ~70 ms of imports

            self.metrics = RuntimeMetrics(
                service, self._stats, cache, bridges=self._bridge_counts,
                sweeper=lambda: sweeper.counts if sweeper is not None else None,
                otlp=otlp_metrics(os.environ),
            )  # fmt: skip
        self.server: HealthServer | None = None
        self.tracer = tracing.runtime_tracer()
        self._subjects = sorted(set(subjects))  # the app's declared messages: a bounded set
        self._streams = sorted({s for loop in loops for s in loop.spec.inputs + loop.spec.outputs})
        # our own delayed stores only: the targets set names every service's (acl.py grants ours)
        self._lanes = sorted(
            keys.retry_lane(stream, loop.spec.group)
            for loop in loops
            for stream in loop.spec.inputs
        )

    def _stats(self) -> Iterable[tuple[str, ProcessorStats]]:
        return [(loop.spec.name, loop.stats) for loop in self.loops]

    def _bridge_counts(self) -> Iterable[tuple[str, BridgeCounts, int]]:
        return [(b.spec.name, b.counts, len(b.buffer)) for b in self.bridges]

    def attach(self) -> None:
        """Give each processor loop its hooks (None where a signal is off)."""
        for loop in self.loops:
            loop.on_batch = self.metrics.batch_done if self.metrics is not None else None
            loop.tracer = self.tracer

    def start(self) -> None:
        """Open the health port (before connecting: readiness says why it is not ready yet).

        Raises:
            ConfigError: If the port cannot be bound.
        """
        if self.settings.health_port:
            metrics = self.metrics.exposition if self.metrics is not None else None
            self.server = HealthServer(
                self.health, metrics, self.settings.health_host, self.settings.health_port
            )
            self.server.start()
            log.info(
                "health and metrics on http://%s:%d", self.settings.health_host, self.server.port
            )

    async def watch(self, redis: Redis) -> None:
        """Beat for liveness, ping for readiness and sample the gauges, until cancelled."""
        next_ping = next_sample = 0.0
        while True:
            self.health.beat()
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + PING_INTERVAL_S
                await self._ping(redis)
            if self.metrics is not None and self.health.connected and now >= next_sample:
                next_sample = now + SAMPLE_INTERVAL_S
                await self.sample(redis)
            await anyio.sleep(BEAT_INTERVAL_S)

    async def _ping(self, redis: Redis) -> None:
        try:
            with anyio.fail_after(PING_TIMEOUT_S):
                await redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means not connected
            self.health.connected = False
            self.health.connection_error = (
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            )
        else:
            self.health.connected = True

    async def sample(self, redis: Redis) -> None:
        """Take one snapshot for the gauges; a failure keeps the previous one."""
        assert self.metrics is not None
        try:
            with anyio.fail_after(5.0):
                snapshot = await take_snapshot(
                    redis,
                    self._streams,
                    prefix=self.settings.key_prefix,
                    delayed_targets=self._lanes,
                )
                versions = await self._schema_versions(redis)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("metrics sample failed, will retry: %s", exc)
        else:
            self.metrics.observe(snapshot, versions)

    async def _schema_versions(self, redis: Redis) -> dict[str, int]:
        """The number of versions of each subject the app declares (one pipelined LLEN each)."""
        if not self._subjects:
            return {}
        pipe = redis.pipeline(transaction=False)
        for subject in self._subjects:
            pipe.llen(keys.subject_versions(subject, self.settings.key_prefix))
        counts = await pipe.execute()
        return {s: int(n) for s, n in zip(self._subjects, counts, strict=True) if n}

    def close(self) -> None:
        """Close the health port and flush the exporters."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.metrics is not None:
            self.metrics.close()
