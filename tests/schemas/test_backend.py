"""The start-up check on the protobuf backend and version."""

from __future__ import annotations

import pytest

from gristmill.errors import ConfigError
from gristmill.schemas.backend import require_upb


def test_this_environment_passes() -> None:
    require_upb()


@pytest.mark.parametrize(
    ("backend", "version", "problem"),
    [
        ("python", "7.34.0", "backend"),
        ("cpp", "7.34.0", "backend"),
        ("upb", "6.33.4", "older than 6.33.5"),
        ("upb", "5.29.3", "older than 6.33.5"),
    ],
)
def test_a_wrong_backend_or_old_version_is_refused(
    backend: str, version: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        require_upb(backend, version)


@pytest.mark.parametrize("version", ["6.33.5", "6.34.0", "7.36.2", "7.40.0rc1"])
def test_recent_versions_pass(version: str) -> None:
    require_upb("upb", version)
