"""An app with one bridge, for the fault tests: `in` -> `ingest`; BRIDGE_REDUNDANT=1 for N of N."""

from __future__ import annotations

import os

from gristmill import App

app = App("bridged")
app.bridge(channel="in", stream="ingest", redundant=os.environ.get("BRIDGE_REDUNDANT") == "1")
