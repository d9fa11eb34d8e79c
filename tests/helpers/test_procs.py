"""Child processes start, signal and stop as told, and none outlives its `with`."""

from __future__ import annotations

import signal
import sys
import textwrap

import psutil
import pytest

from tests.helpers.procs import Proc, Procs, serve

pytestmark = pytest.mark.fault


def python(code: str) -> Proc:
    return Proc([sys.executable, "-c", textwrap.dedent(code)])


TICKER = """
    import itertools, signal, sys, time
    def drain(signum, frame):
        print("draining", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, drain)
    print("ready", flush=True)
    for n in itertools.count():
        print(f"tick {n}", flush=True)
        time.sleep(0.01)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_wait_for_line_then_sigterm_collects_the_exit_code() -> None:
    with python(TICKER) as child:
        assert child.wait_for_line("^ready$", within=20) == "ready"
        child.wait_for_line(r"tick 3\b", within=20)
        assert child.terminate() == 3
        assert child.find_line("draining") == "draining"
        assert not child.alive


async def test_async_waits_let_the_loop_run() -> None:
    with python(TICKER) as child:
        await child.wait_for_line_async(r"tick 2\b", within=20)
        assert await child.terminate_async() == 3


def test_kill9_ends_the_process_without_its_handlers() -> None:
    with python(TICKER) as child:
        child.wait_for_line("ready", within=20)
        assert child.kill9() == -signal.SIGKILL
        assert child.returncode == -signal.SIGKILL
        assert child.find_line("draining") is None


def test_pause_stops_the_process_until_resume() -> None:
    with python(TICKER) as child:
        child.wait_for_line(r"tick 1\b", within=20)
        child.pause()
        status = psutil.Process(child.pid)
        child.wait_for(lambda: status.status() == psutil.STATUS_STOPPED, within=5)
        child.resume()
        child.wait_for(lambda: status.status() != psutil.STATUS_STOPPED, within=5)
        seen = len(child.lines)
        child.wait_for_line(r"tick \d+", within=20, start=seen)


def test_a_paused_process_still_stops_on_sigterm() -> None:
    with python(TICKER) as child:
        child.wait_for_line("ready", within=20)
        child.pause()
        assert child.terminate() == 3


def test_waiting_on_a_process_that_exits_fails_at_once_with_its_output() -> None:
    exited = pytest.raises(TimeoutError, match=r"exited \(7\)[\s\S]*bye")
    with python("print('bye'); raise SystemExit(7)") as child, exited:
        child.wait_for_line("never printed", within=60)


def test_waiting_too_long_fails_with_the_output() -> None:
    with python(TICKER) as child, pytest.raises(TimeoutError, match="in time"):
        child.wait_for_line("never printed", within=0.2)


def test_nothing_outlives_the_with_block_even_on_error() -> None:
    code = """
        import subprocess, sys, time
        grandchild = subprocess.Popen(["sleep", "600"])
        print(f"grandchild {grandchild.pid}", flush=True)
        time.sleep(600)
    """
    with pytest.raises(RuntimeError, match="test failed"), python(code) as child:  # noqa: PT012
        line = child.wait_for_line(r"^grandchild \d+$", within=20)
        grandchild = int(line.split()[1])
        assert not gone(grandchild)
        raise RuntimeError("test failed")
    assert gone(child.pid)
    assert gone(grandchild)


def test_a_paused_group_is_still_cleaned_up() -> None:
    with python(TICKER) as child:
        child.wait_for_line("ready", within=20)
        child.pause()
    assert gone(child.pid)


def test_serve_runs_the_runtime_cli() -> None:
    with serve(
        "no_such_module_here:app", env={"GRISTMILL_REDIS_URL": "redis://127.0.0.1:1/0"}
    ) as cli:
        cli.wait_for(lambda: not cli.alive, within=60)
        assert cli.returncode == 2
        assert cli.find_line("no_such_module_here") is not None


def test_a_pool_reaps_every_child() -> None:
    with Procs() as pool:
        children = [pool.add(python(TICKER)) for _ in range(3)]
        for child in pool:
            child.wait_for_line("ready", within=20)
        children[1].pause()
    assert all(gone(child.pid) for child in children)
