"""Three local sentinels watching a primary and its replica (embedded valkey-servers)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis as sync_redis

from gristmill.embedded import EmbeddedServer, find_server_binary, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MASTER = "gm-primary"
START_TIMEOUT_S = 30.0


@dataclass
class SentinelSetup:
    """The servers and the sentinels' ports; `url` is what GRISTMILL_REDIS_URL gets."""

    servers: tuple[EmbeddedServer, EmbeddedServer]
    sentinel_ports: tuple[int, ...]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def sentinel(self, index: int = 0) -> sync_redis.Redis:
        return sync_redis.Redis(port=self.sentinel_ports[index], decode_responses=True)

    def primary_port(self) -> int:
        with contextlib.closing(self.sentinel()) as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
        return int(port)


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if callable(condition) and condition():
                return
        except sync_redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"sentinel set-up: {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def sentinel_setup(directory: Path) -> Iterator[SentinelSetup]:
    """Start a primary, a replica of it and three sentinels (quorum 2); stop them all after."""
    binary = find_server_binary()
    with (
        EmbeddedServer.start(directory / "primary") as primary,
        EmbeddedServer.start(directory / "replica") as replica,
    ):
        with contextlib.closing(sync_redis.Redis(port=replica.port)) as to_replica:
            to_replica.execute_command("REPLICAOF", "127.0.0.1", primary.port)  # type: ignore[no-untyped-call]
        sentinels: list[subprocess.Popen[bytes]] = []
        ports = tuple(free_port() for _ in range(3))
        try:
            for port in ports:
                conf = directory / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} 1000\n"
                    f"sentinel failover-timeout {MASTER} 10000\n"
                )
                with (directory / f"sentinel-{port}.log").open("wb") as log:  # the child keeps it
                    sentinels.append(
                        subprocess.Popen([str(binary), str(conf), "--sentinel"], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
                    )  # fmt: skip
            setup = SentinelSetup((primary, replica), ports)
            for index in range(3):
                _wait(lambda i=index: _sees_all(setup, i), f"sentinel {index} sees the rest")
            yield setup
        finally:
            for process in sentinels:
                process.kill()
                process.wait()


def _sees_all(setup: SentinelSetup, index: int) -> bool:
    with contextlib.closing(setup.sentinel(index)) as sentinel:
        master = sentinel.execute_command("SENTINEL", "MASTER", MASTER)  # type: ignore[no-untyped-call]
        fields = (
            dict(zip(master[::2], master[1::2], strict=True))
            if isinstance(master, list)
            else master
        )
        return int(fields["num-slaves"]) == 1 and int(fields["num-other-sentinels"]) == 2
