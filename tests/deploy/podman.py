"""Podman for the container tests: installed when missing, a local base image, the project image.

No container registry is reachable where CI runs, so the base image is made from Debian
packages (mmdebstrap, with the machine's own apt sources) and imported into podman's store; it
is kept there, so later runs on the same machine skip that step. crun refuses this machine's
hybrid cgroups and higher ulimits are refused, hence containers.conf (runc, capped ulimits).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
BASE_IMAGE = "localhost/debian-python:bookworm"
IMAGE = "localhost/gristmill:ci"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
# podman runs the containers, mmdebstrap makes the base, runc is the runtime containers.conf
# names; buildah and uidmap complete what podman build needs.
APT_PACKAGES = ("podman", "buildah", "mmdebstrap", "runc", "uidmap")
TOOLS = ("podman", "mmdebstrap", "runc")


class ContainerSetupError(RuntimeError):
    """Raised when the machine cannot be made to build or run containers."""


def _run(argv: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise ContainerSetupError(
            f"{' '.join(argv[:3])}... exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done.stdout


def ensure_tools() -> None:
    """apt-get install podman and friends unless they are all there already (idempotent)."""
    if all(shutil.which(tool) for tool in TOOLS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ContainerSetupError(f"need {', '.join(TOOLS)}: install {' '.join(APT_PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = "-o", "DPkg::Lock::Timeout=600"  # another apt-get on this machine: wait for it
    _run(["apt-get", *lock, "update", "-q"], timeout=900, env=env)
    _run(
        ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
        timeout=900,
        env=env,
    )


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with this suite's containers.conf."""
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )
    if check and done.returncode != 0:
        raise ContainerSetupError(
            f"podman {' '.join(args[:4])} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def ensure_base_image() -> float:
    """Make the local Debian base with python3 unless it exists; the seconds it took (0 if kept)."""
    if image_exists(BASE_IMAGE):
        return 0.0
    sources = next((path for path in APT_SOURCES if path.is_file()), None)
    if sources is None:
        raise ContainerSetupError(f"no apt sources at {' or '.join(map(str, APT_SOURCES))}")
    started = time.monotonic()
    with tempfile.TemporaryFile() as strap_log:  # a file: a full stderr pipe cannot block it
        strap = subprocess.Popen(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                "-",
                str(sources),
            ],
            stdout=subprocess.PIPE,
            stderr=strap_log,
        )
        assert strap.stdout is not None
        with strap.stdout:
            imported = subprocess.run(
                ["podman", "import", "-", BASE_IMAGE],
                stdin=strap.stdout,
                capture_output=True,
                timeout=600,
                env=podman_env(),
                check=False,
            )
        strap.wait(timeout=60)
        strap_log.seek(0)
        strap_err = strap_log.read().decode(errors="replace")
    if strap.returncode != 0 or imported.returncode != 0:
        raise ContainerSetupError(
            f"base image: mmdebstrap exited {strap.returncode}, podman import "
            f"{imported.returncode}:\n{strap_err[-2000:]}\n{imported.stderr.decode()[-2000:]}"
        )
    return time.monotonic() - started


@dataclass(frozen=True)
class Build:
    image: str
    seconds: float
    size_bytes: int


def build_image(tag: str = IMAGE) -> Build:
    """`podman build` the project's Dockerfile on the local base, pip trusting the host's CAs."""
    started = time.monotonic()
    podman(
        "build",
        "--format",
        "docker",  # keeps HEALTHCHECK, which the OCI format has no field for
        "--build-arg",
        f"BASE={BASE_IMAGE}",
        "--secret",
        f"id=cabundle,src={CA_BUNDLE}",
        "--tag",
        tag,
        str(ROOT),
        timeout=900,
    )
    seconds = time.monotonic() - started
    size = podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
    return Build(tag, seconds, int(size))
