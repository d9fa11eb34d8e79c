"""An app with two schemas; the second's field type comes from STARTUP_SECOND_TYPE, so a test
can make it incompatible with what the registry already holds."""

from __future__ import annotations

import os
from typing import Any

from gristmill import App, SchemaBuilder

_first = SchemaBuilder("startup/first.proto", package="startup")
_first.message("First").field("id", 1, "string")
_second = SchemaBuilder("startup/second.proto", package="startup")
_second.message("Second").field("n", 1, os.environ.get("STARTUP_SECOND_TYPE", "int64"))

app = App("startup", schemas=[_first.build(), _second.build()])


@app.processor(input="startup.in")
async def noop(message: Any, ctx: Any) -> None:
    return None
