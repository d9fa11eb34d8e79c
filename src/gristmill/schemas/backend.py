"""The start-up check on the protobuf runtime that decodes untrusted payloads."""

from __future__ import annotations

import re

import google.protobuf
from google.protobuf.internal import api_implementation

from gristmill.errors import ConfigError

# 6.33.5 carries the 2025-2026 fixes for recursion and resource exhaustion in decoding
MIN_PROTOBUF = (6, 33, 5)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def require_upb(backend: str | None = None, version: str | None = None) -> None:
    """Refuse to start unless protobuf runs on upb, at version 6.33.5 or later.

    The pure-Python backend had recursion CVEs, and older versions lack their fixes.

    Raises:
        ConfigError: If the backend or the version is wrong (the message names the fix).
    """
    backend = api_implementation.Type() if backend is None else backend
    version = google.protobuf.__version__ if version is None else version
    if backend != "upb":
        raise ConfigError(
            f"protobuf runs on its {backend!r} backend; gristmill needs 'upb': unset "
            "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION and install the protobuf wheel for this "
            "platform"
        )
    if _version_tuple(version) < MIN_PROTOBUF:
        raise ConfigError(
            f"protobuf {version} is older than {'.'.join(map(str, MIN_PROTOBUF))}: "
            "pip install -U 'protobuf>=6.33.5'"
        )
