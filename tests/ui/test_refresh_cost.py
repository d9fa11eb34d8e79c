"""A refresh costs the server a bounded, linear number of commands; pages cost nothing.

Counted by the server (tests/ui/refresh_cost.py): commands from INFO commandstats, round
trips from INFO stats total_reads_processed. `take_snapshot` sends one pipeline per kind of
read (streams, groups, delayed stores, buckets, leases) whatever their number: commands grow by
four per stream and four per group, round trips not with either (a big pipeline may reach the
server in a few reads of its input buffer, hence a small allowance, not a per-stream count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gristmill.settings import load_settings
from gristmill.ui.gather import Dashboard
from tests.ui.refresh_cost import Cost, counted, fill, refresh_cost

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis


async def _cost(redis: Redis, streams: int, groups: int) -> Cost:
    await redis.flushall()
    await fill(redis, streams, groups)
    dashboard = Dashboard(redis, load_settings())
    await dashboard.refresh()  # the connection is open before counting
    return await refresh_cost(redis, dashboard)


async def test_the_counting_sees_one_command_and_one_round_trip_per_ping(redis: Redis) -> None:
    async def ping_twice() -> None:
        await redis.ping()
        await redis.ping()

    cost = await counted(redis, ping_twice)
    assert (cost.commands, cost.round_trips) == (2, 2)


async def test_refresh_cost_is_linear_in_streams_and_groups(
    redis: Redis, record_property: Callable[[str, object], None]
) -> None:
    empty = await _cost(redis, 0, 3)
    ten = await _cost(redis, 10, 3)
    hundred = await _cost(redis, 100, 3)
    hundred_single = await _cost(redis, 100, 1)
    record_property("seconds_per_refresh_100x3", hundred.seconds)
    per_stream = (ten.commands - empty.commands) / 10
    assert per_stream == 4 + 4 * 3  # XINFO STREAM/GROUPS, EXISTS, XLEN; 4 per group
    assert hundred.commands - empty.commands == 100 * per_stream  # linear, nothing more
    assert hundred.commands - hundred_single.commands == 100 * 2 * 4  # 4 per extra group
    assert empty.round_trips <= 6  # TIME, SCAN, SMEMBERS, the lease pipeline
    assert ten.round_trips - empty.round_trips <= 4  # the streams' and the groups' pipelines
    assert hundred.round_trips - empty.round_trips <= 12  # 1,600 commands, still not per stream
    assert hundred_single.round_trips <= hundred.round_trips  # groups share a pipeline


async def test_pages_read_the_kept_snapshot_and_cost_the_server_nothing(redis: Redis) -> None:
    await fill(redis, 20, 3)
    dashboard = Dashboard(redis, load_settings())
    await dashboard.refresh()
    await dashboard.refresh()

    async def fifty_pages() -> None:
        for _ in range(50):
            view = dashboard.live()
            assert view["totals"]["groups"] == 60

    cost = await counted(redis, fifty_pages)
    assert (cost.commands, cost.round_trips) == (0, 0)


async def test_pages_asking_for_the_inventory_share_one_reading(redis: Redis) -> None:
    await fill(redis, 5, 1)
    dashboard = Dashboard(redis, load_settings())
    first = await counted(redis, dashboard.inventory)
    assert first.commands > 0
    again = await counted(redis, dashboard.inventory)
    assert (again.commands, again.round_trips) == (0, 0)
