"""The `many` scenario end to end on a small count: every figure is measured, none missing,
and the load it sends all comes out (a bench that lost entries would time a wrong thing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench.scenarios import many

if TYPE_CHECKING:
    from gristmill.embedded import EmbeddedServer


@pytest.mark.slow
def test_a_few_processors_are_measured_idle_and_under_load(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(many, "COUNTS", (3,))
    monkeypatch.setattr(many, "IDLE_S", 0.5)
    monkeypatch.setattr(many, "SETTLE_S", 0.2)
    monkeypatch.setattr(many, "LOAD_ENTRIES", 600)

    (row,) = many.run(server.url, 0)

    assert "note" not in row, row
    assert row["processors"] == 3
    assert isinstance(row["connections"], int)
    assert row["connections"] >= 1  # reading, or parked beside the watcher's connection
    assert isinstance(row["load_connections"], int)
    assert row["load_connections"] >= 1
    assert isinstance(row["rss_mb"], float)
    assert row["rss_mb"] > 0
    assert isinstance(row["first_entry_ms"], int)
    assert 0 <= row["first_entry_ms"] < 5000
    assert isinstance(row["msgs_per_s"], int)
    assert row["msgs_per_s"] > 0
