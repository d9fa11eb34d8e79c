"""Least-privilege ACL users, derived from what an App declares and from keys.py (no I/O).

    runtime acl services.orders:app       ->  ACL SETUSER orders reset on ... ~orders.placed ...

A service's user may send the commands its runtime sends (its own, and those its Lua scripts
call: a script's commands are checked against the caller's ACL) to the keys it touches: its
inputs and their lanes, its outputs, the delayed stores of its own lanes, the schema registry
entries of the messages it declares, and the delayed targets set. It may not FLUSHALL, destroy
a group, or write another service's streams. An app with tasks also gets the scheduler's lease,
the schedules, and every task queue's stream, records and fire markers (`gm:tasks:*`): its
runtime may win the scheduler lease and then fires every schedule, whatever its queue.

The sweeper (moving due delayed entries into their streams) is one leader for the whole
deployment: it writes every service's lanes, so it gets its own user (`sweeper_grant`) and its
own process (`runtime sweep`), and services under a service user run with
GRISTMILL_SWEEPER=false.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gristmill import keys
from gristmill.observe.snapshot import LEASE_ROLES
from gristmill.tasks.fifo import lease_role

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from gristmill.app import App

# What each part of the runtime sends, command by command (`+@stream` would also grant
# XGROUP DESTROY, XDEL and XTRIM). Each line names the code that sends it.
CONNECTION = (
    "ping",  # redis-py's health check
    "client|setname",  # every connection names itself (CLIENT LIST shows the processor)
    "client|setinfo",  # redis-py announces its library on connect
    "client|id",  # pipeline/resp.py: the reader's id, for CLIENT UNBLOCK at drain
    "select",  # a URL with a /db
)
SCRIPTS = ("evalsha", "script|load")  # scripts/__init__.py and the commit connection
REGISTRY = (
    "hget", "lrange", "get",  # schemas/registry.py: records, versions, compatibility mode
    "lpos", "llen", "hsetnx", "rpush", "sadd", "incr",  # register_schema.lua
)  # fmt: skip
PROCESSOR = (
    "xreadgroup", "xgroup|create", "xpending", "xclaim", "xrange",  # pipeline/consume.py
    "xadd", "xack",  # commit_batch.lua (xpending too); keep_claimed.lua: xpending, xclaim
    "type",  # commit_batch.lua checks every key's type before its first write
    "incr", "rpush", "zadd", "zrange", "publish",  # lib/delayed_add.lua: retries, requeues
    "hget", "hlen", "hset",  # lib/delayed_add.lua: the compact store's schema-id numbers
    "sadd",  # timing/delayed.py register_targets: the sweeper learns the processor's lanes
    "client|unblock",  # runtime.py: a drain wakes the blocked reader; parking.py: the watcher
    "xrevrange", "xread",  # pipeline/parking.py: a last look before parking, the watcher's read
    "xinfo|consumers", "xgroup|delconsumer",  # forget_consumer.lua: idle consumers
    "cluster|slots",  # pipeline/session.py: on a cluster, the slot map
    "role", "wait",  # pipeline/publish.py: a cluster write-ahead with GRISTMILL_WAIT_REPLICAS
)  # fmt: skip
TASKS = (  # gristmill.tasks: enqueue, start, the commit's record op, reports, results, cancel
    "exists", "hset", "xadd", "set",  # task_enqueue.lua (SET NX: a schedule's fire marker)
    "hmget", "hincrby", "hsetnx",  # task_start.lua
    "hget", "hgetall", "pexpire",  # commit_batch.lua's record op, handle.record(), task_cancel
    "sadd",  # the task queues set, so `runtime tasks` finds the records
)  # fmt: skip
LEASE = ("exists", "incrby", "set", "get", "pexpire", "del")  # timing/leader.py, lease_*.lua
SCHEDULER = (  # tasks/scheduler.py: the lease, the schedules, and firing any of them
    *LEASE, "smembers", "hgetall", "hset", "hsetnx", "hincrby", "sadd",  # tasks/schedules.py
)  # fmt: skip
FIFO = ("xautoclaim",)  # a FIFO queue's new lease holder claims every pending entry
RETENTION = ("exists", "xinfo|groups", "xlen", "xrange", "xrevrange", "xtrim")  # trim_consumed
TICKER = ("xadd",)
BRIDGE = (  # bridges/pubsub.py: its lease (single mode), its subscription, its write scripts
    *LEASE, "subscribe", "psubscribe",
    "xadd", "get", "set",  # bridge_write.lua: the lease token, or on a cluster the fence
    "hexists", "hsetnx", "pexpire", "time",  # bridge_dedup.lua: the redundant mode's window
)  # fmt: skip
SWEEPER = (
    "exists", "incrby", "set", "get", "pexpire", "del",  # timing/leader.py, lease_*.lua
    "smembers",  # the delayed targets set
    "subscribe", "unsubscribe",  # the wake channel
    "time", "type", "zrange", "zrangebyscore", "zrem", "lrange", "ltrim", "xadd",  # sweep.lua
    "hget",  # delayed_sweep.lua: a compact entry's schema id, stored once per store
)  # fmt: skip
OBSERVE = (  # telemetry/hosting.py: the metrics gauges' snapshot of the service's own keys
    "time", "exists", "xlen", "xinfo|stream", "xinfo|groups", "xinfo|consumers", "xpending",
    "zcard", "zrange", "llen",
)  # fmt: skip
LEASE_READ = ("get", "pttl")  # the snapshot's lease holders; read-only key patterns (%R~)


@dataclass(frozen=True)
class Grant:
    """What one user may do: commands, key patterns and pub/sub channels, each sorted."""

    commands: tuple[str, ...]
    keys: tuple[str, ...]
    channels: tuple[str, ...]
    read_keys: tuple[str, ...] = ()  # read-only patterns (`%R~`): lease keys a service watches


def escape_glob(name: str) -> str:
    """`name` as an ACL pattern that matches it alone (`*`, `?`, `[`, `]`, `\\` escaped)."""
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in name)


def _grant(commands: Iterable[str], names: Iterable[str], channels: Iterable[str]) -> Grant:
    return Grant(tuple(sorted(set(commands))), tuple(sorted(set(names))), tuple(sorted(channels)))


def _store_patterns(stream: str) -> list[str]:
    store = escape_glob(keys.delayed_store(stream))  # buckets, sequence and fence are store:*
    return [store, f"{store}:*"]


def registry_keys(app: App, prefix: str) -> list[str]:
    """The registry keys of the messages `app` declares (its `schemas=`), escaped.

    An app that declares none may publish any message type: it gets every subject's keys.
    """
    names = [escape_glob(keys.schemas(prefix)), escape_glob(keys.subjects(prefix)),
             escape_glob(keys.schemas_epoch(prefix))]  # fmt: skip
    if not app.schemas:
        return [
            *names,
            escape_glob(keys.subject_versions("", prefix)) + "*",
            escape_glob(keys.subject_compatibility("", prefix)) + "*",
        ]
    for schema in app.schemas:
        for message in schema.message_names():
            names.append(escape_glob(keys.subject_versions(message, prefix)))
            names.append(escape_glob(keys.subject_compatibility(message, prefix)))
    return names


def service_grant(app: App, prefix: str = keys.DEFAULT_PREFIX) -> Grant:
    """The user of `app`'s processors and tickers, run with GRISTMILL_SWEEPER=false."""
    commands = [*CONNECTION, *SCRIPTS, *REGISTRY, *OBSERVE, *LEASE_READ]
    names = registry_keys(app, prefix)
    channels: list[str] = []
    for spec in app.processors.values():
        commands += PROCESSOR
        if spec.maxlen or spec.min_age:
            commands += RETENTION
        names += [escape_glob(stream) for stream in spec.outputs + spec.side_outputs]
        for stream in spec.inputs:
            lane = keys.retry_lane(stream, spec.group)
            names += [escape_glob(stream), escape_glob(lane)]
            names.append(escape_glob(keys.dead_lane(stream, spec.group)))
            names += _store_patterns(lane)
        names.append(escape_glob(keys.delayed_targets(prefix)))
        channels = [escape_glob(keys.delayed_wake(prefix))]
    for task in app.tasks.values():  # enqueued from here, whether or not it runs here
        commands += TASKS
        for stream in task.spec.streams:
            names += [escape_glob(stream), escape_glob(keys.slot_prefix(stream)) + ":task:*"]
            names += _store_patterns(stream)  # defer() parks the task in the queue's store
        names += [escape_glob(keys.task_queues(prefix)), escape_glob(keys.delayed_targets(prefix))]
        if task.spec.fifo:  # tasks/fifo.py: the queue's lease, and taking over its entries
            commands += (*FIFO, *LEASE)
            for stream in task.spec.streams:
                role = lease_role(stream)
                names += [escape_glob(keys.lease(role, prefix)),
                          escape_glob(keys.lease_epoch(role, prefix))]  # fmt: skip
        channels = [escape_glob(keys.delayed_wake(prefix))]
    if app.tasks:  # its runtime competes to fire schedules: every task queue may be a target
        commands += SCHEDULER
        names += [escape_glob(keys.lease("scheduler", prefix)),
                  escape_glob(keys.lease_epoch("scheduler", prefix)),
                  escape_glob(keys.schedules(prefix)), escape_glob(keys.schedule("", prefix)) + "*",
                  escape_glob(keys.task_queue("", None, prefix)) + "*",
                  "{" + escape_glob(keys.task_queue("", None, prefix)) + "*"]  # fmt: skip
    for ticker in app.tickers.values():
        commands += TICKER
        names += [escape_glob(stream) for stream in ticker.outputs]
    for bridge in app.bridges.values():
        commands += BRIDGE
        role = keys.bridge_role(bridge.name)
        names += [escape_glob(bridge.stream), escape_glob(keys.lease(role, prefix)),
                  escape_glob(keys.lease_epoch(role, prefix)),
                  escape_glob(keys.bridge_fence(bridge.stream)),
                  escape_glob(keys.bridge_seen(bridge.stream)),  # declared to the script
                  escape_glob(keys.bridge_seen(bridge.stream)) + ":*"]  # fmt: skip
        # a PSUBSCRIBE pattern is matched literally against the user's channel patterns
        channels.append(escape_glob(bridge.channel) if bridge.channel else str(bridge.pattern))
    # read-only: the lease holders, and the lanes of every group on the streams it touches
    # (the metrics snapshot reports downstream groups' lag and dead letters on its outputs)
    read = [escape_glob(keys.lease(role, prefix)) for role in LEASE_ROLES]
    read += [
        escape_glob(keys.slot_prefix(stream)) + ":*"
        for spec in app.processors.values()
        for stream in spec.inputs + spec.outputs + spec.side_outputs
    ]
    return replace(_grant(commands, names, channels), read_keys=tuple(sorted(set(read))))


def sweeper_grant(apps: Sequence[App], prefix: str = keys.DEFAULT_PREFIX) -> Grant:
    """The user of the one sweeper serving `apps`: their lanes and inputs' delayed stores.

    An input's own store is there for `Publisher.schedule(input, ...)`: producers schedule
    into the streams services read.
    """
    names = [
        escape_glob(keys.lease("sweeper", prefix)),
        escape_glob(keys.lease_epoch("sweeper", prefix)),
        escape_glob(keys.delayed_targets(prefix)),
    ]
    for app in apps:
        for spec in app.processors.values():
            for stream in spec.inputs:
                for target in (stream, keys.retry_lane(stream, spec.group)):
                    names += [escape_glob(target), *_store_patterns(target)]
    commands = [*CONNECTION, *SCRIPTS, *SWEEPER]
    return _grant(commands, names, [escape_glob(keys.delayed_wake(prefix))])


def setuser_line(user: str, grant: Grant, password: str | None = None) -> str:
    """One `ACL SETUSER` command: `reset` first, so running it again replaces the user.

    With `password` the line carries its SHA-256 (`#...`), never the password itself.
    """
    parts = ["ACL", "SETUSER", user, "reset", "on"]
    if password is not None:
        parts.append("#" + hashlib.sha256(password.encode()).hexdigest())
    parts += [f"~{pattern}" for pattern in grant.keys]
    parts += [f"%R~{pattern}" for pattern in grant.read_keys]
    parts += [f"&{channel}" for channel in grant.channels]
    parts += ["-@all", *(f"+{command}" for command in grant.commands)]
    return " ".join(parts)
