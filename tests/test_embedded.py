from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import psutil
import pytest
from redis import Redis

from gristmill.embedded import EmbeddedServer

if TYPE_CHECKING:
    from pathlib import Path


def test_data_survives_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    with EmbeddedServer.start(tmp_path) as first, Redis.from_url(first.url) as client:
        client.xadd("orders", {"n": "1"})
        client.xadd("orders", {"n": "2"})
        client.set("k", "v")
    assert (tmp_path / "appendonlydir").is_dir()
    with EmbeddedServer.start(tmp_path) as second, Redis.from_url(second.url) as client:
        assert [fields[b"n"] for _, fields in client.xrange("orders")] == [b"1", b"2"]
        assert client.get("k") == b"v"


def test_stop_leaves_no_server_process(tmp_path: Path) -> None:
    with EmbeddedServer.start(tmp_path) as running:
        pid = running.process.pid
        assert psutil.pid_exists(pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.fault
def test_server_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from gristmill.embedded import EmbeddedServer
        server = EmbeddedServer.start(Path({str(tmp_path)!r}))
        print(server.process.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    assert psutil.pid_exists(server_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(server_pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    alive = psutil.pid_exists(server_pid) and (
        psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    )
    parent.stdout.close()
    assert not alive, "the embedded server outlived its parent"
