"""The pipeline graph of apps as a Graphviz drawing: streams, processors, who feeds whom.

Streams are ellipses, processors boxes grouped by app; an edge runs from each input stream to
its processor and from the processor to each output (side outputs dashed). `dot` lays it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import graphviz

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from gristmill.app import App


def pipeline_graph(apps: Sequence[App]) -> graphviz.Digraph:
    """The graph of every processor of `apps` and the streams they read and write."""
    graph = graphviz.Digraph("pipeline", graph_attr={"rankdir": "LR", "fontname": "Helvetica"})
    graph.attr("node", fontname="Helvetica", fontsize="11")
    streams: set[str] = set()
    for app in apps:
        with graph.subgraph(name=f"cluster_{app.name}") as cluster:
            cluster.attr(label=f"app {app.name}", style="rounded", color="gray60")
            for spec in app.processors.values():
                cluster.node(f"processor {spec.group}", spec.name, shape="box", style="rounded,filled",
                             fillcolor="lightblue")  # fmt: skip
            for ticker in app.tickers.values():
                cluster.node(f"ticker {app.name}.{ticker.name}", f"{ticker.name}\n(every {ticker.every:g} s)",
                             shape="box", style="dashed")  # fmt: skip
        for spec in app.processors.values():
            for stream in spec.inputs:
                graph.edge(f"stream {stream}", f"processor {spec.group}")
            for stream in spec.outputs:
                graph.edge(f"processor {spec.group}", f"stream {stream}")
            for stream in spec.side_outputs:
                graph.edge(f"processor {spec.group}", f"stream {stream}", style="dashed")
            streams.update(spec.inputs + spec.outputs + spec.side_outputs)
        for ticker in app.tickers.values():
            for stream in ticker.outputs:
                graph.edge(f"ticker {app.name}.{ticker.name}", f"stream {stream}")
            streams.update(ticker.outputs)
    for stream in sorted(streams):
        graph.node(f"stream {stream}", stream, shape="ellipse")
    return graph


def draw(
    apps: Sequence[App], directory: Path, formats: Sequence[str] = ("svg", "png")
) -> list[Path]:
    """Render the graph of `apps` into `directory` as pipeline.<format>; returns the files.

    Raises:
        graphviz.ExecutableNotFound: If Graphviz's `dot` is not installed.
    """
    graph = pipeline_graph(apps)
    written = []
    for fmt in formats:
        target = directory / f"pipeline.{fmt}"
        target.write_bytes(graph.pipe(format=fmt))
        written.append(target)
    source = directory / "pipeline.dot"
    source.write_text(graph.source)
    return [*written, source]
