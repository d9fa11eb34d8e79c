"""Subprocesses for fault tests: start, wait for a line, kill -9, pause, stop; nothing left behind.

    with serve("tests.helpers.services_fault:app", env={"GRISTMILL_REDIS_URL": url}) as worker:
        worker.wait_for_line("processors running", within=20)
        worker.kill9()                      # a crash: no cleanup runs in the child
        assert worker.returncode == -signal.SIGKILL

Each process starts in its own session (process group), so leaving the `with` kills the whole
group by id: workers it forked and servers it started go too. Output (stdout and stderr merged)
is collected line by line by a thread, so a chatty child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Self, TypeVar

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import TracebackType

_STOP_TIMEOUT_S = 10.0
_DRAIN_TIMEOUT_S = 2.0
_POLL_S = 0.02

T = TypeVar("T")


class Proc:
    """A child process with its output collected; a context manager that always reaps it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv, env=child_env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.pid = self.process.pid
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._collect, name=f"proc-{self.pid}", daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._lock:
                self._lines.append(raw.decode(errors="replace").rstrip("\n"))
        self.process.stdout.close()

    @property
    def lines(self) -> list[str]:
        """Every output line so far; once the process has exited, every line it wrote."""
        if self.process.poll() is not None:
            # the reader thread may not have read the last lines yet: wait for it (bounded:
            # a grandchild that inherited the pipe can hold it open)
            self._reader.join(timeout=_DRAIN_TIMEOUT_S)
        with self._lock:
            return list(self._lines)

    @property
    def output(self) -> str:
        """Every output line so far, joined (for assertion messages)."""
        return "\n".join(self.lines)

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        return self.process.poll()

    @property
    def alive(self) -> bool:
        """True until the process has exited (a stopped process is alive)."""
        return self.process.poll() is None

    # -- waiting -------------------------------------------------------------------------------

    def find_line(self, pattern: str | re.Pattern[str], start: int = 0) -> str | None:
        """The first output line from index `start` that matches `pattern` (re.search)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines[start:]:
            if regex.search(line):
                return line
        return None

    def wait_for_line(
        self, pattern: str | re.Pattern[str], within: float, *, start: int = 0
    ) -> str:
        """Block until a line matches `pattern`; raises TimeoutError with the output so far."""
        return self.wait_for(lambda: self.find_line(pattern, start), within, f"a line ~ {pattern}")

    async def wait_for_line_async(
        self, pattern: str | re.Pattern[str], within: float, *, start: int = 0
    ) -> str:
        """`wait_for_line` that lets the event loop run (for tests that also talk to Redis)."""
        return await self.wait_for_async(
            lambda: self.find_line(pattern, start), within, f"a line ~ {pattern}"
        )

    def wait_for(self, condition: Callable[[], T | None], within: float, what: str = "") -> T:
        """Poll `condition` until it returns something other than None/False; return that.

        Raises:
            TimeoutError: After `within` seconds, or as soon as the process has exited with
                the condition still unmet.
        """
        deadline = time.monotonic() + within
        while (value := self._poll(condition, deadline, what)) is None:
            time.sleep(_POLL_S)
        return value

    async def wait_for_async(
        self, condition: Callable[[], T | None], within: float, what: str = ""
    ) -> T:
        """`wait_for` that sleeps with asyncio between polls."""
        deadline = time.monotonic() + within
        while (value := self._poll(condition, deadline, what)) is None:
            await asyncio.sleep(_POLL_S)
        return value

    def _poll(self, condition: Callable[[], T | None], deadline: float, what: str) -> T | None:
        exited = not self.alive  # read before the condition: its last lines may satisfy it
        if exited:
            self._reader.join(timeout=1.0)
        value = condition()
        if value is not None and value is not False:
            return value
        if exited:
            raise TimeoutError(
                f"{self.argv[-1]} exited ({self.returncode}) before {what or 'the condition'}:"
                f"\n{self.output[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what or 'condition'} in time; output:\n{self.output[-4000:]}")
        return None

    # -- signals -------------------------------------------------------------------------------

    def kill9(self, *, group: bool = False) -> int:
        """SIGKILL the process (with `group`, its whole process group) and reap it.

        Returns the exit code: -9 unless it had already exited.
        """
        self._signal(signal.SIGKILL, group=group)
        return self.process.wait(timeout=_STOP_TIMEOUT_S)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets and leases but runs no code."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._signal(signal.SIGCONT)

    def terminate(self, grace: float = _STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for the exit code (a graceful stop: the drain runs).

        Raises:
            TimeoutError: If it has not exited after `grace` seconds (it is then killed).
        """
        self._signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9(group=True)
            raise TimeoutError(
                f"no exit {grace}s after SIGTERM; killed. Output:\n{self.output[-4000:]}"
            ) from None

    async def terminate_async(self, grace: float = _STOP_TIMEOUT_S) -> int:
        """`terminate` that lets the event loop run while waiting."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive:
            if time.monotonic() > deadline:
                self.kill9(group=True)
                raise TimeoutError(
                    f"no exit {grace}s after SIGTERM; killed. Output:\n{self.output[-4000:]}"
                )
            await asyncio.sleep(_POLL_S)
        return self.process.wait()

    def _signal(self, signum: int, *, group: bool = False) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.pid, signum)  # the child leads its own session: pgid == pid
            else:
                os.kill(self.pid, signum)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill whatever is left of the process group and reap the child; safe to call twice."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGCONT)  # stopped members cannot die until continued
            os.killpg(self.pid, signal.SIGKILL)  # pgid == pid: only the group we started
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while self._group_members() and time.monotonic() < deadline:
            time.sleep(_POLL_S)  # SIGKILL is delivered asynchronously: wait until it took
        self._reader.join(timeout=1.0)

    def _group_members(self) -> list[int]:
        """Live (not zombie) processes still in this child's process group."""
        members = []
        for process in psutil.process_iter(["status"]):
            with contextlib.suppress(psutil.Error, OSError):
                if process.info["status"] != psutil.STATUS_ZOMBIE and (
                    os.getpgid(process.pid) == self.pid
                ):
                    members.append(process.pid)
        return members

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Procs:
    """Several children started together and all reaped on exit, e.g. a pool of workers.

    with Procs() as pool:
        workers = [pool.add(serve("m:app", env=env)) for _ in range(3)]
    """

    def __init__(self) -> None:
        self._children: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        """Adopt `proc`: it is closed with the others."""
        self._children.append(proc)
        return proc

    def __iter__(self) -> Iterator[Proc]:
        return iter(list(self._children))

    def close(self) -> None:
        """Close every child (see `Proc.close`), the newest first."""
        for child in reversed(self._children):
            child.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def python_module(
    module: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Proc:
    """`python -m module args...` with this interpreter (the project's virtualenv)."""
    return Proc([sys.executable, "-m", module, *args], env=env, cwd=cwd)


def serve(
    target: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Proc:
    """`runtime serve target args...` (as `python -m gristmill`), e.g. `serve("m:app")`."""
    return python_module("gristmill", "serve", target, *args, env=env, cwd=cwd)
