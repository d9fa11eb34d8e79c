"""The Python 3.12 venv (.venv/helm) where Helm's library and the manifest validators live."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RENDERER = Path(__file__).with_name("helm_render.py")
HELM_VENV = ROOT / ".venv" / "helm"
# helm-sdkpy: Helm's Go library as a wheel; kubernetes-validate: the API schemas, offline;
# cloudcoil.models.keda: KEDA's CRD types, for the ScaledObject
REQUIREMENTS = (
    "helm-sdkpy==0.1.32",
    "kubernetes-validate==1.37.0",
    "cloudcoil.models.keda==2.16.1.0",
    "PyYAML>=6",
)


def python312() -> str:
    """A Python 3.12 that runs (a pyenv shim on PATH may name one that is not selected)."""
    candidates = [
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
        *sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12")),
        shutil.which("python3.12"),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    pytest.fail("helm-sdkpy needs Python 3.12: none found on PATH or under ~/.pyenv/versions")


@pytest.fixture(scope="session")
def helm_python() -> Path:
    """The venv's python, with the requirements installed once (a stamp says which)."""
    python = HELM_VENV / "bin" / "python"
    stamp = HELM_VENV / ".installed"
    wanted = "\n".join(REQUIREMENTS)
    if not (stamp.is_file() and stamp.read_text() == wanted and python.exists()):
        subprocess.run([python312(), "-m", "venv", "--clear", str(HELM_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            check=True,
            timeout=900,
        )
        stamp.write_text(wanted)
    return python


def invalid_manifests(helm_python: Path, objects: list[Any], tmp_path: Path) -> list[str]:
    """What strict validation says of `objects` (built-in kinds and KEDA's ScaledObject)."""
    listing = tmp_path / "manifests.json"
    listing.write_text(json.dumps(objects))
    done = subprocess.run(
        [str(helm_python), str(RENDERER), "--validate", str(listing)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    invalid: list[str] = json.loads(done.stdout)["invalid"]
    return invalid
