"""System tools the tests use, installed from Debian on first need (idempotent).

prometheus = debian_tool("prometheus", "prometheus")
chromedriver = debian_tool("chromedriver", "chromium", "chromium-driver")
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(binary: str, *packages: str) -> str:
    """The path of `binary`, installing Debian's `packages` first if it is missing.

    With no `packages`, the package is named like the binary.
    """
    found = shutil.which(binary)
    if found:
        return found
    wanted = list(packages or (binary,))
    if os.geteuid() != 0:
        pytest.fail(f"{binary} is missing and this is not root: apt-get install {' '.join(wanted)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *wanted]):
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    found = shutil.which(binary)
    assert found, f"apt-get installed {' '.join(wanted)} but {binary} is still not on PATH"
    return found
