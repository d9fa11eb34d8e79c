"""A `Snapshot` (with its history) turned into what the page draws (pure: no I/O here).

The live document is plain JSON: the streams and groups as `runtime status` shows them, each
group with its throughput series, and the pipeline graph with a position for every node. The
graph's edges run from a stream to each group reading it (labelled with rate, lag and
pending) and, when the apps are known, from a group to the streams its processor writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from gristmill.app import App
    from gristmill.observe.shape import GroupState, Snapshot
    from gristmill.ui.history import RatePoint

COLUMN_PX = 200
ROW_PX = 70
MARGIN_PX = 20
NODE_WIDTH_PX = 124  # the script draws nodes this wide
SERIES_POINTS = 60  # points per chart: 300 groups x 150 snapshots would be ~1 MB a refresh


@dataclass(frozen=True, slots=True)
class Topology:
    """What the apps say about the graph that Redis cannot: who writes to which stream."""

    writes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> streams
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ticker -> streams
    reads: tuple[str, ...] = ()  # streams the apps' processors read

    @property
    def streams(self) -> list[str]:
        """Every stream the apps read or write, sorted (what `runtime ui APP` snapshots)."""
        found = {s for outputs in (*self.writes.values(), *self.sources.values()) for s in outputs}
        return sorted(found | set(self.reads))


def topology_of(apps: Sequence[App]) -> Topology:
    """The writes of every processor (outputs and side outputs) and ticker of `apps`."""
    writes: dict[str, tuple[str, ...]] = {}
    sources: dict[str, tuple[str, ...]] = {}
    reads: set[str] = set()
    for app in apps:
        for spec in app.processors.values():
            writes[spec.group] = tuple(dict.fromkeys(spec.outputs + spec.side_outputs))
            reads.update(spec.inputs)
        for ticker in app.tickers.values():
            sources[f"{app.name}.{ticker.name}"] = tuple(ticker.outputs)
    return Topology(writes, sources, tuple(sorted(reads)))


def public_address(url: str) -> str:
    """`url` without its user, password and query: what the page may say it is connected to."""
    parts = urlsplit(url)
    where = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{where}{parts.path}"


def thin(series: Sequence[RatePoint], points: int = SERIES_POINTS) -> list[list[float]]:
    """At most `points` [at_ms, per_s] pairs: runs of consecutive points averaged, the newest
    run ending at the newest point (so the chart's right edge is the current rate)."""
    size = max(1, -(-len(series) // points))  # ceiling division
    thinned = []
    for end in range(len(series), 0, -size):
        run = series[max(end - size, 0) : end]
        thinned.append([run[-1].at_ms, round(sum(p.per_s for p in run) / len(run), 3)])
    return thinned[::-1]


def _group_json(state: GroupState, series: Sequence[RatePoint]) -> dict[str, Any]:
    return {
        "group": state.group,
        "lag": state.lag,
        "pending": state.pending,
        "oldest_pending_age_ms": state.oldest_pending_age_ms,
        "rate_per_s": state.rate_per_s,
        "dead_letters": state.dead_letters,
        "retry_waiting": state.retry_waiting,
        "consumers": [
            {"name": c.name, "pending": c.pending, "idle_ms": c.idle_ms} for c in state.consumers
        ],
        "series": thin(series),
    }


def live_view(
    snapshot: Snapshot,
    series: Mapping[tuple[str, str], Sequence[RatePoint]],
    topology: Topology = Topology(),
) -> dict[str, Any]:
    """The document `/api/live` returns for `snapshot` and the rate series kept so far."""
    streams = [
        {
            "stream": stream.stream,
            "length": stream.length,
            "last_id": stream.last_id,
            "groups": [_group_json(g, series.get((g.stream, g.group), ())) for g in stream.groups],
        }
        for stream in snapshot.streams
    ]
    groups = [group for stream in snapshot.streams for group in stream.groups]
    return {
        "taken_ms": snapshot.taken_ms,
        "streams": streams,
        "graph": graph(snapshot, topology),
        "dead_lanes": [
            {"stream": g.stream, "group": g.group, "entries": g.dead_letters}
            for g in groups
            if g.dead_letters
        ],
        "delayed": [
            {
                "stream": store.stream,
                "entries": store.entries,
                "approximate": store.approximate,
                "next_due_in_ms": None
                if store.next_due_ms is None
                else max(store.next_due_ms - snapshot.taken_ms, 0),
            }
            for store in snapshot.delayed
        ],
        "leases": [
            {"role": lease.role, "holder": lease.holder, "ttl_ms": lease.ttl_ms}
            for lease in snapshot.leases
        ],
        "totals": {
            "streams": len(snapshot.streams),
            "groups": len(groups),
            "lag": sum(g.lag or 0 for g in groups),
            "pending": sum(g.pending for g in groups),
            "dead_letters": sum(g.dead_letters for g in groups),
            "rate_per_s": sum(g.rate_per_s or 0.0 for g in groups),
        },
        "notes": list(snapshot.notes),
    }


def graph(snapshot: Snapshot, topology: Topology = Topology()) -> dict[str, Any]:
    """Nodes (streams, groups, tickers) with positions, and edges with their numbers."""
    kinds: dict[str, tuple[str, str]] = {}  # node id -> (kind, label)
    edges: list[dict[str, Any]] = []
    for stream in snapshot.streams:
        kinds[f"stream:{stream.stream}"] = ("stream", stream.stream)
        for group in stream.groups:
            kinds[f"group:{group.group}"] = ("group", group.group)
            edges.append(
                {
                    "from": f"stream:{stream.stream}",
                    "to": f"group:{group.group}",
                    "rate_per_s": group.rate_per_s,
                    "lag": group.lag,
                    "pending": group.pending,
                }
            )
    for writer, outputs, kind in (
        *((g, s, "group") for g, s in topology.writes.items()),
        *((t, s, "source") for t, s in topology.sources.items()),
    ):
        for output in outputs:
            if f"stream:{output}" not in kinds:
                continue  # a stream not snapshotted (not created yet): nothing to join
            kinds.setdefault(f"{kind}:{writer}", (kind, writer))
            edges.append({"from": f"{kind}:{writer}", "to": f"stream:{output}"})
    ranks = _ranks(kinds, ((e["from"], e["to"]) for e in edges))
    columns: dict[int, list[str]] = {}
    for node in sorted(kinds, key=lambda n: (ranks[n], kinds[n][1])):
        columns.setdefault(ranks[node], []).append(node)
    nodes = [
        {
            "id": node,
            "kind": kinds[node][0],
            "label": kinds[node][1],
            "x": MARGIN_PX + rank * COLUMN_PX,
            "y": MARGIN_PX + row * ROW_PX,
        }
        for rank, members in sorted(columns.items())
        for row, node in enumerate(members)
    ]
    tallest = max((len(members) for members in columns.values()), default=0)
    return {
        "nodes": nodes,
        "edges": edges,
        "width": 2 * MARGIN_PX + max(len(columns) - 1, 0) * COLUMN_PX + NODE_WIDTH_PX,
        "height": 2 * MARGIN_PX + max(tallest, 1) * ROW_PX,
    }


def _ranks(nodes: Mapping[str, object], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering: a node sits one column right of everything that feeds it."""
    pairs = list(edges)
    rank = dict.fromkeys(nodes, 0)
    for _ in range(len(rank)):  # at most len(nodes) passes: a cycle stops growing then
        changed = False
        for source, target in pairs:
            if rank[target] < rank[source] + 1 and rank[source] + 1 < len(rank):
                rank[target] = rank[source] + 1
                changed = True
        if not changed:
            break
    return rank
