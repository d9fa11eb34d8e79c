"""The harness's own I/O: the server connection, prefilling, processes, and the stopwatch.

Method (the same for every system): fill the input with N entries, start the system, time
from its first output entry to its Nth (polling the output's length), stop it. See README.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from redis import Redis as SyncRedis

from bench.payload import Invoice, Order, order_payload
from bench.resp import RespConnection, pack

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis as AsyncRedis

REPO = Path(__file__).resolve().parent.parent
POLL_S = 0.002  # output-length polls: ~1 % of a 200k msg/s run's resolution, a few µs of server
STALL_S = 15.0  # no new output for this long: the system is stuck, report it and go on
# A system still counting after this long is timed on what it did so far: its rate is steady
# by then, and FastStream's or arq's ~2,000 msg/s would otherwise take minutes per run.
MAX_TIMED_S = 5.0
STOP_GRACE_S = 10.0
_PREFILL_CHUNK = 1000  # XADDs per write while filling the input


class BenchError(Exception):
    """Raised when a system cannot be measured (it is missing, crashed or stalled)."""


@dataclass(frozen=True)
class Timing:
    """`counted` outputs appeared in `seconds` (from the first one seen to the last)."""

    counted: int
    seconds: float
    client_us_per_msg: float | None = None  # CPU of the system's processes per output
    server_us_per_msg: float | None = None  # CPU of the server per output

    @property
    def per_s(self) -> float:
        return self.counted / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class SchemaIds:
    """The registry ids of the benchmark's message types on the bench server."""

    order: str
    invoice: str


class Bench:
    """One benchmark server: flush it, fill streams, run systems against it and time them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix: str | None = None  # the registry's key prefix; None: gristmill's default
        self.redis = SyncRedis.from_url(url)
        self.logs = Path(tempfile.mkdtemp(prefix="gristmill-bench-"))

    def flush(self) -> None:
        """FLUSHALL SYNC: a lazy free would still be running during the next system."""
        self.redis.flushall(asynchronous=False)

    def register_schemas(self) -> SchemaIds:
        """Register Order and Invoice in gristmill's registry (again after every flush)."""
        from gristmill.keys import DEFAULT_PREFIX  # gristmill only where needed
        from gristmill.schemas.registry import SchemaRegistry

        async def register() -> SchemaIds:
            client = self.async_client()
            try:
                registry = SchemaRegistry(client, self.prefix or DEFAULT_PREFIX)
                order = await registry.register(Order.DESCRIPTOR)
                invoice = await registry.register(Invoice.DESCRIPTOR)
                return SchemaIds(order.schema_id, invoice.schema_id)
            finally:
                await client.aclose()

        return asyncio.run(register())

    def async_client(self) -> AsyncRedis:
        """An async client of this server (a cluster's bench gives a cluster client)."""
        from redis.asyncio import Redis  # the registry is async

        return Redis.from_url(self.url)

    def prefill(self, stream: str, count: int, schema_id: str) -> None:
        """XADD `count` Order entries ({schema_id, payload}) to `stream`, pipelined."""

        async def fill() -> None:
            connection = await RespConnection.open(self.node_url(stream))
            try:
                for start in range(0, count, _PREFILL_CHUNK):
                    numbers = range(start, min(start + _PREFILL_CHUNK, count))
                    head = ("XADD", stream, "*", "schema_id", schema_id, "payload")
                    await connection.call(*(pack(*head, order_payload(n)) for n in numbers))
            finally:
                await connection.close()

        asyncio.run(fill())

    def node_url(self, key: str) -> str:
        """The URL of the server holding `key`: this one (a cluster's bench routes by slot)."""
        return self.url

    def launch(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Process:
        """Start `command` from the repository root with its output in a log file."""
        log_path = self.logs / f"{name}-{len(list(self.logs.iterdir()))}.log"
        environment = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        environment.update(env or {})
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                command,
                cwd=REPO,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C is ours to forward, in order
            )
        return Process(name, popen, log_path)

    def run_to_end(self, name: str, command: list[str], timeout_s: float = 600.0) -> str:
        """Run a helper command to completion and return its output.

        Raises:
            BenchError: If it fails or outlives `timeout_s`.
        """
        process = self.launch(name, command)
        try:
            code = process.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.stop()
            raise BenchError(f"{name} did not finish in {timeout_s:.0f} s") from None
        if code != 0:
            raise BenchError(f"{name} exited with {code}: {process.tail()}")
        return process.log_path.read_text(errors="replace")

    def count_entries(self, stream: str) -> Callable[[], int]:
        """A probe: the length of `stream` now."""
        return lambda: int(self.redis.xlen(stream))

    def time_outputs(self, probe: Callable[[], int], expected: int, process: Process) -> Timing:
        """Wait until `probe()` reaches `expected`; time it from the first output seen.

        When the first poll that sees output already sees more than half of them (a short
        run), the clock starts at the last poll that saw none instead. After MAX_TIMED_S the
        rate is taken on the outputs counted so far (`Timing.counted` says how many).

        Raises:
            BenchError: If the process exits first or no output arrives for STALL_S seconds.
        """
        last_empty = time.perf_counter()
        first: tuple[float, int] | None = None
        cpu_first: tuple[int, float, float] | None = None  # (count, client s, server s)
        progress = (last_empty, 0)
        while True:
            count = probe()
            now = time.perf_counter()
            if count == 0:
                last_empty = now
            elif first is None:
                first = (now, count) if count <= expected // 2 else (last_empty, 0)
                cpu_first = (count, process.cpu_s(), self.server_cpu_s())
            if count >= expected or (first is not None and now - first[0] > MAX_TIMED_S):
                assert first is not None
                assert cpu_first is not None
                client_us = server_us = None
                moved = count - cpu_first[0]
                if moved > (count - first[1]) // 2:  # else the samples would miss most work
                    client_us = (process.cpu_s() - cpu_first[1]) / moved * 1e6
                    server_us = (self.server_cpu_s() - cpu_first[2]) / moved * 1e6
                return Timing(count - first[1], now - first[0], client_us, server_us)
            if count > progress[1]:
                progress = (now, count)
            elif now - progress[0] > STALL_S:
                raise BenchError(f"stalled at {count}/{expected} outputs: {process.tail()}")
            if process.popen.poll() is not None:
                raise BenchError(
                    f"exited with {process.popen.returncode} at {count}/{expected} outputs: "
                    f"{process.tail()}"
                )
            time.sleep(POLL_S)

    def server_cpu_s(self) -> float:
        """CPU seconds the server has used (user + system, main thread and others)."""
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def close(self) -> None:
        self.redis.close()


@dataclass
class Process:
    """A system under test, running as its own process (group)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it after STOP_GRACE_S."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait()

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def cpu_s(self) -> float:
        """CPU seconds used so far by the process and its live children (`--workers N`)."""
        try:
            root = psutil.Process(self.popen.pid)
            total = 0.0
            for member in (root, *root.children(recursive=True)):
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            return float("nan")
        return total

    def tail(self, chars: int = 1500) -> str:
        """The end of the process's output, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:].strip() or "(no output)"


def python() -> str:
    """gristmill's interpreter (the harness's own)."""
    return sys.executable
