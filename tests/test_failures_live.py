"""Failures in a live pipeline (issue 6, "Must show"), each with a real server and real processes.

1. fuzz: 1,200 bad entries interleaved with good ones into `runtime serve`: every bad one
   dead-lettered with its labelled reason, every good one billed once, the worker up, RSS bounded.
2. retry timing through the runtime: fail twice then succeed; `Retry(delay=...)`; exhaustion.
3. poison: an entry that `os._exit`s its worker is dead-lettered as `crash_loop` after three
   deaths while thousands of others flow exactly once.
4. replay: entries dead-lettered during an outage come back with `runtime dlq replay`; kill -9
   of the worker and of the replay at random points loses and doubles no id.
5. partitions: a cut and a half-open connection between `runtime serve` and the server (through
   tests.helpers.proxy) each end in recovery within a bound taken from the settings, directly
   and with every entry passing through the retry path (delayed store, sweeper, lease).

Runtime bugs these tests found were fixed in src (1973194, 7bc018b); the tests that showed
them stay as regression tests (dead-letter origin and run counts, a reconnect into a
half-open link, unretrieved-future errors on a cut). A bug still open is a strict xfail that
names the file and what is wrong; it fails (XPASS) once the fix lands, so the mark goes then.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import psutil
import pytest

from gristmill import App, Retry, keys
from gristmill.clock import SYSTEM_CLOCK
from gristmill.connect import CLIENT_RETRIES
from gristmill.envelope import open_fields
from gristmill.failures import reasons
from gristmill.failures.deadletter import DeadLetterRecord, parse_fields
from gristmill.failures.policy import RetryPolicy
from gristmill.pipeline.processor import RECONNECT_BACKOFF_S
from gristmill.producer import Publisher
from gristmill.settings import Settings
from gristmill.testing import run_until_idle
from gristmill.timing.sweeper import LONGEST_SLEEP_S
from tests.apps import invoicer, outage, poison_pill, retry_relay
from tests.helpers.badinput import bad_entries
from tests.helpers.ledger import Ledger, Verdict
from tests.helpers.procs import Proc, python_module, serve
from tests.helpers.proxy import Mode, TcpProxy
from tests.pipeline.messages import Invoice, Node, Order

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from redis.asyncio import Redis

    from gristmill.context import Context
    from gristmill.embedded import EmbeddedServer

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]  # `runtime serve` imports tests.apps from here
PAGE = 5000


# -- reading streams -------------------------------------------------------------------------


async def entries_of(redis: Redis, key: str) -> list[tuple[bytes, list[bytes]]]:
    """Every (entry id, flat fields) of stream `key`, oldest first."""
    found: list[tuple[bytes, list[bytes]]] = []
    start: bytes | str = "-"
    while True:
        args = (b"XRANGE", key, start, "+", "COUNT", PAGE)  # bytes command: flat field lists
        page = await redis.execute_command(*args)  # type: ignore[no-untyped-call]
        found += [(entry_id, fields) for entry_id, fields in page]
        if len(page) < PAGE:
            return found
        start = b"(" + page[-1][0]


BAD_ID = b"h:bad_id"  # a user header naming a bad entry, so the ledger can count it too


def order_id(fields: list[bytes]) -> str:
    """The id of the Order an input, retry-lane or (unwrapped) dead-letter entry carries.

    An entry that carries no Order (see `bad_order`) is known by its `h:bad_id` header.
    """
    named = dict(zip(fields[::2], fields[1::2], strict=True)).get(BAD_ID)
    if named is not None:
        return named.decode()
    return str(Order.FromString(open_fields(fields, 1 << 20).payload).id)


def bad_order(schema_id: bytes, name: str) -> list[bytes]:
    """Fields that claim an Order but do not decode (wire type 7): dead-lettered, never run."""
    return [b"schema_id", schema_id, b"payload", b"\x0f", BAD_ID, name.encode()]


async def invoice_ids(redis: Redis, stream: str) -> list[str]:
    return [
        str(Invoice.FromString(open_fields(fields, 1 << 20).payload).order_id)
        for _, fields in await entries_of(redis, stream)
    ]


async def dead_order_ids(redis: Redis, stream: str, group: str) -> list[str]:
    lane = keys.dead_lane(stream, group)
    return [order_id(parse_fields(fields).fields) for _, fields in await entries_of(redis, lane)]


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


async def unacked_order_ids(redis: Redis, stream: str, group: str) -> list[str]:
    """Orders in `stream` that `group` has not acked: never delivered, or pending."""
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(stream)}
    if group not in groups:
        return [order_id(fields) for _, fields in await entries_of(redis, stream)]
    last = _id_key(groups[group]["last-delivered-id"])
    pending = {
        record["message_id"]
        for record in await redis.xpending_range(stream, group, "-", "+", 1_000_000)
    }
    return [
        order_id(fields)
        for entry_id, fields in await entries_of(redis, stream)
        if entry_id in pending or _id_key(entry_id) > last
    ]


async def group_exists(redis: Redis, stream: str, group: str) -> bool:
    if not await redis.exists(stream):
        return False
    return any(info["name"].decode() == group for info in await redis.xinfo_groups(stream))


async def group_idle(redis: Redis, stream: str, group: str) -> bool:
    """True when `group` has read and acked every entry of `stream` (and the group exists)."""
    if not await redis.exists(stream):
        return False
    for info in await redis.xinfo_groups(stream):
        if info["name"].decode() == group:
            return not info["pending"] and not info.get("lag")
    return False


async def pipeline_idle(redis: Redis, stream: str, group: str) -> bool:
    """`stream`, the group's retry lane and its delayed store hold nothing left to do."""
    lane = keys.retry_lane(stream, group)
    if await redis.zcard(keys.delayed_store(lane)):
        return False
    if await redis.exists(lane) and not await group_idle(redis, lane, group):
        return False
    return await group_idle(redis, stream, group)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], within: float, *watched: Proc, what: str = ""
) -> None:
    """Poll `condition` every 50 ms; fail at once if a watched process exits meanwhile."""
    deadline = time.monotonic() + within
    while not await condition():
        for proc in watched:
            assert proc.alive, f"{proc.argv[-1]} exited ({proc.returncode}):\n{proc.output[-4000:]}"
        if time.monotonic() > deadline:
            outputs = "\n".join(proc.output[-3000:] for proc in watched)
            raise TimeoutError(f"{what or 'condition'} not met in {within} s\n{outputs}")
        await anyio.sleep(0.05)


def worker(url: str, target: str, **settings: str) -> Proc:
    env = {
        "GRISTMILL_REDIS_URL": url, "GRISTMILL_CLAIM_IDLE": "1", "GRISTMILL_BLOCK_MS": "100",
        "GRISTMILL_BATCH": "100", "GRISTMILL_LOG_LEVEL": "INFO",
        **{f"GRISTMILL_{name.upper()}": value for name, value in settings.items()},
    }  # fmt: skip
    return serve(target, env=env, cwd=ROOT)


async def add_entries(redis: Redis, stream: str, entries: list[list[bytes]]) -> list[bytes]:
    """XADD each entry's flat fields to `stream`, pipelined; returns their ids in order."""
    ids: list[bytes] = []
    for start in range(0, len(entries), 500):
        async with redis.pipeline(transaction=False) as pipe:
            for fields in entries[start : start + 500]:
                pipe.execute_command("XADD", stream, "*", *fields)
            ids += await pipe.execute()
    return ids


# -- 1. fuzz ---------------------------------------------------------------------------------

FUZZ_WAVES = 4
FUZZ_BAD_PER_WAVE = 300  # 1,200 bad entries in all, each followed by a good one
FUZZ_MAX_ENTRY_BYTES = 16 * 1024  # badinput's deep entries need >= 8 KB; oversize ones pass this
# Growth allowed after the first wave has warmed every code path (schemas, caches, allocator):
# three more waves of the same traffic must fit in it, so a leak of ~6 KB per bad entry fails.
FUZZ_RSS_GROWTH_BYTES = 16 * 1024 * 1024


def rss_of(proc: Proc) -> int:
    """Resident memory of the worker (one process: `runtime serve` without --workers)."""
    return int(psutil.Process(proc.pid).memory_info().rss)


@pytest.mark.slow
@pytest.mark.fault
async def test_fuzzed_bad_entries_are_dead_lettered_and_good_ones_billed_once(
    server: EmbeddedServer, redis: Redis
) -> None:
    publisher = Publisher(redis)
    order_schema = await publisher.schema_id(Order.DESCRIPTOR)
    node_schema = await publisher.schema_id(Node.DESCRIPTOR)
    total_bad = FUZZ_WAVES * FUZZ_BAD_PER_WAVE
    bad = bad_entries(
        total_bad, order_schema_id=order_schema, node_schema_id=node_schema,
        max_entry_bytes=FUZZ_MAX_ENTRY_BYTES, seed=6,
    )  # fmt: skip
    expected_reason: dict[bytes, str] = {}  # input entry id -> the reason it must get
    good_ids: dict[bytes, str] = {}  # input entry id -> order id
    rss_after_wave: list[int] = []
    peak_rss = 0
    url = server.url
    with worker(url, "tests.apps.invoicer:app", max_entry_bytes=str(FUZZ_MAX_ENTRY_BYTES)) as proc:
        await proc.wait_for_line_async("serving 1 processors", within=60)
        for wave in range(FUZZ_WAVES):
            chunk = bad[wave * FUZZ_BAD_PER_WAVE : (wave + 1) * FUZZ_BAD_PER_WAVE]
            entries: list[list[bytes]] = []
            orders = []
            for number, entry in enumerate(chunk, start=wave * FUZZ_BAD_PER_WAVE):
                order = Order(id=f"g-{number}", sku="tea", quantity=number)
                orders.append(order.id)
                entries += [entry.fields, await publisher.fields(order)]
            ids = await add_entries(redis, invoicer.INPUT, entries)
            for index, entry in enumerate(chunk):
                expected_reason[ids[2 * index]] = entry.reason
                good_ids[ids[2 * index + 1]] = orders[index]

            async def drained() -> bool:
                nonlocal peak_rss
                peak_rss = max(peak_rss, rss_of(proc))
                return await group_idle(redis, invoicer.INPUT, invoicer.GROUP)

            await wait_until(drained, 60, proc, what=f"wave {wave} drained")
            rss_after_wave.append(rss_of(proc))
        assert proc.alive, proc.output[-4000:]
        code = await proc.terminate_async()
    assert code == 0, proc.output[-4000:]

    dead = await entries_of(redis, keys.dead_lane(invoicer.INPUT, invoicer.GROUP))
    got: dict[bytes, list[str]] = {}
    runs = set()
    for _, fields in dead:
        record = parse_fields(fields)
        got.setdefault(record.origin_id.encode(), []).append(record.reason)
        runs.add(record.attempts)
    assert runs == {0}  # bad input never reaches a handler
    wrong = {
        entry_id: (reason, got.get(entry_id))
        for entry_id, reason in expected_reason.items()
        if got.get(entry_id) != [reason]
    }
    assert wrong == {}, f"{len(wrong)} bad entries without exactly their reason"
    assert set(got) == set(expected_reason), "a good entry was dead-lettered"
    assert {reason for [reason] in got.values()} <= reasons.BAD_INPUT
    billed = await invoice_ids(redis, invoicer.OUTPUT)
    ledger: Ledger[str] = Ledger()
    for order in good_ids.values():
        ledger.attempt(order)
        ledger.ack(order)
    verdict = ledger.check(observed=billed)
    assert verdict.ok, verdict.summary()
    assert verdict.duplicated == {}, verdict.summary()
    assert len(billed) == total_bad
    growth = peak_rss - rss_after_wave[0]
    log.info(
        "fuzz: %d bad + %d good; RSS after each wave %s MB, peak %.1f MB, growth %.1f MB",
        total_bad, len(good_ids), [round(r / 2**20, 1) for r in rss_after_wave],
        peak_rss / 2**20, growth / 2**20,
    )  # fmt: skip
    assert growth <= FUZZ_RSS_GROWTH_BYTES, (rss_after_wave, peak_rss)


# -- 2. retry timing through the runtime -----------------------------------------------------

# Buckets of 10 ms (a retry is released up to 10 ms late, never early) and short reads: the
# delays below are the only waits. Release times are whole milliseconds of the same clock the
# handler reads, so a gap may come out up to 1 ms under the delay.
RETRY_SETTINGS = Settings(delayed_bucket_ms=10, block_ms=50, claim_idle=5.0)
CLOCK_GRAIN_S = 0.001


class Runs:
    """What a handler saw on each run: ctx.attempt, and when the run started and ended."""

    def __init__(self) -> None:
        self.attempts: list[int] = []
        self.starts: list[float] = []
        self.ends: list[float] = []

    def gaps(self) -> list[float]:
        """From the end of each run to the start of the next (the retry's wait)."""
        return [start - end for end, start in zip(self.ends, self.starts[1:], strict=False)]


def order_ids_of(invoices: list[Any]) -> list[str]:
    return [str(invoice.order_id) for invoice in invoices]


def too_early(gaps: list[float], delays: list[float]) -> list[tuple[float, float]]:
    """The (gap, delay) pairs where a retry ran before its delay was over."""
    return [
        (gap, delay) for gap, delay in zip(gaps, delays, strict=True) if gap < delay - CLOCK_GRAIN_S
    ]


def flaky_app(runs: Runs, policy: RetryPolicy, fail: Callable[[int], None]) -> App:
    app = App("flaky")

    @app.processor(input="flaky.in", output="flaky.out", from_beginning=True, retry=policy)
    async def bill(order: Any, ctx: Context) -> Any:
        runs.attempts.append(ctx.attempt)
        runs.starts.append(time.monotonic())
        try:
            fail(ctx.attempt)
        finally:
            runs.ends.append(time.monotonic())
        return Invoice(order_id=order.id, total_cents=order.quantity)

    return app


async def test_failing_twice_then_succeeding_runs_three_times_after_the_policys_delays(
    server: EmbeddedServer, redis: Redis
) -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay=0.2, multiplier=2.0, jitter=0.0)
    runs = Runs()

    def fail_twice(attempt: int) -> None:
        if attempt <= 2:
            raise ConnectionError(f"attempt {attempt}: the gateway is down")

    await Publisher(redis).publish("flaky.in", Order(id="o-1", sku="tea", quantity=3))
    app = flaky_app(runs, policy, fail_twice)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=RETRY_SETTINGS)
    assert runs.attempts == [1, 2, 3]
    delays = [0.2, 0.4]  # initial_delay, then times multiplier; no jitter
    assert len(runs.gaps()) == len(delays)
    assert too_early(runs.gaps(), delays) == []
    assert order_ids_of(await result.published("flaky.out")) == ["o-1"]
    # the retries ran from the processor's own lane: other groups of the input saw it once
    assert await redis.xlen("flaky.in") == 1
    assert await redis.xlen(keys.retry_lane("flaky.in", "flaky.bill")) == 2
    assert await redis.xlen(keys.dead_lane("flaky.in", "flaky.bill")) == 0
    stats = result.runtime.loops[0].stats
    assert (stats.retried, stats.dead_lettered) == (2, 0)
    log.info("retry gaps %s s for delays %s s", [round(g, 3) for g in runs.gaps()], delays)


async def test_retry_with_a_delay_overrides_the_policys_backoff(
    server: EmbeddedServer, redis: Redis
) -> None:
    # the policy would wait 20 ms; the handler asks for 500 ms
    policy = RetryPolicy(max_attempts=3, initial_delay=0.02, jitter=0.0)
    runs = Runs()

    def ask_for_later(attempt: int) -> None:
        if attempt == 1:
            raise Retry(delay=0.5)

    await Publisher(redis).publish("flaky.in", Order(id="o-2", sku="tea", quantity=1))
    app = flaky_app(runs, policy, ask_for_later)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=RETRY_SETTINGS)
    assert runs.attempts == [1, 2]
    assert too_early(runs.gaps(), [0.5]) == []
    assert order_ids_of(await result.published("flaky.out")) == ["o-2"]


async def test_exhausted_retries_are_dead_lettered_with_the_attempt_count(
    server: EmbeddedServer, redis: Redis
) -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=0.05, multiplier=2.0, jitter=0.0)
    runs = Runs()

    def always(attempt: int) -> None:
        raise ValueError(f"attempt {attempt}: cannot bill")

    entry_id = await Publisher(redis).publish("flaky.in", Order(id="o-3", sku="tea", quantity=1))
    app = flaky_app(runs, policy, always)
    result = await run_until_idle(app, url=server.url, redis=redis, settings=RETRY_SETTINGS)
    assert runs.attempts == [1, 2, 3]
    assert too_early(runs.gaps(), [0.05, 0.1]) == []
    assert await result.published("flaky.out") == []
    dead = await entries_of(redis, keys.dead_lane("flaky.in", "flaky.bill"))
    assert len(dead) == 1
    record = parse_fields(dead[0][1])
    assert (record.reason, record.attempts, record.exception) == (
        reasons.RETRIES_EXHAUSTED, policy.max_attempts, "ValueError",
    )  # fmt: skip
    assert (record.origin_stream, record.origin_id) == ("flaky.in", entry_id)
    assert "attempt 3: cannot bill" in record.message
    assert order_id(record.fields) == "o-3"
    assert (await redis.xpending("flaky.in", "flaky.bill"))["pending"] == 0
    assert await redis.xlen(keys.retry_lane("flaky.in", "flaky.bill")) == 2  # two retries ran


async def test_a_retried_entry_is_dead_lettered_with_its_input_id_and_first_failure(
    server: EmbeddedServer, redis: Redis
) -> None:
    policy = RetryPolicy(max_attempts=2, initial_delay=0.3, jitter=0.0)
    runs = Runs()

    def always(attempt: int) -> None:
        raise ValueError(f"attempt {attempt}: cannot bill")

    entry_id = await Publisher(redis).publish("flaky.in", Order(id="o-4", sku="tea", quantity=1))
    app = flaky_app(runs, policy, always)
    await run_until_idle(app, url=server.url, redis=redis, settings=RETRY_SETTINGS)
    assert runs.attempts == [1, 2]
    [(_, fields)] = await entries_of(redis, keys.dead_lane("flaky.in", "flaky.bill"))
    record = parse_fields(fields)
    # what `runtime dlq show` prints: the entry to look up in the input stream, and how long
    # it has been failing (at least the 300 ms between the two runs)
    assert (record.origin_stream, record.origin_id) == ("flaky.in", entry_id)
    assert record.last_failure_ms - record.first_failure_ms >= 300 - 1


# -- 3. poison -------------------------------------------------------------------------------

POISON_STREAM_ORDERS = 4000
POISON_AT = 1500


@dataclass
class PoisonRun:
    """What a poison run left: the deaths, exit codes, the dead record and the ledger's verdict."""

    deaths: int
    codes: list[int | None]
    poison_entry: str  # its id in the input stream
    record: DeadLetterRecord
    verdict: Verdict[str]
    first_death_ms: int  # wall time at which the test saw the first worker dead


async def run_poison(redis: Redis, url: str, target: str, stream: str, group: str) -> PoisonRun:
    """Feed `stream` thousands of orders with one poison; restart the worker each time it dies."""
    orders = [
        Order(id=f"o-{n}", sku=poison_pill.POISON_SKU if n == POISON_AT else "tea", quantity=n)
        for n in range(POISON_STREAM_ORDERS)
    ]
    publisher = Publisher(redis)
    ids = await add_entries(redis, stream, [await publisher.fields(o) for o in orders])
    ledger: Ledger[str] = Ledger()
    for order in orders:
        if order.sku != poison_pill.POISON_SKU:
            ledger.attempt(order.id)
            ledger.ack(order.id)
    dead_lane = keys.dead_lane(stream, group)
    deaths = 0
    first_death_ms = 0
    codes: list[int | None] = []
    while True:  # one worker, restarted each time the poison kills it
        with worker(url, target) as proc:

            async def done_or_dead() -> bool:
                if not proc.alive:
                    return True
                return await redis.xlen(dead_lane) == 1 and await pipeline_idle(
                    redis, stream, group
                )

            try:
                await wait_until(done_or_dead, 60, what="the poison dead-lettered or a death")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}; worker output:\n{proc.output[-6000:]}") from None
            if proc.alive:
                codes.append(await proc.terminate_async())
                break
            first_death_ms = first_death_ms or SYSTEM_CLOCK.now_ms()
            codes.append(proc.returncode)
            deaths += 1
            assert deaths <= poison_pill.MAX_DELIVERIES + 2, proc.output[-4000:]
    [(_, fields)] = await entries_of(redis, dead_lane)
    record = parse_fields(fields)
    assert order_id(record.fields) == f"o-{POISON_AT}"
    verdict = ledger.check(observed=await invoice_ids(redis, poison_pill.OUTPUT_OF[stream]))
    assert verdict.ok, verdict.summary()
    assert verdict.duplicated == {}, verdict.summary()
    assert verdict.observed == POISON_STREAM_ORDERS - 1
    log.info("poison in %s: %d deaths; dead-letter record %s", stream, deaths, record)
    return PoisonRun(deaths, codes, ids[POISON_AT].decode(), record, verdict, first_death_ms)


@pytest.mark.slow
@pytest.mark.fault
async def test_a_poison_entry_is_dead_lettered_after_three_deaths_and_the_rest_flows(
    server: EmbeddedServer, redis: Redis
) -> None:
    run = await run_poison(
        redis, server.url, "tests.apps.poison_pill:app", poison_pill.INPUT, poison_pill.GROUP
    )
    assert run.deaths == poison_pill.MAX_DELIVERIES
    assert run.codes == [1] * run.deaths + [0]
    record = run.record
    assert (record.reason, record.origin_id) == (reasons.CRASH_LOOP, run.poison_entry)
    assert record.attempts == poison_pill.MAX_DELIVERIES  # the runs that killed a worker


@pytest.mark.slow
@pytest.mark.fault
async def test_a_poison_entry_that_dies_from_its_retry_lane_keeps_its_history(
    server: EmbeddedServer, redis: Redis
) -> None:
    run = await run_poison(
        redis, server.url, "tests.apps.poison_pill:late_app",
        poison_pill.LATE_INPUT, poison_pill.LATE_GROUP,
    )  # fmt: skip
    assert run.deaths == poison_pill.MAX_DELIVERIES
    assert run.codes == [1] * run.deaths + [0]
    record = run.record
    assert record.reason == reasons.CRASH_LOOP
    # the dead-letter record names the input entry, not the retry lane's copy; counts the clean
    # failure and the three fatal runs; and says it first failed before any worker died
    assert (record.origin_stream, record.origin_id) == (poison_pill.LATE_INPUT, run.poison_entry)
    assert record.attempts == 1 + poison_pill.MAX_DELIVERIES
    assert record.first_failure_ms < run.first_death_ms


async def test_dead_letter_attempts_count_handler_runs_not_deliveries(
    server: EmbeddedServer, redis: Redis
) -> None:
    runs = Runs()
    app = flaky_app(runs, RetryPolicy(max_deliveries=3), lambda attempt: None)
    publisher = Publisher(redis)
    await redis.xgroup_create("flaky.in", "flaky.bill", "$", mkstream=True)
    schema_id = await publisher.schema_id(Order.DESCRIPTOR)
    crashed = await publisher.publish("flaky.in", Order(id="o-5", sku="tea", quantity=1))
    # workers that read this entry, one after the other, and died each time before acking it
    await redis.xreadgroup("flaky.bill", "dead-1", {"flaky.in": ">"})
    for ghost in ("dead-2", "dead-3"):
        await redis.xclaim("flaky.in", "flaky.bill", ghost, 0, [crashed])
    await redis.xadd("flaky.in", {"schema_id": schema_id, "payload": b"\x0f"})  # wire type 7
    settings = Settings(delayed_bucket_ms=10, block_ms=50, claim_idle=0.2)
    await run_until_idle(app, url=server.url, redis=redis, settings=settings)
    assert runs.attempts == []  # neither entry reached the handler here
    dead = [parse_fields(f) for _, f in await entries_of(redis, "{flaky.in}:dead:flaky.bill")]
    assert {r.reason: r.attempts for r in dead} == {
        reasons.DECODE_ERROR: 0,  # never run
        reasons.CRASH_LOOP: 3,  # run by the three dead workers, not a fourth time
    }


# -- 4. replay after an outage, under kill -9 --------------------------------------------------

OUTAGE_ORDERS = 6000
BAD_EVERY = 100
REPLAY_ROUNDS = 3


async def places_of_every_id(redis: Redis) -> list[str]:
    """Each order id once per place it is in: billed, dead, or unacked on the input or lane.

    Only meaningful while nothing moves (worker and replay both killed): an id in two places is
    a duplicate in the making, an id in none is lost.
    """
    lane = keys.retry_lane(outage.INPUT, outage.GROUP)
    return [
        *await invoice_ids(redis, outage.OUTPUT),
        *await dead_order_ids(redis, outage.INPUT, outage.GROUP),
        *await unacked_order_ids(redis, outage.INPUT, outage.GROUP),
        *(await unacked_order_ids(redis, lane, outage.GROUP) if await redis.exists(lane) else []),
    ]


@pytest.mark.slow
@pytest.mark.fault
async def test_replay_after_an_outage_bills_each_entry_once_under_kill_9(
    server: EmbeddedServer, redis: Redis
) -> None:
    rng = random.Random(20261125)
    ledger: Ledger[str] = Ledger()
    publisher = Publisher(redis)
    dead_lane = keys.dead_lane(outage.INPUT, outage.GROUP)
    retry_lane = keys.retry_lane(outage.INPUT, outage.GROUP)
    target = "tests.apps.outage:app"
    env = {"GRISTMILL_REDIS_URL": server.url}
    checkpoints = 0

    async def checkpoint() -> None:
        nonlocal checkpoints
        verdict = ledger.check(observed=await places_of_every_id(redis))
        assert verdict.ok, verdict.summary()
        assert verdict.duplicated == {}, verdict.summary()
        checkpoints += 1

    replay_command = ("dlq", "replay", outage.INPUT, outage.GROUP, "--reason", "retries_exhausted")

    async def replayable_left() -> int:
        dead = await entries_of(redis, dead_lane)
        return sum(parse_fields(f).reason == reasons.RETRIES_EXHAUSTED for _, f in dead)

    await redis.set(outage.DOWN_KEY, 1)
    proc = worker(server.url, target)
    try:
        await proc.wait_for_line_async("serving 1 processors", within=60)
        orders = [Order(id=f"o-{n}", sku="tea", quantity=n) for n in range(OUTAGE_ORDERS)]
        schema_id = await publisher.schema_id(Order.DESCRIPTOR)
        entries: list[list[bytes]] = []
        bad_ids: list[str] = []
        for number, order in enumerate(orders):
            entries.append(await publisher.fields(order))
            if number % BAD_EVERY == 0:  # bad input among them: dead for good, never replayed
                bad_ids.append(f"bad-{number}")
                entries.append(bad_order(schema_id, bad_ids[-1]))
        for key in [o.id for o in orders] + bad_ids:
            ledger.attempt(key)
        await add_entries(redis, outage.INPUT, entries)
        ledger.acked |= ledger.attempted
        # the outage: everything is dead-lettered; kill -9 the worker once on the way
        kill_at = rng.randrange(100, OUTAGE_ORDERS // 2)

        async def dead_enough() -> bool:
            return await redis.xlen(dead_lane) >= kill_at

        await wait_until(dead_enough, 60, proc, what="dead letters during the outage")
        assert proc.kill9() == -9
        proc.close()
        await checkpoint()
        proc = worker(server.url, target)

        async def input_drained() -> bool:
            return await group_idle(redis, outage.INPUT, outage.GROUP)

        await wait_until(input_drained, 60, proc, what="the outage's entries dead-lettered")
        assert await redis.xlen(dead_lane) == len(entries)
        assert await replayable_left() == OUTAGE_ORDERS
        [(_, fields)] = (await entries_of(redis, dead_lane))[:1]
        first = parse_fields(fields)
        assert (first.reason, first.attempts) == (reasons.RETRIES_EXHAUSTED, 1)

        # the outage is over: replay, killing the replay and then the worker at random points
        await redis.delete(outage.DOWN_KEY)
        mid_replay_kills = 0
        for _ in range(REPLAY_ROUNDS):
            left = await replayable_left()
            moved_before = await redis.xlen(retry_lane) if await redis.exists(retry_lane) else 0
            threshold = moved_before + rng.randrange(1, max(2, left // 3))
            with python_module("gristmill", *replay_command, env=env) as replay:
                deadline = time.monotonic() + 60
                while replay.alive and await redis.xlen(retry_lane) < threshold:
                    assert time.monotonic() < deadline, replay.output
                    await anyio.sleep(0.002)
                replay.kill9()
            if await replayable_left():
                mid_replay_kills += 1
            await anyio.sleep(rng.uniform(0.0, 0.3))  # the worker bills replayed entries
            assert proc.kill9() == -9
            proc.close()
            await checkpoint()
            proc = worker(server.url, target)
        assert mid_replay_kills >= 1  # at least one replay died with entries left to move

        with python_module("gristmill", *replay_command, env=env) as finish:
            await finish.wait_for_line_async(r"^moved \d+ entries", within=60)

        async def all_billed() -> bool:
            return (
                await redis.xlen(outage.OUTPUT) >= OUTAGE_ORDERS
                and await group_idle(redis, retry_lane, outage.GROUP)
                and await group_idle(redis, outage.INPUT, outage.GROUP)
            )

        await wait_until(all_billed, 90, proc, what="every replayed entry billed")

        # an operator replays everything left: bad input fails again, once, and stops there
        dead_before = {entry_id for entry_id, _ in await entries_of(redis, dead_lane)}
        with python_module("gristmill", *replay_command[:4], env=env) as everything:
            await everything.wait_for_line_async(rf"^moved {len(bad_ids)} entries", within=60)

        async def dead_again() -> bool:
            return await redis.xlen(dead_lane) == len(bad_ids) and await group_idle(
                redis, retry_lane, outage.GROUP
            )

        await wait_until(dead_again, 60, proc, what="the replayed bad input dead again")
        assert not dead_before & {entry_id for entry_id, _ in await entries_of(redis, dead_lane)}
        assert await proc.terminate_async() == 0, proc.output[-4000:]
    finally:
        proc.close()
    billed = await invoice_ids(redis, outage.OUTPUT)
    dead = [parse_fields(fields) for _, fields in await entries_of(redis, dead_lane)]
    verdict = ledger.check(observed=billed, dead_lettered=[order_id(r.fields) for r in dead])
    assert verdict.ok, verdict.summary()
    assert verdict.duplicated == {}, verdict.summary()
    assert sorted(billed) == sorted(o.id for o in orders)
    assert verdict.dead_letter == set(bad_ids)  # the --reason filter left bad input alone
    assert {r.reason for r in dead} == {reasons.DECODE_ERROR}
    log.info(
        "replay: %d orders + %d bad, %d checkpoints, %d kills mid-replay: %s",
        OUTAGE_ORDERS, len(bad_ids), checkpoints, mid_replay_kills, verdict.summary(),
    )  # fmt: skip


# -- 5. partitions between the runtime and the server ----------------------------------------

PARTITION_SETTINGS = {
    "block_ms": "200", "socket_timeout": "1", "connect_timeout": "1", "claim_idle": "1",
    "delayed_bucket_ms": "100",
    "log_level": "WARNING",  # the retry relay logs every first run at INFO
}  # fmt: skip
PRODUCE_EVERY_S = 0.025
PRODUCE_CHUNK = 50  # 2,000 orders a second, written straight to the server (not via the proxy)
FAULT_S = {Mode.CUT: 1.5, Mode.HALF_OPEN: 3.0}  # half-open: longer than a read's timeout


TIMING_SETTINGS = ("block_ms", "socket_timeout", "connect_timeout", "claim_idle")


def reconnect_wait_bound(fault_s: float) -> float:
    """The longest reconnect backoff step a fault of `fault_s` seconds can leave in progress.

    Failed attempts that take time only slow the climb through the steps, so instant failures
    are the worst case: the step in progress at the fault's end is the first whose running sum
    reaches `fault_s`.
    """
    elapsed = 0.0
    for step in RECONNECT_BACKOFF_S:
        elapsed += step
        if elapsed >= fault_s:
            return step
    return RECONNECT_BACKOFF_S[-1]


def recovery_bound(fault_s: float) -> float:
    """Seconds from the fault's end until the output has caught up, from the settings.

    backoff step in progress + connect_timeout + one read (block_ms) + socket_timeout (a
    command sent into the fault and answered on heal) + 1.5 x claim_idle (entries a read sent
    into a half-open link delivered to us, whose reply was lost, are reclaimed after
    claim_idle by a check every claim_idle / 2) + 1 s for the batches of the backlog.
    """
    settings = {name: float(PARTITION_SETTINGS[name]) for name in TIMING_SETTINGS}
    return (
        reconnect_wait_bound(fault_s) + settings["connect_timeout"]
        + settings["block_ms"] / 1000 + settings["socket_timeout"]
        + 1.5 * settings["claim_idle"] + 1.0
    )  # fmt: skip


class Producer:
    """Writes orders straight to the server (not through the proxy) until stopped; a ledger."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.publisher = Publisher(redis)
        self.ledger: Ledger[str] = Ledger()
        self.produced = 0
        self.stopped = anyio.Event()

    async def run(self) -> None:
        while not self.stopped.is_set():
            numbers = range(self.produced, self.produced + PRODUCE_CHUNK)
            orders = [Order(id=f"o-{n}", sku="tea", quantity=n) for n in numbers]
            for order in orders:
                self.ledger.attempt(order.id)
            fields = [await self.publisher.fields(order) for order in orders]
            await add_entries(self.redis, invoicer.INPUT, fields)
            for order in orders:
                self.ledger.ack(order.id)
            self.produced += PRODUCE_CHUNK
            await anyio.sleep(PRODUCE_EVERY_S)


async def fault_then_recovery(
    redis: Redis,
    proxy: TcpProxy,
    producer: Producer,
    proc: Proc,
    mode: Mode,
    within: float,
    before_heal: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Fault the proxy for FAULT_S[mode], heal it; seconds to the first output and to catch-up.

    Caught up: every order produced before the heal is billed.
    """

    before = producer.produced

    async def flowing() -> bool:
        return await redis.xlen(invoicer.OUTPUT) >= before and producer.produced > before

    await wait_until(flowing, 30, proc, what="the output keeping up before the fault")
    await anyio.sleep(0.5)
    proxy.mode = mode
    await anyio.sleep(FAULT_S[mode])
    before_heal()
    proxy.mode = Mode.PASS
    healed = time.monotonic()
    billed_at_heal = await redis.xlen(invoicer.OUTPUT)
    due = producer.produced
    first_output = 0.0

    async def caught_up() -> bool:
        nonlocal first_output
        billed = await redis.xlen(invoicer.OUTPUT)
        if not first_output and billed > billed_at_heal:
            first_output = time.monotonic() - healed
        return bool(billed >= due)

    await wait_until(caught_up, within, proc, what=f"the output caught up after {mode.name}")
    return first_output, time.monotonic() - healed


def sweeper_bound() -> float:
    """Extra seconds when every order also passes through the delayed store and the sweeper.

    The sweeper's lease lapses in a fault; after the heal the old lease expires (lease_ttl) and
    the next try (every ttl / 3) takes it, after any redis-py command caught in the fault has
    timed out (socket_timeout per try, 1 + CLIENT_RETRIES tries); a wake published while its
    subscription was down is lost, so it may sleep its longest sleep once; a retry is released
    up to one bucket (delayed_bucket_ms) late.
    """
    ttl_s = Settings().lease_ttl_ms / 1000
    socket_timeout = float(PARTITION_SETTINGS["socket_timeout"])
    bucket_s = float(PARTITION_SETTINGS["delayed_bucket_ms"]) / 1000
    return (
        ttl_s * 4 / 3 + socket_timeout * (1 + CLIENT_RETRIES) + LONGEST_SLEEP_S + bucket_s
        + retry_relay.RETRY_DELAY_S
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.fault
@pytest.mark.parametrize(
    ("target", "group", "extra_bound"),
    [
        pytest.param("tests.apps.invoicer:app", invoicer.GROUP, 0.0, id="direct"),
        pytest.param(
            "tests.apps.retry_relay:app", retry_relay.GROUP, sweeper_bound(), id="via-retry"
        ),
    ],
)
async def test_cut_and_half_open_links_recover_within_the_bound_and_lose_nothing(
    server: EmbeddedServer, redis: Redis, target: str, group: str, extra_bound: float
) -> None:
    producer = Producer(redis)
    recoveries: dict[Mode, tuple[float, float]] = {}
    bounds = {mode: recovery_bound(fault_s) + extra_bound for mode, fault_s in FAULT_S.items()}
    async with TcpProxy(server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with worker(url, target, **PARTITION_SETTINGS) as proc:

            async def reading() -> bool:
                return await group_exists(redis, invoicer.INPUT, group)

            await wait_until(reading, 60, proc, what="the worker reading")
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(producer.run)
                for mode in FAULT_S:
                    recoveries[mode] = await fault_then_recovery(
                        redis, proxy, producer, proc, mode, within=30
                    )
                producer.stopped.set()

            async def drained() -> bool:
                return await pipeline_idle(redis, invoicer.INPUT, group)

            await wait_until(drained, 30, proc, what="the last orders billed")
            assert await proc.terminate_async() == 0, proc.output[-4000:]
    verdict = producer.ledger.check(observed=await invoice_ids(redis, invoicer.OUTPUT))
    log.info(
        "partitions (%s): %s; recoveries (first output, caught up) s: %s; bounds s: %s",
        target, verdict.summary(),
        {mode.name: (round(a, 2), round(b, 2)) for mode, (a, b) in recoveries.items()},
        {mode.name: round(bound, 2) for mode, bound in bounds.items()},
    )  # fmt: skip
    assert verdict.ok, verdict.summary()
    assert verdict.duplicated == {}, verdict.summary()
    incidents = sum("server trouble" in line for line in proc.lines)
    assert incidents >= len(FAULT_S)  # each fault reached the runtime
    late = {mode.name: caught for mode, (_, caught) in recoveries.items() if caught > bounds[mode]}
    assert late == {}, bounds


class StrandingProxy(TcpProxy):
    """A proxy whose heal after HALF_OPEN is only for new connections.

    Bytes held during the fault stay held for good (until the proxy closes): like a firewall or
    load balancer that lost the state of the flows it saw during a partition and drops their
    packets without a reset, while new connections go through.
    """

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.stranded_until = 0.0  # chunks that arrived before this monotonic time never move

    async def _wait_until_forwardable(self, arrived: float) -> None:
        await super()._wait_until_forwardable(arrived)
        while arrived < self.stranded_until and self.mode is not Mode.CUT:
            await self._changed.wait()  # CUT: the proxy is closing; let the pump end


@pytest.mark.slow
@pytest.mark.fault
async def test_a_reconnect_made_into_a_half_open_link_gives_up_and_tries_again(
    server: EmbeddedServer, redis: Redis
) -> None:
    producer = Producer(redis)
    async with StrandingProxy(server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        with worker(url, "tests.apps.invoicer:app", **PARTITION_SETTINGS) as proc:

            async def reading() -> bool:
                return await group_exists(redis, invoicer.INPUT, invoicer.GROUP)

            await wait_until(reading, 60, proc, what="the worker reading")

            def strand() -> None:
                proxy.stranded_until = time.monotonic()

            stuck: TimeoutError | None = None
            async with anyio.create_task_group() as group:
                group.start_soon(producer.run)
                try:
                    # the read times out after block_ms + socket_timeout and the runtime
                    # reconnects while the fault lasts: that connection is stranded
                    await fault_then_recovery(
                        redis, proxy, producer, proc, Mode.HALF_OPEN,
                        within=recovery_bound(FAULT_S[Mode.HALF_OPEN]), before_heal=strand,
                    )  # fmt: skip
                except TimeoutError as exc:
                    stuck = exc  # raised below, outside the task group (not as a group)
                finally:
                    producer.stopped.set()
            if stuck is not None:
                raise stuck

            async def drained() -> bool:
                return await group_idle(redis, invoicer.INPUT, invoicer.GROUP)

            await wait_until(drained, 30, proc, what="the last orders billed")
            assert await proc.terminate_async() == 0, proc.output[-4000:]
    verdict = producer.ledger.check(observed=await invoice_ids(redis, invoicer.OUTPUT))
    assert verdict.ok, verdict.summary()
    assert verdict.duplicated == {}, verdict.summary()


@pytest.mark.fault
async def test_a_cut_connection_logs_no_unretrieved_future_errors(
    server: EmbeddedServer, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from gristmill.runtime import Runtime  # in this process: its asyncio log is caplog's

    producer = Producer(redis)
    settings = Settings(block_ms=200, socket_timeout=1.0, connect_timeout=1.0, claim_idle=1.0)
    async with TcpProxy(server.port) as proxy:
        runtime = Runtime(invoicer.app, settings, f"redis://127.0.0.1:{proxy.port}/0")
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            async with anyio.create_task_group() as group:
                group.start_soon(runtime.run)
                group.start_soon(producer.run)
                await runtime.wait_ready()
                for _ in range(3):  # cut it a few times mid-load
                    await anyio.sleep(0.3)
                    proxy.mode = Mode.CUT
                    await anyio.sleep(0.2)
                    proxy.mode = Mode.PASS
                producer.stopped.set()

                async def drained() -> bool:
                    return await group_idle(redis, invoicer.INPUT, invoicer.GROUP)

                await wait_until(drained, 30, what="the orders billed after the cuts")
                runtime.stop()
            gc.collect()  # an abandoned future logs when it is collected
    assert runtime.loops[0].stats.incidents >= 1  # the cuts reached the processor
    unretrieved = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unretrieved == []
