"""An app whose module loads the .proto named by BAD_PROTO at import (missing or invalid)."""

from __future__ import annotations

import os

from gristmill import App, load_proto

SCHEMA = load_proto(os.environ["BAD_PROTO"])
app = App("bad", schemas=[SCHEMA])
