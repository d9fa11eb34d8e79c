"""A schedule that fires every second, for the scheduler failover test."""

from __future__ import annotations

from datetime import timedelta

from gristmill import App

app = App("ticking")


@app.schedule(every=timedelta(seconds=1), queue="ticks")
async def tick() -> None:
    """One fire per second, whoever holds the scheduler lease."""
