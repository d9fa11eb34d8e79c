"""The dashboard's ASGI app: the page, its script, three JSON reads and two actions.

    GET  /                 the page (server-rendered skeleton; the script fills it in)
    GET  /api/live         the newest snapshot with rates, series and the graph
    GET  /api/inventory    delayed stores, schedules, tasks, schemas
    GET  /api/lane         one dead-letter lane: ?stream=S&group=G[&id=ENTRY]
    POST /api/lane/replay  {"stream", "group", "id"?, "reasons"?}, as `runtime dlq replay`
    POST /api/lane/purge   the same selection, as `runtime dlq purge --yes`

The client and the sampler live in the lifespan: one task group owns the sampler, so
stopping the server cancels it and closes the client.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gristmill.connect import redis_client
from gristmill.errors import ConfigError
from gristmill.failures import operations
from gristmill.ui import access, page, script
from gristmill.ui.gather import Dashboard
from gristmill.ui.history import History

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from gristmill.settings import Settings
    from gristmill.ui.model import Topology

_NO_STORE = {"cache-control": "no-store"}
HISTORY_SECONDS = 300  # the throughput charts cover the last 5 minutes


class _LoopbackOnly:
    """Refuses (403) requests whose Host header the rules do not accept (DNS rebinding)."""

    def __init__(self, app: ASGIApp, rules: access.ActionRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            refused = access.read_refusal(self.rules, headers.get(b"host", b"").decode("latin-1"))
            if refused is not None:
                await PlainTextResponse(refused, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    url: str,
    settings: Settings,
    rules: access.ActionRules,
    *,
    address: str,
    streams: list[str] | None = None,
    topology: Topology | None = None,
    interval: float = 2.0,
) -> Starlette:
    """The dashboard of the server at `url`; `address` is what the page says it reads."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis_client(url, settings)
        try:
            history = History(keep=max(2, round(HISTORY_SECONDS / interval)))
            app.state.dashboard = Dashboard(
                client, settings, streams=streams, topology=topology, history=history
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(app.state.dashboard.sample_forever, interval, name="sampler")
                yield
                tasks.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(1.0, shield=True):
                await client.aclose()

    def dashboard(request: Request) -> Dashboard:
        found: Dashboard = request.app.state.dashboard
        return found

    async def home(request: Request) -> Response:
        html = page.render(address=address, rules=rules, interval=interval)
        return HTMLResponse(html, headers=_NO_STORE)

    async def live(request: Request) -> Response:
        return JSONResponse(dashboard(request).live(), headers=_NO_STORE)

    async def inventory(request: Request) -> Response:
        return JSONResponse(await dashboard(request).inventory(), headers=_NO_STORE)

    async def lane(request: Request) -> Response:
        stream, group = request.query_params.get("stream"), request.query_params.get("group")
        if not stream or not group:
            return JSONResponse({"error": "give ?stream=S&group=G"}, status_code=400)
        entry_id = request.query_params.get("id") or None
        if entry_id is not None and operations.selection_problem(entry_id, entry_id):
            return JSONResponse({"error": f"{entry_id!r} is not an entry id"}, status_code=400)
        found = await dashboard(request).lane(stream, group, entry_id)
        if isinstance(found, str):
            return JSONResponse({"error": found}, status_code=404)
        return JSONResponse(found, headers=_NO_STORE)

    async def act(request: Request) -> Response:
        if request.path_params["action"] not in ("replay", "purge"):
            return JSONResponse({"error": "no such action"}, status_code=404)
        refused = access.action_refusal(
            rules,
            request.headers.get("host", ""),
            request.headers.get("origin"),
            request.headers.get(access.TOKEN_HEADER),
        )
        if refused is not None:
            return JSONResponse({"error": refused}, status_code=403)
        try:
            body: Any = await request.json()
            stream, group = str(body["stream"]), str(body["group"])
            entry_id = body.get("id")
            start, end = (str(entry_id), str(entry_id)) if entry_id else ("-", "+")
            chosen = operations.selection(tuple(map(str, body.get("reasons") or ())), start, end)
        except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        board = dashboard(request)
        missing = await operations.missing_lane(board.redis, stream, group)
        if missing is not None:
            return JSONResponse({"error": missing}, status_code=404)
        if request.path_params["action"] == "replay":
            return JSONResponse(await board.replay(stream, group, chosen))
        return JSONResponse(await board.purge(stream, group, chosen))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "dashboard.js":
            return Response(script.SCRIPT, media_type="text/javascript")
        if name == "dashboard.css":
            return Response(page.STYLE, media_type="text/css")
        return PlainTextResponse("not found", status_code=404)

    routes = [
        Route("/", home),
        Route("/api/live", live),
        Route("/api/inventory", inventory),
        Route("/api/lane", lane),
        Route("/api/lane/{action:str}", act, methods=["POST"]),
        Route("/static/{name:str}", asset),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(_LoopbackOnly, rules=rules)
    return app
