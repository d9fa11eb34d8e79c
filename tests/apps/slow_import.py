"""An app that takes 3 s to import, like one loading many schemas: SIGTERM can land meanwhile."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gristmill import App

if TYPE_CHECKING:
    from gristmill import Context

time.sleep(3.0)

app = App("slow-import")


@app.processor(input="slow-import.in")
async def ignore(message: Any, ctx: Context) -> None:
    return None
