"""Tasks inside an ASGI app: the workers run in the web app's own event loop (its lifespan).

uvicorn services.web_asgi:web --port 8000
curl 'localhost:8000/greet?name=Ada'     ->  {"task": "...", "result": "Hello, Ada!"}
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.mailer import app, render_greeting

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request


@contextlib.asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    async with app.running():  # the task workers start and drain with the web app
        yield


async def greet(request: Request) -> JSONResponse:
    handle = await render_greeting.enqueue(request.query_params.get("name", "world"))
    return JSONResponse({"task": handle.id, "result": await handle.result(timeout=10)})


web = Starlette(routes=[Route("/greet", greet)], lifespan=lifespan)
