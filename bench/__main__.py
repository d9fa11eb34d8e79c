"""`python -m bench SCENARIO|all [--json] [--messages N] [--url URL] [--save]`.

Starts its own server (gristmill's embedded Valkey on a temporary data directory) unless
`--url` names one, runs every system of each scenario on it, prints a table with gristmill's
ratio to each peer (or JSON lines with `--json`); with `--save` it also writes the committed
bench/results/<scenario>.json and .png (a plain run leaves the checkout clean).
`python -m bench list` shows which scenarios are available.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from rich.console import Console

from bench.report import json_lines, print_table, write_results
from bench.systems import PROFILE_ENV, REPEAT_ENV

if TYPE_CHECKING:
    from collections.abc import Callable

    Run = Callable[[str, int], list[dict[str, object]]]

# in the order `all` runs them; the ones marked are written by other sessions
SCENARIOS = (
    "passthrough",
    "pipeline",
    "latency",
    "workers",
    "decode",  # the schemas work
    "delayed-memory",  # the delayed-store work
    "sweep",  # the delayed-store work
    "telemetry",  # the observability work: metrics and tracing overhead
    "bridge",  # the pub/sub bridge work
    "tasks",  # the tasks work: tracked tasks against arq, SAQ, taskiq and Celery
    "many",  # the hot-path work: 10, 100 and 1,000 processors in one process
    "cluster",  # beyond one node: a local 3-master cluster beside the single node
)
DEFAULT_MESSAGES = 200_000
SCENARIO_BASE_TIMEOUT_S = 300.0
SCENARIO_TIMEOUT_PER_MESSAGE_S = 0.002  # 200,000 messages: 700 s in all
STOP_TIMEOUT_S = 30.0


def module_name(scenario: str) -> str:
    """`delayed-memory` -> `bench.scenarios.delayed_memory`."""
    return "bench.scenarios." + scenario.replace("-", "_")


def available(scenario: str) -> bool:
    """Whether the scenario's module exists yet."""
    return importlib.util.find_spec(module_name(scenario)) is not None


def load(scenario: str) -> Run:
    run: Run = importlib.import_module(module_name(scenario)).run
    return run


def server_description(url: str) -> str:
    client = Redis.from_url(url)
    try:
        info = client.info("server")
        memory = client.info("memory")
    finally:
        client.close()
    name = "valkey" if "valkey_version" in info else "redis"
    version = info.get("valkey_version") or info.get("redis_version")
    return f"{name} {version} ({memory.get('mem_allocator', '?')})"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", help=f"one of {', '.join(SCENARIOS)}; `all`; or `list`")
    parser.add_argument("--messages", "--entries", type=int, default=DEFAULT_MESSAGES,
                        help=f"messages per system (default {DEFAULT_MESSAGES:,})")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--url", help="benchmark this server instead of starting one")
    parser.add_argument(
        "--save", action="store_true", help="write bench/results/<scenario>.json and .png"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each system this many times, round-robin, and report the median run",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run gristmill (one worker) under cProfile, writing .prof files to DIR, and "
        "write each system's INFO commandstats there",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse(argv)
    width = None if sys.stdout.isatty() else 120  # piped: keep table rows on one line
    out, err = Console(width=width), Console(stderr=True, width=width)
    if args.scenario == "list":
        for scenario in SCENARIOS:
            out.print(
                f"{scenario:16} {'available' if available(scenario) else 'not available yet'}"
            )
        return 0
    wanted = SCENARIOS if args.scenario == "all" else (args.scenario,)
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        err.print(f"unknown scenario {unknown[0]!r}: choose one of {', '.join(SCENARIOS)}, all")
        return 2
    if args.messages < 1:
        err.print("--messages must be at least 1")
        return 2
    if args.repeat < 1:
        err.print("--repeat must be at least 1")
        return 2
    os.environ[REPEAT_ENV] = str(args.repeat)  # read by the scenarios (and `all`'s children)
    if args.profile:
        os.environ[PROFILE_ENV] = str(Path(args.profile).resolve())  # read by the launcher
    if args.url:
        return run_all(wanted, args.url, args.messages, args.json, out, err, save=args.save)
    from gristmill.embedded import EmbeddedServer  # only when we start one

    with (
        tempfile.TemporaryDirectory(prefix="gristmill-bench-server-") as data_dir,
        EmbeddedServer.start(Path(data_dir)) as server,
    ):
        return run_all(wanted, server.url, args.messages, args.json, out, err, save=args.save)


def run_all(
    scenarios: tuple[str, ...],
    url: str,
    size: int,
    as_json: bool,
    out: Console,
    err: Console,
    *,
    save: bool = False,
) -> int:
    server = server_description(url)
    if len(scenarios) == 1:  # with several, each child process says it
        err.print(f"[dim]server: {server} at {url}; {size:,} messages per system[/]")
    code = 0
    for scenario in scenarios:
        if not available(scenario):
            err.print(f"{scenario}: not available yet")
            code = code or (0 if len(scenarios) > 1 else 1)
            continue
        rows = (
            load(scenario)(url, size)
            if len(scenarios) == 1
            else run_isolated(scenario, url, size, err, save=save)
        )
        if rows is None:
            code = 1
            continue
        for result in rows:
            result.setdefault("scenario", scenario)
        if save and len(scenarios) == 1:  # with several, each child process wrote its own
            written = write_results(scenario, rows, size, server)
            err.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/]")
        if as_json:
            print(json_lines(rows), flush=True)
        else:
            print_table(out, f"{scenario} ({size:,} messages, {server})", rows)
    return code


def scenario_timeout_s(size: int) -> float:
    """How long one scenario of `all` may take before it is stopped and reported."""
    return SCENARIO_BASE_TIMEOUT_S + size * SCENARIO_TIMEOUT_PER_MESSAGE_S


def run_isolated(
    scenario: str, url: str, size: int, err: Console, *, save: bool = False
) -> list[dict[str, object]] | None:
    """Run one scenario of `all` in a child process: one that hangs cannot stop the others.

    Returns:
        Its rows, or None (after saying why) if it failed or ran out of time.
    """
    command = [sys.executable, "-m", "bench", scenario, "--url", url, "--messages", str(size)]
    command += ["--save"] if save else []
    child = subprocess.Popen([*command, "--json"], stdout=subprocess.PIPE, text=True)
    timeout_s = scenario_timeout_s(size)
    try:
        stdout, _ = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.terminate()  # SIGTERM: the child stops the system it is running, then exits
        try:
            child.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        err.print(f"{scenario}: stopped after {timeout_s:.0f} s without finishing")
        return None
    if child.returncode != 0:
        err.print(f"{scenario}: failed with exit code {child.returncode}")
        return None
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: running systems and the server are stopped


if __name__ == "__main__":
    sys.exit(main())
