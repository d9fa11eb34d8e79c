"""The supervisor's restart policy and exit descriptions (pure: no processes)."""

from __future__ import annotations

import signal

from gristmill.supervisor import Slot, describe_exit, exit_code


def test_an_exit_is_described_by_its_status_or_its_signal() -> None:
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(-signal.SIGKILL) == "killed by signal SIGKILL (9)"
    assert exit_code(-signal.SIGKILL) == 137
    assert exit_code(2) == 2


def test_quick_deaths_double_the_backoff_until_a_crash_loop() -> None:
    slot = Slot(0, quick_s=10, crash_limit=4, first_backoff_s=0.5, longest_backoff_s=1.5)
    delays = []
    now = 100.0
    for _ in range(3):
        slot.started_at = now
        now += 1.0  # died one second after its start: "at once"
        restart = slot.note_death(1, now)
        assert restart is not None
        delays.append(restart - now)
        now = restart
    assert delays == [0.5, 1.0, 1.5]  # doubling, capped
    slot.started_at = now
    assert slot.note_death(1, now + 1.0) is None  # the fourth in a row: a crash loop
    assert slot.deaths == [1, 1, 1, 1]


def test_a_worker_that_ran_a_while_restarts_after_the_first_backoff() -> None:
    slot = Slot(0, quick_s=10, crash_limit=2, first_backoff_s=0.5)
    slot.started_at = 0.0
    assert slot.note_death(-9, 1.0) == 1.5  # one quick death
    slot.started_at = 2.0
    assert slot.note_death(-9, 60.0) == 60.5  # lived 58 s: the count starts over
    assert slot.quick_deaths == 0
