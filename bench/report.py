"""The run's outputs: a rich table, JSON lines, bench/results/<scenario>.json and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from bench.stats import gristmill_ratios, rate_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

Row = dict[str, object]
RESULTS = Path(__file__).resolve().parent / "results"
_COLUMNS = (
    ("msgs_per_s", "msg/s"),
    ("entries_per_s", "entries/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("offered_per_s", "offered/s"),
    ("bytes_per_entry", "B/entry"),
    ("scaling", "× 1 worker"),
    ("client_cpu_us", "client CPU µs/msg"),
    ("server_cpu_us", "server CPU µs/msg"),
)


def _figure(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 100:
        return f"{value:.2f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def table(title: str, rows: Sequence[Row]) -> Table:
    """The rows as a table, with gristmill's rate as a multiple of each system's."""
    shown = [(key, label) for key, label in _COLUMNS if any(key in r for r in rows)]
    out = Table(title=title)
    out.add_column("system")
    for _, label in shown:
        out.add_column(label, justify="right")
    out.add_column("gristmill ×", justify="right")
    out.add_column("note", overflow="fold", max_width=60)
    ratios = gristmill_ratios(rows)
    for index, result in enumerate(rows):
        label = str(result.get("system"))
        if "workers" in result:
            label += f" --workers {result['workers']}"
        ratio = f"{ratios[index]:.2f}" if index in ratios else "-"
        note = str(result.get("note", ""))
        out.add_row(label, *(_figure(result.get(key)) for key, _ in shown), ratio, note)
    return out


def print_table(console: Console, title: str, rows: Sequence[Row]) -> None:
    console.print(table(title, rows))


def json_lines(rows: Sequence[Row]) -> str:
    """One JSON object per row (per system measured), one per line."""
    return "\n".join(json.dumps(result, sort_keys=False) for result in rows)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(
    scenario: str, rows: Sequence[Row], size: int, server: str, directory: Path = RESULTS
) -> list[Path]:
    """Write <scenario>.json and (when matplotlib is installed) <scenario>.png."""
    directory.mkdir(parents=True, exist_ok=True)
    name = scenario.replace("-", "_")
    data = {
        "scenario": scenario,
        "messages": size,
        "server": server,
        "machine": machine(),
        "rows": list(rows),
    }
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    written = [json_path]
    png = chart(scenario, rows, directory / f"{name}.png")
    if png is not None:
        written.append(png)
    return written


def chart(scenario: str, rows: Sequence[Row], path: Path) -> Path | None:
    """A horizontal bar chart of each system's main figure; None without matplotlib."""
    try:
        import matplotlib as mpl

        mpl.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    latency = any("p99_ms" in r for r in rows)
    labels, values = [], []
    for result in rows:
        label = str(result.get("system"))
        if "workers" in result:
            label += f" ×{result['workers']}"
        value = result.get("p99_ms") if latency else rate_of(result)
        if value is None and "bytes_per_entry" in result:
            value = result["bytes_per_entry"]
        if isinstance(value, int | float):
            labels.append(label)
            values.append(float(value))
    if not values:
        return None
    unit = "p99 latency, ms (lower is better)" if latency else _unit(rows)
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(values) + 1.2))
    colors = ["#d35400" if label.startswith("gristmill") else "#7f8c8d" for label in labels]
    bars = axes.barh(labels[::-1], values[::-1], color=colors[::-1])
    if not latency and max(values) / max(min(values), 1e-9) > 50:
        axes.set_xscale("log")  # 2,000 next to 700,000 msg/s: linear would hide the small
    axes.bar_label(bars, labels=[_figure(v) for v in values[::-1]], padding=3, fontsize=8)
    axes.set_xlabel(unit)
    axes.set_title(f"gristmill bench: {scenario}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _unit(rows: Sequence[Row]) -> str:
    if any(isinstance(r.get("msgs_per_s"), int | float) for r in rows):
        return "messages per second (higher is better)"
    if any(isinstance(r.get("entries_per_s"), int | float) for r in rows):
        return "entries per second (higher is better)"
    return "bytes per entry (lower is better)"
