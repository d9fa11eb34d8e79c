"""`runtime status [APP...]`: streams, groups, lag, pending, lanes, delayed, leases at a glance.

Built on `gristmill.observe.snapshot.take_snapshot`, the same view the metrics gauges read.
Rates come from two snapshots `--interval` seconds apart; `--watch` keeps refreshing.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import TYPE_CHECKING

import click
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from gristmill.cli.connection import with_redis
from gristmill.cli.output import fail, out, print_json
from gristmill.cli.serve import load_app, settings_or_fail
from gristmill.errors import ConfigError
from gristmill.observe.shape import Snapshot, with_rates
from gristmill.observe.snapshot import take_snapshot

if TYPE_CHECKING:
    from redis.asyncio import Redis


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def render(snapshot: Snapshot) -> Group:
    """The tables `runtime status` prints for `snapshot` (pure: no I/O)."""
    groups = Table(title="streams and groups", title_justify="left", expand=False)
    for name in ("stream", "length", "group", "lag", "pending", "oldest", "read/s", "dead",
                 "retrying", "consumers: idle (pending)"):  # fmt: skip
        groups.add_column(name, justify="left" if name in ("stream", "group") else "right")
    for stream in snapshot.streams:
        if not stream.groups:
            groups.add_row(escape(stream.stream), _number(stream.length), "-", *["-"] * 7)
        for index, group in enumerate(stream.groups):
            consumers = ", ".join(
                f"{escape(c.name)} {_age(c.idle_ms)}" + (f" ({c.pending})" if c.pending else "")
                for c in group.consumers
            )
            groups.add_row(
                escape(stream.stream) if index == 0 else "",
                _number(stream.length) if index == 0 else "",
                escape(group.group), _number(group.lag), _number(group.pending),
                _age(group.oldest_pending_age_ms), _number(group.rate_per_s),
                _number(group.dead_letters), _number(group.retry_waiting), consumers or "-",
            )  # fmt: skip
    parts: list[Table] = [groups]
    waiting = [store for store in snapshot.delayed if store.entries]
    if waiting:
        delayed = Table(title="delayed stores (empty ones not shown)", title_justify="left")
        for name in ("target stream", "entries", "next due in"):
            delayed.add_column(name, justify="left" if name == "target stream" else "right")
        for store in waiting:
            due = None if store.next_due_ms is None else store.next_due_ms - snapshot.taken_ms
            entries = _number(store.entries) + ("+" if store.approximate else "")
            delayed.add_row(escape(store.stream), entries, _age(due and max(due, 0)))
        parts.append(delayed)
    leases = Table(title="leader leases", title_justify="left")
    for name in ("role", "holder", "expires in"):
        leases.add_column(name)
    for lease in snapshot.leases:
        leases.add_row(escape(lease.role), escape(lease.holder or "(none)"), _age(lease.ttl_ms))
    parts.append(leases)
    return Group(*parts)


def _streams(apps: tuple[str, ...]) -> list[str] | None:
    if not apps:
        return None
    try:
        loaded = [load_app(target) for target in apps]
    except ConfigError as exc:
        fail(str(exc), "give apps as package.module:app, or none to show every stream")
    return sorted(
        {s for app in loaded for p in app.processors.values() for s in p.inputs + p.outputs}
    )


@click.command()
@click.argument("apps", nargs=-1, metavar="[APP]...")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.1),
    help="Seconds between the two snapshots that give rates (and between refreshes).",
)  # fmt: skip
def status(apps: tuple[str, ...], as_json: bool, watch: bool, interval: float) -> None:
    """Streams (of APPs, or every one), groups, lag, pending, lanes, delayed entries, leases."""
    settings = settings_or_fail()
    streams = _streams(apps)
    prefix = settings.key_prefix

    async def snapshot_pair(redis: Redis) -> Snapshot:
        first = await take_snapshot(redis, streams, prefix=prefix)
        await asyncio.sleep(interval)
        return with_rates(await take_snapshot(redis, streams, prefix=prefix), first)

    async def keep_watching(redis: Redis) -> None:
        previous = await take_snapshot(redis, streams, prefix=prefix)
        with Live(render(previous), console=out, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                current = with_rates(await take_snapshot(redis, streams, prefix=prefix), previous)
                live.update(render(current), refresh=True)
                previous = current

    if watch:
        try:
            with_redis(settings, keep_watching, announce=False)
        except KeyboardInterrupt:
            return
        return
    snapshot = with_redis(settings, snapshot_pair, announce=False)
    if as_json:
        print_json(snapshot.to_json())
        return
    taken = datetime.datetime.fromtimestamp(snapshot.taken_ms / 1000, datetime.UTC)
    out.print(f"[dim]at {taken:%Y-%m-%d %H:%M:%S} UTC[/]")
    out.print(render(snapshot))
    for note in snapshot.notes:
        out.print(f"[dim]{escape(note)}[/]")
