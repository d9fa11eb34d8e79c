"""A processor with `input_format="json"` under the runtime: raw JSON entries (as a bridge writes
them) reach the handler as the input type; bad ones are dead-lettered with their own reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gristmill import App, keys
from gristmill.failures import reasons
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.testing import run_until_idle
from tests.jsonio.test_jsonformat import KINDS, Everything, Point
from tests.typed_redis import xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

FAST = Settings(block_ms=50, claim_idle=1.0, grace=5.0)


def _app() -> App:
    app = App("json", schemas=[KINDS])

    @app.processor(input="raw", output="points", input_format="json", from_beginning=True)
    async def locate(message: Everything, ctx: Context) -> Any:
        return Point(x=message.origin.x * 10, y=len(message.path))

    return app


async def test_json_entries_are_parsed_and_bad_ones_dead_lettered(
    server: EmbeddedServer, redis: Redis
) -> None:
    good = [b'{"origin": {"x": %d}, "path": [{}, {}]}' % n for n in range(5)]
    bad = {
        b"{oops": reasons.JSON_INVALID,
        b'{"origin": {"x": 1}, "surprise": true}': reasons.JSON_UNKNOWN_FIELD,
        b'{"small": "many"}': reasons.JSON_TYPE_MISMATCH,
        b"[]": reasons.JSON_INVALID,
    }
    for payload in [*good, *bad]:
        await redis.xadd("raw", {"payload": payload, "channel": "in"})
    result = await run_until_idle(_app(), url=server.url, redis=redis, settings=FAST)
    points: list[Any] = await result.published("points")
    assert [(p.x, p.y) for p in points] == [(n * 10, 2) for n in range(5)]
    dead = await xrange(redis, keys.dead_lane("raw", "json.locate"))
    assert {f[b"payload"]: f[b"dl:reason"].decode() for _, f in dead} == bad
    assert all(f[b"channel"] == b"in" for _, f in dead)  # the original fields are kept


async def test_a_protobuf_entry_in_a_json_input_is_refused(
    server: EmbeddedServer, redis: Redis
) -> None:
    await Publisher(redis).publish("raw", Point(x=1))
    await run_until_idle(_app(), url=server.url, redis=redis, settings=FAST)
    dead = await xrange(redis, keys.dead_lane("raw", "json.locate"))
    assert [f[b"dl:reason"] for _, f in dead] == [reasons.JSON_INVALID.encode()]
