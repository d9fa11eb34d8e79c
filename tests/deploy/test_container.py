"""The project's image, built and run for real: two services in containers, a drain, a kill -9.

The Redis server is this session's embedded Valkey on the host; the containers reach it with
`--network host`, each with its own hostname (a consumer is named `<host>-<pid>`, and every
container's runtime is pid 1, so a shared hostname would make two replicas one consumer).
Containers run as the chart runs them: read-only root filesystem, a tmpfs at /tmp.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from tests.delivery import GROUPS, PLACED, RECEIPTS, pipeline_idle, place_orders, receipts
from tests.deploy.podman import (
    Build,
    ContainerSetupError,
    build_image,
    ensure_base_image,
    ensure_tools,
    podman,
)
from tests.helpers.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(900)]

GRACE_S = 10  # GRISTMILL_GRACE in every container
STOP_TIMEOUT_S = GRACE_S + 5  # as the chart's terminationGracePeriodSeconds: then SIGKILL
CLAIM_IDLE_S = 3  # a killed replica's pending entries go to the other after this long


@pytest.fixture(scope="module")
def image() -> Build:
    try:
        ensure_tools()
        base_s = ensure_base_image()
        build = build_image()
    except ContainerSetupError as exc:
        pytest.fail(f"cannot build the image on this machine: {exc}")
    log.info(
        "base image %s, image built in %.1f s, %.0f MB",
        f"made in {base_s:.1f} s" if base_s else "kept",
        build.seconds,
        build.size_bytes / 1e6,
    )
    return build


@dataclass
class Services:
    """Containers of the project's image, each a service; all removed at the end."""

    image: str
    url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    names: list[str] = field(default_factory=list)
    health: bool = False  # the image has `runtime health` and a health server

    def start(self, app: str, replica: int = 1) -> str:
        name = f"gm-{app.split('.')[1].split(':')[0]}-{replica}-{self.run_id}"
        env = {
            "GRISTMILL_REDIS_URL": self.url,
            "GRISTMILL_GRACE": str(GRACE_S),
            "GRISTMILL_CLAIM_IDLE": str(CLAIM_IDLE_S),
            "GRISTMILL_BLOCK_MS": "200",
        }
        if self.health:  # host network: each container its own health port
            env["GRISTMILL_HEALTH_PORT"] = str(free_port())
        podman(
            "run",
            "--detach",
            "--name",
            name,
            "--hostname",
            name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            *[arg for key, value in env.items() for arg in ("--env", f"{key}={value}")],
            self.image,
            app,
        )
        self.names.append(name)
        return name

    def logs(self, name: str) -> str:
        done = podman("logs", name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def exit_code(self, name: str) -> int:
        return int(podman("wait", name, timeout=STOP_TIMEOUT_S + 60).stdout.strip())

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "--force", "--time", "0", name, check=False)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def has_health_command(image: str) -> bool:
    done = podman("run", "--rm", "--entrypoint", "runtime", image, "health", "--help", check=False)
    return done.returncode == 0


@pytest.fixture
def services(image: Build, server: EmbeddedServer) -> Iterator[Services]:
    running = Services(image.image, server.url, health=has_health_command(image.image))
    try:
        yield running
    finally:
        running.remove_all()


async def wait_for_consumers(redis: Redis, counts: dict[str, int], within: float = 60) -> None:
    """Until each group (by its stream) has the given number of consumers."""
    with anyio.fail_after(within):
        while True:
            ready = True
            for stream, group in GROUPS.items():
                names = (
                    {info["name"].decode() for info in await redis.xinfo_groups(stream)}
                    if (await redis.exists(stream))
                    else set()
                )
                if group not in names or (
                    len(await redis.xinfo_consumers(stream, group)) < counts.get(stream, 1)
                ):
                    ready = False
            if ready:
                return
            await anyio.sleep(0.2)


async def wait_until_done(redis: Redis, expected: int, within: float) -> None:
    with anyio.fail_after(within):
        while await redis.xlen(RECEIPTS) < expected or not await pipeline_idle(redis):
            await anyio.sleep(0.2)


async def check_ledger(redis: Redis, ledger: Ledger[str]) -> dict[str, int]:
    found = [order_id for order_id, _ in await receipts(redis)]
    verdict = ledger.check(observed=found, dead_lettered=[])
    assert verdict.ok, verdict.summary()
    assert not verdict.duplicated, verdict.summary()
    return verdict.summary()


async def publish(redis: Redis, ledger: Ledger[str], numbers: range) -> None:
    for order_id in [f"o-{number}" for number in numbers]:
        ledger.attempt(order_id)
    for order_id in await place_orders(redis, numbers, chunk=500):
        ledger.ack(order_id)


async def held_by(redis: Redis, consumer: str) -> int:
    """Entries pending on `consumer` over every group of the pipeline."""
    total = 0
    for stream, group in GROUPS.items():
        for info in await redis.xinfo_consumers(stream, group):
            if info["name"].decode() == consumer:
                total += int(info["pending"])
    return total


async def freeze_holding(redis: Redis, consumer: str, pid: int) -> int:
    """SIGSTOP `pid` at a moment its consumer holds entries; how many (a stopped process
    commits nothing, so they stay held until the kill that follows)."""
    with anyio.fail_after(120):
        while True:
            if await redis.xlen(RECEIPTS) >= 500 and await held_by(redis, consumer):
                os.kill(pid, signal.SIGSTOP)
                held = await held_by(redis, consumer)
                if held:
                    return held
                os.kill(pid, signal.SIGCONT)  # it committed in between: try again
            await anyio.sleep(0.005)


def stop(services: Services, name: str) -> tuple[int, float]:
    """`podman stop`: SIGTERM, then SIGKILL after STOP_TIMEOUT_S; (exit code, seconds)."""
    started = time.monotonic()
    podman("stop", "--time", str(STOP_TIMEOUT_S), name, timeout=STOP_TIMEOUT_S + 60)
    return services.exit_code(name), time.monotonic() - started


async def test_two_services_in_containers_turn_orders_into_receipts_and_drain(
    services: Services, redis: Redis
) -> None:
    orders = services.start("services.orders:app")
    payments = services.start("services.payments:app")
    await wait_for_consumers(redis, {})
    ledger: Ledger[str] = Ledger()
    await publish(redis, ledger, range(1000))
    await wait_until_done(redis, 1000, within=120)
    await check_ledger(redis, ledger)
    if services.health:  # after merging the health server: the image's HEALTHCHECK passes
        assert podman("healthcheck", "run", orders, check=False).returncode == 0

    # SIGTERM while orders stream in: the container drains and exits 0 before the SIGKILL
    await publish(redis, ledger, range(1000, 4000))
    with anyio.fail_after(60):
        while await redis.xlen(RECEIPTS) < 1200:
            await anyio.sleep(0.05)
    code, seconds = stop(services, orders)
    log.info("SIGTERM to exit %s: %.2f s (SIGKILL after %s s)", code, seconds, STOP_TIMEOUT_S)
    logs = services.logs(orders)
    assert code == 0, logs
    assert "SIGTERM: draining" in logs, logs
    assert "stopped cleanly" in logs, logs
    for stream in ("orders.placed", "orders.valid"):  # nothing left pending on its consumer
        group = GROUPS[stream]
        assert (await redis.xpending(stream, group))["pending"] == 0
        assert await redis.xinfo_consumers(stream, group) == []  # it forgot its consumer

    services.start("services.orders:app", replica=2)  # the rollout's new pod
    await wait_until_done(redis, 4000, within=180)
    summary = await check_ledger(redis, ledger)
    assert summary["observed"] == 4000
    log.info("drain: %s", summary)
    code, _ = stop(services, payments)
    assert code == 0, services.logs(payments)


async def test_a_container_killed_mid_load_loses_nothing(services: Services, redis: Redis) -> None:
    first = services.start("services.orders:app", replica=1)
    services.start("services.orders:app", replica=2)
    services.start("services.payments:app")
    await wait_for_consumers(redis, {PLACED: 2, "orders.valid": 2})
    host_pid = int(podman("inspect", "--format", "{{.State.Pid}}", first).stdout.strip())
    ledger: Ledger[str] = Ledger()
    total = 6000
    async with anyio.create_task_group() as load:

        async def feed() -> None:  # orders keep arriving before, during and after the kill
            for start in range(0, total, 200):
                await publish(redis, ledger, range(start, start + 200))
                await anyio.sleep(0.02)

        load.start_soon(feed)
        held = await freeze_holding(redis, f"{first}-1", host_pid)
        os.kill(host_pid, signal.SIGKILL)  # the container's pid 1, from the host: no drain
    assert held > 0, "the kill must land while the consumer holds uncommitted entries"
    assert services.exit_code(first) == 137  # 128 + SIGKILL
    await wait_until_done(redis, total, within=240)  # the other replica claims what it held
    summary = await check_ledger(redis, ledger)
    assert summary["observed"] == total
    assert summary["lost"] == 0
    log.info("kill -9: %s entries were pending on the killed consumer; %s", held, summary)
