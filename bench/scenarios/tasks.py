"""Scenario `tasks`: no-op tasks with their results kept, enqueued by one process and run by
another, for gristmill (tracked and untracked) and the task queues it replaces.

Per system, on a flushed server: one process enqueues N tasks (`enqueue_per_s`), then the
worker starts and the harness times completions until all N are done (`msgs_per_s`, tasks/s).
Every system runs the same task, `noop(n) -> n`, with its result stored (gristmill tracked:
record + state + result; arq, SAQ, taskiq and Celery: their result backends on the same
server). Peers run in their own virtualenvs (bench/venvs.py) and at most PEER_MAX tasks: they
enqueue one round trip per task, and the timing stops after the harness's MAX_TIMED_S anyway.
A system that cannot run here gives a row with its reason, never an abort.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import POLL_S, STALL_S, Bench, BenchError, Timing, python
from bench.systems import row
from bench.venvs import python_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.harness import Process
    from bench.systems import Row

SCENARIO = "tasks"
SYSTEMS = (
    "gristmill", "gristmill-untracked", "gristmill-end-to-end", "arq", "saq", "taskiq", "celery",
)  # fmt: skip
PEER_MAX = 10_000
QUEUES = {"gristmill": ("gm:tasks:bench", "tasks.bench"),
          "gristmill-end-to-end": ("gm:tasks:bench", "tasks.bench"),
          "gristmill-untracked": ("gm:tasks:bench_untracked", "tasks.bench_untracked")}  # fmt: skip
_ENQUEUED = re.compile(r"enqueue_seconds ([0-9.]+)")


def run(url: str, size: int) -> list[Row]:
    bench = Bench(url)
    rows = []
    try:
        for system in SYSTEMS:
            rows.append(measure(bench, system, size))
            shown = {k: rows[-1].get(k) for k in ("msgs_per_s", "enqueue_per_s", "note")}
            print(f"  tasks / {system}: {shown}", file=sys.stderr, flush=True)
    finally:
        bench.close()
    return rows


def measure(bench: Bench, system: str, size: int) -> Row:
    """Enqueue, then time the worker; a failure is a row with its reason."""
    count = size if system.startswith("gristmill") else min(size, PEER_MAX)
    if system == "gristmill-end-to-end":
        return _end_to_end(bench, system, count)
    try:
        bench.flush()
        enqueue, worker, env, finished = _commands(bench, system, count)
        output = bench.run_to_end(f"{system}-enqueue", enqueue)
        match = _ENQUEUED.search(output)
        if match is None:
            raise BenchError(f"the enqueuer printed no time: {output[-300:]}")
        enqueue_s = float(match.group(1))
        process: Process = bench.launch(system, worker, env)
        try:
            timing: Timing = bench.time_outputs(finished, count, process)
        finally:
            process.stop()
        _check(bench, system, count)
    except BenchError as exc:
        return row(SCENARIO, system, None, f"not measured: {exc}")
    result = row(SCENARIO, system, timing, _NOTES[system])
    result["enqueue_per_s"] = round(count / enqueue_s)
    result["tasks"] = count
    return result


def _end_to_end(bench: Bench, system: str, count: int) -> Row:
    """The worker runs first; then one process enqueues while it works (the same 2 cores):
    timed from the enqueuer's start until every task is done, its result stored."""
    try:
        bench.flush()
        enqueue, worker, env, finished = _commands(bench, system, count)
        stream, group = QUEUES[system]
        process: Process = bench.launch(system, worker, env)
        enqueuer: Process | None = None
        try:
            _wait_for_group(bench, stream, group, process)
            started = time.perf_counter()
            enqueuer = bench.launch(f"{system}-enqueue", enqueue)
            progress, last = started, 0
            while (done := finished()) < count:
                now = time.perf_counter()
                if done > last:
                    progress, last = now, done
                elif now - progress > STALL_S:
                    raise BenchError(f"stalled at {done}/{count} tasks: {process.tail()}")
                if process.popen.poll() is not None:
                    raise BenchError(f"the worker exited at {done}/{count}: {process.tail()}")
                time.sleep(POLL_S)
            seconds = time.perf_counter() - started
            if enqueuer.popen.wait(timeout=60) != 0:
                raise BenchError(f"the enqueuer failed: {enqueuer.tail()}")
            match = _ENQUEUED.search(enqueuer.log_path.read_text(errors="replace"))
        finally:
            process.stop()
            if enqueuer is not None:
                enqueuer.stop()
        _check(bench, "gristmill", count)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        return row(SCENARIO, system, None, f"not measured: {exc}")
    result = row(SCENARIO, system, Timing(count, seconds), _NOTES[system])
    result["enqueue_per_s"] = round(count / float(match.group(1))) if match else None
    result["tasks"] = count
    return result


def _wait_for_group(bench: Bench, stream: str, group: str, process: Process) -> None:
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if bench.redis.exists(stream) and any(
            info["name"].decode() == group for info in bench.redis.xinfo_groups(stream)
        ):
            return
        if process.popen.poll() is not None:
            raise BenchError(f"the worker exited before reading: {process.tail()}")
        time.sleep(0.05)
    raise BenchError(f"the worker created no group {group} in 60 s: {process.tail()}")


_NOTES = {
    "gristmill": "tracked: record, state, result; batch 500",
    "gristmill-untracked": "tracked=False: no record; batch 500",
    "gristmill-end-to-end": "tracked, enqueued while the worker runs: first enqueue to last done",
    "arq": "arq 0.28, max_jobs 10, poll 5 ms, results kept",
    "saq": "SAQ 0.26, concurrency 50",
    "taskiq": "taskiq 0.13 + taskiq-redis 1.2 list broker, result backend, 100 async",
    "celery": "Celery 5.7, redis broker + backend, 8 threads, prefetch x100",
}


def _commands(
    bench: Bench, system: str, count: int
) -> tuple[list[str], list[str], dict[str, str], Callable[[], int]]:
    """The enqueue command, the worker command and its environment, and the probe."""
    url, redis = bench.url, bench.redis
    if system in QUEUES:
        stream, group = QUEUES[system]
        untracked = ["--untracked"] if system == "gristmill-untracked" else []
        enqueue = [python(), "-m", "bench.peers.gristmill_tasks", "--url", url,
                   "--enqueue", str(count), *untracked]  # fmt: skip
        task = "noop_untracked" if untracked else "noop"
        runtime = str(Path(python()).parent / "runtime")
        worker = [runtime, "serve", "bench.apps.tasks:app", "--only", task]
        env = {"GRISTMILL_REDIS_URL": url, "GRISTMILL_LOG_LEVEL": "WARNING",
               "GRISTMILL_HEALTH_PORT": "0"}  # fmt: skip

        def committed() -> int:  # an ack and its record's `done` are one commit
            for info in redis.xinfo_groups(stream):
                if info["name"].decode() == group:
                    return int(info["entries-read"] or 0) - int(info["pending"])
            return 0

        return enqueue, worker, env, committed
    peer = _peer_python(system)
    module = f"bench.peers.{system}_tasks"
    env = {"BENCH_TASKIQ_URL": url, "BENCH_CELERY_URL": url}
    if system == "arq":
        base = [peer, "-m", module, "--url", url]
        return (
            [*base, "--enqueue", str(count)],
            base,
            {},
            lambda: count - int(redis.zcard("arq:queue")),
        )
    if system == "saq":
        base = [peer, "-m", module, "--url", url]

        def saq_done() -> int:  # a job stays in its `incomplete` set until it is done
            return count - int(redis.zcard("saq:default:incomplete"))

        return [*base, "--enqueue", str(count)], base, {}, saq_done
    enqueue = [peer, "-m", module, "--enqueue", str(count)]
    worker = [peer, "-m", module, "--work"]
    if system == "taskiq":  # one result key per finished task, beside the queue's list
        return (
            _with_env(enqueue, env),
            worker,
            env,
            lambda: int(redis.dbsize()) - int(redis.exists("taskiq")),
        )
    if system == "celery":
        return (
            _with_env(enqueue, env),
            worker,
            env,
            lambda: _count_keys(redis, "celery-task-meta-*"),
        )
    raise BenchError(f"unknown system {system!r}")


def _with_env(command: list[str], env: dict[str, str]) -> list[str]:
    """`command` run under `env` (run_to_end takes no environment)."""
    return ["env", *(f"{k}={v}" for k, v in env.items()), *command]


def _count_keys(redis: Any, pattern: str) -> int:
    return sum(1 for _ in redis.scan_iter(match=pattern, count=10_000))


def _check(bench: Bench, system: str, count: int) -> None:
    """Results are there: gristmill's records say done with the right result (a sample)."""
    if system != "gristmill":
        return
    redis = bench.redis
    stream = QUEUES[system][0]
    found = list(redis.scan_iter(match="{gm:tasks:bench}:task:*", count=10_000))
    pipe = redis.pipeline(transaction=False)
    for key in found:
        pipe.hmget(key, "state", "id", "result")
    for key, (state, _, result) in zip(found, pipe.execute(), strict=True):
        if state != b"done" or result is None:
            raise BenchError(f"{key!r} is {state!r} with result {result!r}")
    done = len(found)
    if done != count or redis.xlen(stream) != count:
        raise BenchError(f"{done} records done of {count}")


def _peer_python(peer: str) -> str:
    try:
        return str(python_of(peer))
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
