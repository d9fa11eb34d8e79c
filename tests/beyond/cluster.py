"""A real local Redis Cluster: 3 masters + 3 replicas of the embedded valkey-server.

Created with `valkey-cli --cluster create ... --cluster-replicas 1`; for the tests of everything
that must work on a cluster, the hot path included, and (without replicas) the bench's
`cluster` scenario.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis as sync_redis

from gristmill.embedded import EmbeddedServer, find_server_binary

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LocalCluster:
    """The six nodes; `url` points at one of them, as GRISTMILL_REDIS_URL would."""

    nodes: tuple[EmbeddedServer, ...]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(node.port for node in self.nodes)


def _low_free_port(taken: set[int]) -> int:
    """A free port <= 55535 whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randint(20_000, 50_000)
        if port in taken:
            continue
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        taken.add(port)
        return port


def _cluster_ok(ports: tuple[int, ...]) -> bool:
    """Every node sees every slot served, and every replica has synced with its master (a
    WAIT for one replica would time out before that)."""
    for port in ports:
        with contextlib.closing(sync_redis.Redis(port=port, decode_responses=True)) as node:
            info = node.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
            text = info if isinstance(info, str) else str(info)
            if "cluster_state:ok" not in text:
                return False
            replication = node.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
    return True


@contextlib.contextmanager
def local_cluster(directory: Path, masters: int = 3, replicas: int = 1) -> Iterator[LocalCluster]:
    """Start `masters` x (1 + `replicas`) nodes, make them a cluster, stop them after.

    Ports stay at or below 55535: a node's cluster bus listens 10000 higher.
    """
    binary = find_server_binary()
    cli = binary.with_name("valkey-cli")
    cluster_args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                    "--cluster-config-file", "nodes.conf")  # fmt: skip
    taken: set[int] = set()
    with contextlib.ExitStack() as stack:
        nodes = tuple(
            stack.enter_context(
                EmbeddedServer.start(
                    directory / f"node-{n}", port=_low_free_port(taken), extra_args=cluster_args
                )
            )
            for n in range(masters * (1 + replicas))
        )
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [str(cli), "--cluster", "create", *addresses, "--cluster-replicas", str(replicas),
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cluster = LocalCluster(nodes)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _cluster_ok(cluster.ports):
            if time.monotonic() > deadline:
                raise TimeoutError("the local cluster did not reach cluster_state:ok")
            time.sleep(0.2)
        yield cluster
