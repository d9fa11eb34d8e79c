"""Tasks against a real server: every state transition, with its record, history and result."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from gristmill import App, keys
from gristmill.errors import ConfigError, TaskFailed
from gristmill.failures.policy import RetryPolicy
from gristmill.settings import Settings
from gristmill.tasks.spec import Call
from tests.typed_redis import raw, xrange

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gristmill.embedded import EmbeddedServer
    from gristmill.tasks.context import TaskContext  # a hint only: tasks resolve it by name

FAST = Settings(block_ms=50, claim_idle=1.0, grace=5.0, health_port=0)
QUICK_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, jitter=0.0, max_delay=0.05)


def states(events: tuple[object, ...]) -> list[str]:
    return [getattr(event, "state", "") for event in events]


async def test_a_retried_task_goes_running_error_queued_running_done(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("work")
    runs: list[int] = []

    @app.task(queue="flaky", retry=QUICK_RETRY, ttl=60, result_ttl=120)
    async def flaky(ctx: TaskContext, word: str) -> dict[str, object]:
        """Fails on its first run."""
        runs.append(ctx.attempt)
        await ctx.report(f"attempt {ctx.attempt} of {word}")
        if ctx.attempt == 1:
            raise ValueError("first run fails")
        return {"word": word.upper(), "attempt": ctx.attempt}

    async with app.running(url=server.url, settings=FAST):
        handle = await flaky.enqueue("tea")
        assert await handle.result(timeout=10) == {"word": "TEA", "attempt": 2}
    record = await handle.record()
    assert record is not None
    assert states(record.events) == ["queued", "running", "error", "queued", "running", "done"]
    assert record.events[2].detail == "ValueError: first run fails"
    assert runs == [1, 2]
    assert (record.state, record.attempt, record.retries_used, record.retries_allowed) == (
        "done", 2, 1, 2,
    )  # fmt: skip
    assert (record.id, record.name, record.queue, record.kind) == (
        handle.id, "flaky", "flaky", "on_demand",
    )  # fmt: skip
    assert record.description == "Fails on its first run."
    assert record.created_at <= record.started_at <= record.finished_at == record.state_at
    assert record.ttl_ms == 60_000
    assert record.result_ttl_ms == 120_000
    assert record.error == "ValueError: first run fails"  # the last failure stays visible
    assert [r.detail for r in record.reports] == ["attempt 1 of tea", "attempt 2 of tea"]
    assert record.schema_id
    assert record.payload
    ttl_ms = await raw(redis, "PTTL", keys.task_record(handle.stream, handle.id))
    assert 100_000 < ttl_ms <= 120_000  # kept for result_ttl once finished


async def test_a_task_that_keeps_failing_ends_in_error_and_dead_letter(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("work")

    @app.task(queue="broken", retry=QUICK_RETRY)
    async def broken(n: int) -> None:
        raise RuntimeError(f"no luck {n}")

    async with app.running(url=server.url, settings=FAST):
        handle = await broken.enqueue(7)
        with pytest.raises(TaskFailed, match="ended error: retries_exhausted") as failed:
            await handle.result(timeout=10)
    assert failed.value.state == "error"
    record = await handle.record()
    assert record is not None
    assert states(record.events) == [
        "queued", "running", "error", "queued", "running", "error", "queued", "running", "error",
    ]  # fmt: skip
    assert record.retries_used == 2
    assert record.attempt == 3
    (dead,) = await xrange(redis, keys.dead_lane(broken.spec.stream, "tasks.broken"))
    assert dead[1][b"dl:reason"] == b"retries_exhausted"
    assert dead[1][b"task"] == f"broken/{handle.id}".encode()


async def test_a_task_past_its_ttl_expires_unrun(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")
    ran: list[str] = []

    @app.task(queue="late", ttl=0.2)
    async def late(word: str) -> None:
        ran.append(word)

    async with app.connected(url=server.url, settings=FAST):  # no workers yet
        stale = await late.enqueue("stale")
    await anyio.sleep(0.4)
    async with app.running(url=server.url, settings=FAST):
        fresh = await late.enqueue("fresh")
        assert await fresh.result(timeout=10) is None
        with pytest.raises(TaskFailed, match="ended expired"):
            await stale.result(timeout=10)
    assert ran == ["fresh"]
    record = await stale.record()
    assert record is not None
    assert states(record.events) == ["queued", "expired"]
    assert record.started_at == 0
    (dead,) = await xrange(redis, keys.dead_lane(late.spec.stream, "tasks.late"))
    assert dead[1][b"dl:reason"] == b"expired"


async def test_a_cancelled_task_never_runs(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")
    ran: list[str] = []

    @app.task(queue="maybe")
    async def maybe(word: str) -> str:
        ran.append(word)
        return word

    async with app.connected(url=server.url, settings=FAST):
        dropped = await maybe.enqueue("dropped")
        assert await dropped.cancel() is True
        assert await dropped.state() == "cancelled"
    async with app.running(url=server.url, settings=FAST):
        kept = await maybe.enqueue("kept")
        assert await kept.result(timeout=10) == "kept"
        assert await kept.cancel() is False  # done: nothing to cancel
        with pytest.raises(TaskFailed, match="ended cancelled"):
            await dropped.result(timeout=1)
    assert ran == ["kept"]
    assert (await redis.xpending(maybe.spec.stream, "tasks.maybe"))["pending"] == 0


async def test_the_same_id_is_one_task(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")
    ran: list[str] = []

    @app.task(queue="once")
    async def once(word: str) -> None:
        ran.append(word)

    async with app.running(url=server.url, settings=FAST):
        first = await once.enqueue_as("order-1", "first")
        again = await once.enqueue_as("order-1", "second")
        assert (first.created, again.created, again.id) == (True, False, "order-1")
        many = await once.enqueue_many(
            [Call({"word": "third"}, task_id="order-1"), Call({"word": "fourth"}, task_id="o-2")]
        )
        assert [h.created for h in many] == [False, True]
        await first.result(timeout=10)
        await many[1].result(timeout=10)
    assert sorted(ran) == ["first", "fourth"]
    assert await redis.xlen(once.spec.stream) == 2
    with pytest.raises(ValueError, match="'/' separates"):
        await once.enqueue_as("a/b", "x")


async def test_a_deferred_task_waits_as_todo(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")
    started: list[float] = []

    @app.task(queue="later")
    async def later() -> None:
        started.append(anyio.current_time())

    async with app.running(url=server.url, settings=FAST):
        asked = anyio.current_time()
        handle = await later.defer(1.0)
        assert await handle.state() == "todo"
        await handle.result(timeout=10)
    assert started[0] - asked >= 0.9
    record = await handle.record()
    assert record is not None
    assert states(record.events) == ["todo", "running", "done"]
    assert record.queued_at >= record.created_at + 900


async def test_many_tasks_in_one_call_per_thousand(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")

    @app.task(queue="bulk")
    async def square(n: int) -> int:
        return n * n

    async with app.running(url=server.url, settings=FAST):
        before = int((await redis.info("commandstats"))["cmdstat_evalsha"]["calls"])
        handles = await square.enqueue_many({"n": n} for n in range(2500))
        after = int((await redis.info("commandstats"))["cmdstat_evalsha"]["calls"])
        assert after - before <= 3 + 10  # 3 enqueue calls; the workers' own run meanwhile
        results = [await h.result(timeout=30) for h in handles[::250]]
    assert results == [n * n for n in range(0, 2500, 250)]


async def test_a_target_runs_only_where_it_is_served(server: EmbeddedServer, redis: Redis) -> None:
    app = App("work")
    ran: list[str] = []

    @app.task(queue="render", target="gpu")
    async def render(scene: str) -> None:
        ran.append(scene)

    async with app.running(url=server.url, settings=FAST):
        handle = await render.enqueue("teapot")
        await anyio.sleep(0.5)
        assert await handle.state() == "queued"
        assert ran == []
    assert render.spec.stream == "gm:tasks:render@gpu"
    gpu = Settings(block_ms=50, health_port=0, targets="gpu, eu")
    async with app.running(url=server.url, settings=gpu):
        await handle.result(timeout=10)
    assert ran == ["teapot"]


async def test_an_untracked_task_runs_without_a_record(
    server: EmbeddedServer, redis: Redis
) -> None:
    app = App("work")
    done = anyio.Event()

    @app.task(queue="fast", tracked=False)
    async def ping() -> None:
        done.set()

    async with app.running(url=server.url, settings=FAST):
        handle = await ping.enqueue()
        with anyio.fail_after(10):
            await done.wait()
    assert await handle.record() is None
    assert await redis.keys("*:task:*") == []


async def test_an_entry_naming_an_unknown_task_is_dead_lettered(
    server: EmbeddedServer, redis: Redis
) -> None:
    producer, worker = App("web"), App("worker")

    @producer.task(queue="shared")
    async def gone(n: int) -> None: ...

    @worker.task(queue="shared")
    async def present(n: int) -> None: ...

    async with producer.connected(url=server.url, settings=FAST):
        await gone.enqueue(1)
    async with worker.running(url=server.url, settings=FAST):
        lane = keys.dead_lane(gone.spec.stream, "tasks.shared")
        with anyio.fail_after(10):
            while not await redis.xlen(lane):
                await anyio.sleep(0.05)
    (dead,) = await xrange(redis, lane)
    assert dead[1][b"dl:reason"] == b"unknown_task"


def test_declarations_fail_clearly() -> None:
    app = App("work")

    def blocking() -> None: ...

    with pytest.raises(ConfigError, match="must be `async def`"):
        app.task()(blocking)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown keywords 'fifo_keys'"):
        app.task(fifo_keys="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl must be positive"):

        @app.task(ttl=0)
        async def never() -> None: ...

    @app.task(queue="q", batch=10)
    async def one() -> None: ...

    with pytest.raises(ConfigError, match="already has a task 'one'"):
        app.task(queue="q")(one.spec.function)
    with pytest.raises(ConfigError, match="queue 'q' has batch=10"):

        @app.task(queue="q", batch=20)
        async def two() -> None: ...


async def test_enqueue_without_a_connection_names_the_fix() -> None:
    app = App("work")

    @app.task()
    async def lonely() -> None: ...

    with pytest.raises(ConfigError, match="inside `async with app.connected"):
        await lonely.enqueue()


async def test_an_app_including_another_runs_both_apps_tasks_of_one_queue(
    server: EmbeddedServer, redis: Redis
) -> None:
    web, worker = App("web"), App("worker")

    @web.task(queue="shared")
    async def first(n: int) -> int:
        return n + 1

    @worker.task(queue="shared")
    async def second(n: int) -> int:
        return n + 2

    worker.include(web)
    assert set(worker.tasks) == {"first", "second"}
    assert [p for p in worker.processors if p.startswith("tasks.")] == ["tasks.shared"]
    async with worker.running(url=server.url, settings=FAST):
        assert await (await first.enqueue(1)).result(timeout=10) == 2
        assert await (await second.enqueue(1)).result(timeout=10) == 3
    fifo = App("fifo")

    @fifo.task(queue="shared", fifo=True)
    async def third(n: int) -> None: ...

    with pytest.raises(ConfigError, match="a queue is one kind"):
        worker.include(fifo)
    assert "third" not in worker.tasks  # refused whole
