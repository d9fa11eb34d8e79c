"""`runtime serve --workers N`: N worker processes, each replaced when it dies.

The supervisor starts N copies of `runtime serve TARGET --workers 1` against the same server
and forwards SIGTERM/SIGINT to them. A worker that dies while nobody asked it to stop is
logged (exit status or signal) and started again after a backoff that doubles while it keeps
dying soon after its start. A worker that dies within `quick_s` of its start `crash_limit`
times in a row is a crash loop (a bad deploy, a setting it refuses): the supervisor stops the
others and exits CRASH_LOOP_EXIT with one line naming the worker and its last exit. After a
drain it exits 0 when every worker exited 0, else the first worker's failing code.

Pure parts (`describe_exit`, `Slot.note_death`) are separate from the process handling, so
the restart policy is unit-tested without processes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gristmill.stopping import STOP_ASKED
from gristmill.telemetry.hosting import worker_env

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType

__all__ = ("CRASH_LOOP_EXIT", "Slot", "Supervisor", "describe_exit", "serve_workers")


log = logging.getLogger(__name__)

CRASH_LOOP_EXIT = 4
POLL_S = 0.1
FIRST_BACKOFF_S = 0.5
LONGEST_BACKOFF_S = 15.0
QUICK_S = 10.0  # a worker that dies sooner than this after its start died "at once"
CRASH_LIMIT = 5  # this many quick deaths in a row: a crash loop
STOP_TIMEOUT_S = 60.0  # after the workers' own grace: SIGKILL what still runs


_FORWARDED = (signal.SIGTERM, signal.SIGINT)


def describe_exit(code: int) -> str:
    """`exit status 3` or `killed by signal SIGKILL (9)`, from a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {name} ({-code})"
    return f"exit status {code}"


def exit_code(code: int) -> int:
    """A child's Popen return code as a shell would report it (128 + signal)."""
    return 128 - code if code < 0 else code


@dataclass(slots=True)
class Slot:
    """One of the N workers: its current process and its restart history (policy is pure)."""

    number: int
    quick_s: float = QUICK_S
    crash_limit: int = CRASH_LIMIT
    first_backoff_s: float = FIRST_BACKOFF_S
    longest_backoff_s: float = LONGEST_BACKOFF_S
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0  # in a row
    restart_at: float | None = None
    deaths: list[int] = field(default_factory=list)

    def note_death(self, code: int, now: float) -> float | None:
        """Record a death at `now`; returns the restart time, or None for a crash loop."""
        self.deaths.append(code)
        self.process = None
        if now - self.started_at < self.quick_s:
            self.quick_deaths += 1
        else:
            self.quick_deaths = 0
        if self.quick_deaths >= self.crash_limit:
            self.restart_at = None
            return None
        backoff = self.first_backoff_s * 2 ** max(self.quick_deaths - 1, 0)
        self.restart_at = now + min(backoff, self.longest_backoff_s)
        return self.restart_at


class Supervisor:
    """Runs `workers` copies of `command`, replacing dead ones, until a signal drains them."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        workers: int,
        *,
        quick_s: float = QUICK_S,
        crash_limit: int = CRASH_LIMIT,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.slots = [
            Slot(number, quick_s=quick_s, crash_limit=crash_limit) for number in range(workers)
        ]
        self.stopping: int | None = None  # the signal that asked us to stop

    def stopping_signal(self) -> int:
        """The signal that asked us to stop (SIGTERM when a crash loop did)."""
        return signal.SIGTERM if self.stopping is None else self.stopping

    def _start(self, slot: Slot) -> None:
        # telemetry hook: worker k serves its health port on base + k (one port each)
        slot.process = subprocess.Popen(self.command, env=worker_env(self.env, slot.number))
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log.info("worker %d started as pid %d", slot.number, slot.process.pid)

    def _forward(self, signum: int, _frame: FrameType | None = None) -> None:
        if self.stopping is None:
            log.info("%s: draining %d workers", signal.Signals(signum).name, len(self.slots))
        self.stopping = signum
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    def run(self) -> int:
        """Supervise until every worker has exited after a stop; returns the exit code."""
        before = {signum: signal.signal(signum, self._forward) for signum in _FORWARDED}
        try:
            return self._supervise()
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)

    def _supervise(self) -> int:
        for slot in self.slots:
            self._start(slot)
        if STOP_ASKED.is_set():  # asked to stop while we were starting them
            self._forward(signal.SIGTERM)
        final: dict[int, int] = {}
        crashed: Slot | None = None
        stop_deadline: float | None = None
        while len(final) < len(self.slots):
            time.sleep(POLL_S)
            now = time.monotonic()
            if self.stopping is not None and stop_deadline is None:
                stop_deadline = now + STOP_TIMEOUT_S
            for slot in self.slots:
                if slot.number in final:
                    continue
                if slot.process is None:  # waiting to be restarted
                    if self.stopping is not None:
                        final[slot.number] = 0  # never restarted: nothing of it is running
                    elif slot.restart_at is not None and now >= slot.restart_at:
                        self._start(slot)
                    continue
                code = slot.process.poll()
                if code is None:
                    if stop_deadline is not None and now > stop_deadline:
                        log.error("worker %d did not stop in time: killing it", slot.number)
                        slot.process.kill()
                    continue
                if self.stopping is not None or code == 0:
                    if code == -self.stopping_signal():
                        # killed by the very signal we forwarded: it died before it installed
                        # its handler, so before it read anything: nothing was in flight
                        code = 0
                    final[slot.number] = code
                    if code != 0:
                        log.error("worker %d stopped with %s", slot.number, describe_exit(code))
                    continue
                pid = slot.process.pid
                restart_at = slot.note_death(code, now)
                if restart_at is None:
                    log.critical(
                        "worker %d (pid %d) died with %s, %d times in a row within %.0f s of "
                        "its start: a crash loop; stopping the other workers (its own log "
                        "lines above say why it died)",
                        slot.number, pid, describe_exit(code), slot.quick_deaths, slot.quick_s,
                    )  # fmt: skip
                    crashed = slot
                    final[slot.number] = CRASH_LOOP_EXIT
                    self._forward(signal.SIGTERM)
                    continue
                log.error(
                    "worker %d (pid %d) died with %s; restarting it in %.1f s",
                    slot.number, pid, describe_exit(code), restart_at - now,
                )  # fmt: skip
        if crashed is not None:
            return CRASH_LOOP_EXIT
        failed = [exit_code(code) for _, code in sorted(final.items()) if code != 0]
        if failed:
            return failed[0]
        log.info("all %d workers stopped cleanly", len(self.slots))
        return 0


def serve_workers(target: str, url: str, workers: int, only: Sequence[str]) -> int:
    """`runtime serve TARGET --workers N`: N supervised worker processes sharing `url`."""
    env = {**os.environ, "GRISTMILL_REDIS_URL": url}
    command = [sys.executable, "-m", "gristmill", "serve", target, "--workers", "1"]
    for name in only:
        command += ["--only", name]
    return Supervisor(command, env, workers).run()
