"""Scenario `many`: 10, 100 and 1,000 processors in one process, idle and under load.

Per count, on an emptied server, `runtime serve bench.apps.many:app` (one worker, health port
off) hosts that many processors, each reading its own stream:
- ready_s: from the launch until every processor is blocked in its XREADGROUP (INFO clients
  `blocked_clients`);
- connections: the server's connected clients added by the process;
- idle: the process's and the server's CPU over IDLE_S seconds with nothing to do, as a
  percentage of one core, and the process's RSS;
- first_entry_ms: one entry added to the last processor's input, until its output exists
  (the output's id time minus the input's: both the server's clock);
- load: LOAD_ENTRIES entries spread over every input while they run, until every output is
  there: msgs_per_s, client / server CPU µs per message, and the most connections the process
  held meanwhile (idle processors park with none; busy ones hold two each).

Every wait fails with a message when it stops progressing, so the bench cannot hang.

    python -m bench many
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from bench.apps.many import COUNT_ENV, input_stream, output_stream
from bench.harness import Bench, BenchError, Process, python
from bench.payload import order_payload
from bench.progress import Progress, Stalled
from bench.systems import Row, report_progress

SCENARIO = "many"
COUNTS = (10, 100, 1000)
IDLE_S = 10.0
SETTLE_S = 5.0  # past the first few empty reads: the idle state, not the start
READY_TIMEOUT_S = 180.0
LOAD_ENTRIES = 100_000
FILL_CHUNK = 1000


def _launch(bench: Bench, count: int) -> Process:
    runtime = str(Path(python()).parent / "runtime")
    env = {
        "GRISTMILL_REDIS_URL": bench.url, "GRISTMILL_LOG_LEVEL": "WARNING",
        "GRISTMILL_HEALTH_PORT": "0", COUNT_ENV: str(count),
    }  # fmt: skip
    return bench.launch(f"many-{count}", [runtime, "serve", "bench.apps.many:app"], env)


def _wait_ready(bench: Bench, process: Process, count: int, before: int) -> float:
    started = time.perf_counter()
    while int(bench.redis.info("clients")["blocked_clients"]) - before < count:
        if process.popen.poll() is not None:
            raise BenchError(f"{count} processors: the process exited: {process.tail()}")
        if time.perf_counter() - started > READY_TIMEOUT_S:
            raise BenchError(f"{count} processors: not all reading after {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def _rss_mb(process: Process) -> float:
    root = psutil.Process(process.popen.pid)
    members = (root, *root.children(recursive=True))
    return sum(member.memory_info().rss for member in members) / 2**20


def _first_entry_ms(bench: Bench, count: int, schema_id: str) -> int:
    last = count - 1
    sent = bench.redis.xadd(
        input_stream(last), {"schema_id": schema_id, "payload": order_payload(0)}
    )
    assert isinstance(sent, bytes)  # the client does not decode replies
    progress = Progress(f"{count} processors: first entry", 1)
    while not (found := bench.redis.xrange(output_stream(last), count=1)):
        progress.check(0)
        time.sleep(0.001)
    out_id = found[0][0]
    assert isinstance(out_id, bytes)
    return int(out_id.split(b"-")[0]) - int(sent.split(b"-")[0])


def _outputs(bench: Bench, count: int) -> int:
    pipe = bench.redis.pipeline(transaction=False)
    for n in range(count):
        pipe.xlen(output_stream(n))
    return sum(int(length) for length in pipe.execute())


def _load(
    bench: Bench, process: Process, count: int, schema_id: str, connected: int
) -> dict[str, float]:
    already = _outputs(bench, count)
    cpu, server = process.cpu_s(), bench.server_cpu_s()
    started = time.perf_counter()
    pipe = bench.redis.pipeline(transaction=False)
    for n in range(LOAD_ENTRIES):
        pipe.xadd(input_stream(n % count), {"schema_id": schema_id, "payload": order_payload(n)})
        if len(pipe) == FILL_CHUNK:
            pipe.execute()
    pipe.execute()
    progress = Progress(f"{count} processors under load", LOAD_ENTRIES)
    peak = 0
    while (done := _outputs(bench, count) - already) < LOAD_ENTRIES:
        progress.check(done)
        peak = max(peak, int(bench.redis.info("clients")["connected_clients"]))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    return {
        "load_connections": peak - connected,
        "msgs_per_s": round(LOAD_ENTRIES / seconds),
        "client_cpu_us": round((process.cpu_s() - cpu) / LOAD_ENTRIES * 1e6, 2),
        "server_cpu_us": round((bench.server_cpu_s() - server) / LOAD_ENTRIES * 1e6, 2),
    }


def _measure(bench: Bench, count: int) -> Row:
    bench.flush()
    ids = bench.register_schemas()
    clients = bench.redis.info("clients")
    connected, blocked = int(clients["connected_clients"]), int(clients["blocked_clients"])
    process = _launch(bench, count)
    result: Row = {"scenario": SCENARIO, "system": f"{count} processors", "processors": count}
    try:
        result["ready_s"] = round(_wait_ready(bench, process, count, blocked), 2)
        time.sleep(SETTLE_S)
        result["connections"] = int(bench.redis.info("clients")["connected_clients"]) - connected
        cpu, server = process.cpu_s(), bench.server_cpu_s()
        time.sleep(IDLE_S)
        result["idle_client_core_pct"] = round((process.cpu_s() - cpu) / IDLE_S * 100, 1)
        result["idle_server_core_pct"] = round((bench.server_cpu_s() - server) / IDLE_S * 100, 1)
        result["rss_mb"] = round(_rss_mb(process), 1)
        result["first_entry_ms"] = _first_entry_ms(bench, count, ids.order)
        result.update(_load(bench, process, count, ids.order, connected))
    except (BenchError, Stalled) as exc:
        result["note"] = f"not measured: {exc}"
    finally:
        process.stop()
    return result


def run(url: str, size: int) -> list[Row]:
    """One row per processor count (`size` is not used: the load is LOAD_ENTRIES)."""
    bench = Bench(url)
    try:
        rows = []
        for count in COUNTS:
            rows.append(_measure(bench, count))
            report_progress(rows[-1])
        return rows
    finally:
        bench.close()
