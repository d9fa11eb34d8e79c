"""System tools the observability tests use, installed from Debian on first need (idempotent)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` first if it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail(f"{binary} is missing and this is not root: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    found = shutil.which(binary)
    assert found, f"apt-get installed {package} but {binary} is still not on PATH"
    return found


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's `prometheus` server."""
    return debian_tool("prometheus", "prometheus")


@pytest.fixture(scope="session")
def dot_binary() -> str:
    """Graphviz's `dot`, which `runtime docs` draws with."""
    return debian_tool("dot", "graphviz")
