"""Scenario `cluster`: pass-through on a local 3-master Redis Cluster beside the single node.

    one node            the bench's server, one pipeline (`{tag}.orders` -> `{tag}.invoices`)
    cluster, one tag    the same pipeline on the cluster: one slot, so one master, whole commits
    cluster, split      input and output on different masters: every commit is split (the
                        output written ahead to its master, then the ack's script)
    one node, 3 lanes   three independent pipelines, `--workers 3`, on the bench's server
    cluster, 3 lanes    the same three, each under a tag on its own master: the scaling row

The cluster is 3 masters of the embedded valkey-server, without replicas (the single node has
none either), started here and stopped at the end. Server CPU is summed over the masters. On a
machine with fewer cores than masters + workers the scaling row measures the cores, not the
cluster: the note says how many there are.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis as SyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import RedisCluster

from bench.apps.lanes import LANES_ENV
from bench.harness import Bench, BenchError, python
from bench.stats import median_run
from bench.systems import Row, repeats, report_progress, row
from tests.beyond.cluster import local_cluster

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

SCENARIO = "cluster"
PREFIX = "{gm}:"  # a cluster needs the registry's keys in one slot
MASTERS = 3


class ClusterBench(Bench):
    """A Bench whose server is a cluster: flush, fill, count and CPU over its masters."""

    def __init__(self, ports: tuple[int, ...]) -> None:
        super().__init__(f"redis://127.0.0.1:{ports[0]}")
        self.prefix = PREFIX
        self.cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        self.masters = [SyncRedis(port=port) for port in ports]

    def flush(self) -> None:
        for master in self.masters:
            master.flushall(asynchronous=False)

    def async_client(self) -> Redis:
        client: Redis = AsyncCluster.from_url(self.url)  # type: ignore[assignment]
        return client

    def node_url(self, key: str) -> str:
        return f"redis://127.0.0.1:{self.master_port(key)}"

    def master_port(self, key: str) -> int:
        node = self.cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        return int(node.port)

    def count_entries(self, stream: str) -> Callable[[], int]:
        return lambda: int(self.cluster.xlen(stream))

    def server_cpu_s(self) -> float:
        total = 0.0
        for master in self.masters:
            info = master.info("cpu")
            total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return total

    def close(self) -> None:
        self.cluster.close()
        for master in self.masters:
            master.close()
        super().close()


def _tags_by_master(bench: ClusterBench) -> list[str]:
    """One hash tag per master (`l0`, `l5`, ...), each served by a different one."""
    found: dict[int, str] = {}
    for number in range(1000):
        tag = f"l{number}"
        port = bench.master_port(f"{{{tag}}}")
        found.setdefault(port, tag)
        if len(found) == MASTERS:
            return list(found.values())
    raise BenchError("no hash tag for some master in 1,000 tries")


def _split_pair(bench: ClusterBench) -> tuple[str, str]:
    """An untagged input and output on different masters."""
    source = "bench-orders"
    for number in range(1000):
        target = f"bench-invoices-{number}"
        if bench.node_url(target) != bench.node_url(source):
            return source, target
    raise BenchError("no output stream on another master in 1,000 tries")


def _measure(
    bench: Bench,
    system: str,
    lanes: list[tuple[str, str]],
    size: int,
    workers: int,
    env: dict[str, str],
) -> Row:
    bench.flush()
    ids = bench.register_schemas()
    share = size // len(lanes)
    for source, _ in lanes:
        bench.prefill(source, share, ids.order)
    probes = [bench.count_entries(target) for _, target in lanes]
    command = [
        str(Path(python()).parent / "runtime"), "serve", "bench.apps.lanes:app",
        "--workers", str(workers),
    ]  # fmt: skip
    full_env = {
        "GRISTMILL_LOG_LEVEL": "WARNING",
        LANES_ENV: ",".join(f"{source}>{target}" for source, target in lanes),
        **env,
    }
    process = bench.launch(f"gristmill-{system}", command, full_env)
    try:
        timing = bench.time_outputs(lambda: sum(p() for p in probes), share * len(lanes), process)
        return row(SCENARIO, system, timing)
    except BenchError as exc:
        return row(SCENARIO, system, None, f"not measured: {exc}")
    finally:
        process.stop()


def run(url: str, size: int) -> list[dict[str, object]]:
    single = Bench(url)
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as directory,
        local_cluster(Path(directory), masters=MASTERS, replicas=0) as nodes,
    ):
        cluster = ClusterBench(nodes.ports)
        try:
            return _run(single, cluster, size)
        finally:
            cluster.close()
            single.close()


def _run(single: Bench, cluster: ClusterBench, size: int) -> list[Row]:
    tags = _tags_by_master(cluster)
    one = [(f"{{{tags[0]}}}.orders", f"{{{tags[0]}}}.invoices")]
    three = [(f"{{{tag}}}.orders", f"{{{tag}}}.invoices") for tag in tags]
    on_single = {"GRISTMILL_REDIS_URL": single.url}
    on_cluster = {
        "GRISTMILL_REDIS_URL": "redis+cluster://" + cluster.url.split("://", 1)[1],
        "GRISTMILL_KEY_PREFIX": PREFIX,
    }
    systems = {
        "one node": (single, one, 1, on_single),
        "cluster, one tag": (cluster, one, 1, on_cluster),
        "cluster, split": (cluster, [_split_pair(cluster)], 1, on_cluster),
        "one node, 3 lanes": (single, three, 3, on_single),
        "cluster, 3 lanes": (cluster, three, 3, on_cluster),
    }
    runs: dict[str, list[Row]] = {name: [] for name in systems}
    for _ in range(repeats()):
        for name, (bench, lanes, workers, env) in systems.items():
            runs[name].append(_measure(bench, name, lanes, size, workers, env))
            report_progress(runs[name][-1])
    rows = [median_run(runs[n]) if len(runs[n]) > 1 else runs[n][0] for n in systems]
    rates = {str(r["system"]): r.get("msgs_per_s") for r in rows}
    for result in rows:
        base = rates["one node, 3 lanes" if "3 lanes" in str(result["system"]) else "one node"]
        rate = result.get("msgs_per_s")
        if isinstance(rate, int) and isinstance(base, int) and base:
            result["vs_one_node"] = round(rate / base, 3)
            result["note"] = f"{rate / base:.3f}x one node, {os.cpu_count()} cores"
    return rows
