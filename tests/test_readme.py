"""The README runs as written: every shell command and Python snippet, against a real server.

Run in a scratch directory holding copies of `services/` and `schemas/`, with the embedded
server of that directory already started (as if a service ran there), so commands that attach
to "the server this directory's services use" find one. Commands that do not end by themselves
or take minutes are excluded, each with its reason and where it is tested: `LONG_RUNNING`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gristmill.shared_server import SharedServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# commands that do not end by themselves or take minutes; each is run elsewhere
LONG_RUNNING = {
    "make demo": "runs until Ctrl-C; tests/test_serve.py runs the demo and stops it",
    "make test": "the whole suite, which this test is part of",
    "make bench": "minutes of benchmarks; tests/bench/ smoke-tests the scenarios",
    "python -m bench": "the same benchmarks, one scenario at a time",
    "runtime serve": "serves until SIGTERM; tests/test_serve.py and others run it as a process",
    "docker build": "builds the image for minutes; tests/deploy/test_container.py builds it with podman",
}


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of `language`, in order."""
    text = README.read_text()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def runnable(line: str) -> bool:
    return not any(line.startswith(command) for command in LONG_RUNNING)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("shop")
    for folder in ("services", "schemas"):
        shutil.copytree(ROOT / folder, directory / folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRISTMILL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return directory, env


@pytest.fixture(scope="module")
def running_server(shop: tuple[Path, dict[str, str]]) -> Iterator[SharedServer]:
    shared = SharedServer(shop[0] / ".gristmill")
    shared.open()
    yield shared
    shared.close()


def test_the_readme_has_what_this_test_runs() -> None:
    assert len(blocks("python")) >= 4
    assert len(blocks("sh")) >= 2


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_snippets_run(
    index: int, shop: tuple[Path, dict[str, str]], running_server: object
) -> None:
    directory, env = shop
    code = blocks("python")[index]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=directory, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{code}\n---\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("index", range(len(blocks("sh"))))
def test_shell_commands_run(
    index: int, shop: tuple[Path, dict[str, str]], running_server: object
) -> None:
    directory, env = shop
    lines = [line for line in blocks("sh")[index].splitlines() if runnable(line)]
    if not lines:
        skipped = {why for command, why in LONG_RUNNING.items() if command in blocks("sh")[index]}
        pytest.skip("only long-running commands: " + "; ".join(sorted(skipped)))
    script = "\n".join(["set -euo pipefail", *lines])
    done = subprocess.run(
        ["bash", "-c", script], cwd=directory, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script}\n---\n{done.stdout}{done.stderr}"
    assert "new, empty server" not in done.stderr  # they found the directory's server
