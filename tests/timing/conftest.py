"""Run the timing tests against another server binary: TIMING_TEST_SERVER=/usr/bin/redis-server
(Debian's Redis 7.0, the oldest server gristmill supports). Unset: the session's usual server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gristmill.embedded import EmbeddedServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    binary = os.environ.get("TIMING_TEST_SERVER")
    with EmbeddedServer.start(
        tmp_path_factory.mktemp("server"), binary=Path(binary) if binary else None
    ) as running:
        yield running
