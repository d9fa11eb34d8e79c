"""Peers' virtualenvs under .bench-venvs/<peer>, created on first use with pinned versions.

Peers never enter gristmill's environment: arq 0.28 pins redis<6, which gristmill cannot
share, and a framework under test should not be able to change what gristmill runs with.
Each venv also gets the protobuf and hiredis that gristmill's environment has, so every
system decodes with the same protobuf runtime and parses replies with hiredis.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".bench-venvs"

PINNED: dict[str, tuple[str, ...]] = {
    "faststream": ("faststream[redis]==0.7.8",),
    "arq": ("arq==0.28.0",),
    "saq": ("saq[redis]==0.26.4", "typing-extensions"),  # 0.26.4 imports it, requires it not
    "taskiq": ("taskiq==0.13.0", "taskiq-redis==1.2.4"),
    "celery": ("celery[redis]==5.7.0",),
}
_SHARED = ("protobuf", "hiredis")  # at the versions gristmill's environment has


def python_of(peer: str) -> Path:
    """The interpreter of `peer`'s virtualenv, created and installed on first use.

    Raises:
        RuntimeError: If the virtualenv cannot be created or the packages not installed.
    """
    venv = VENVS / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    packages = (*PINNED[peer], *(f"{name}=={version(name)}" for name in _SHARED))
    wanted = "\n".join(packages)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"preparing {venv}: {' '.join(packages)} (once)", file=sys.stderr)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *packages],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"could not prepare {venv}: {exc}") from exc
    marker.write_text(wanted)
    return python
