"""Scenario `telemetry`: the passthrough app with telemetry off, metrics on, and tracing on.

    today         the committed `main` branch (without the working tree's changes), if git
                  can export it: the baseline for a change under way
    today-trace-1%  `main` with trace-1%'s configuration: `trace-1%` gets `paired_vs_today`,
                  the ratio within each round, for a change to the traced path
    off           GRISTMILL_HEALTH_PORT=0, no OTEL_*: the hot path skips every telemetry call
    metrics       the health port serves /metrics (scraped once a second by this process)
    carried       metrics, tracing off, but every entry carries a traceparent (1% sampled), as
                  a producer with an OpenTelemetry SDK writes them: the wire fields' cost alone
    trace-1%      metrics, plus traces at 1% (parent-based ratio), exported over OTLP/HTTP;
                  1% of the inputs carry a sampled traceparent and the rest none, which is
                  what gristmill's `Publisher` writes at 1% sampling
    trace-1%-sdk  the same, but every input carries a traceparent (1% sampled): tracing at 1%
                  behind a producer that writes unsampled contexts too (`carried` + spans)
    trace-100%    metrics, plus every handler run traced and exported

Sampling is decided where a trace starts (the publisher), so the inputs are written as a
producer sampling at that rate writes them (see each variant). Spans go to a local OTLP sink in this process that
answers 200 and drops them, so the figure is the runtime's own cost, not a collector's.
Variants run round-robin in one run; each row's `vs_off` is its median rate over the `off`
row's, `paired_vs_off` the median of the ratios within a round (with the lowest and highest),
and `paired_cpu_vs_off` the same for client CPU per message: the steadier figures on a
noisy machine. BENCH_TELEMETRY_VARIANTS (e.g. `off,metrics,trace-1%`) runs a subset.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.apps import PASSTHROUGH_STREAMS
from bench.harness import REPO, Bench, BenchError
from bench.payload import order_payload
from bench.resp import RespConnection, pack
from bench.stats import median_run, paired_ratio, rate_of
from bench.systems import Row, repeats, report_progress, row, stream_command

SCENARIO = "telemetry"
VARIANTS_ENV = "BENCH_TELEMETRY_VARIANTS"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# variant: (fraction of inputs sampled, whether the unsampled ones carry a flag-00 context)
SAMPLED = {
    "carried": (0.01, True), "trace-1%": (0.01, False), "trace-1%-sdk": (0.01, True),
    "trace-100%": (1.0, True), "today-trace-1%": (0.01, False),
}  # fmt: skip
CHUNK = 1000


def _prefill_traced(
    url: str, stream: str, count: int, schema_id: str, fraction: float, unsampled_carry: bool
) -> None:
    """`count` Order entries; every 1/fraction-th one with a sampled traceparent, the others
    with an unsampled one if `unsampled_carry`, else with none."""
    every = round(1 / fraction)

    async def fill() -> None:
        connection = await RespConnection.open(url)
        try:
            for start in range(0, count, CHUNK):
                commands = []
                for n in range(start, min(start + CHUNK, count)):
                    entry: list[str | bytes] = ["schema_id", schema_id, "payload", order_payload(n)]
                    if n % every == 0 or unsampled_carry:
                        ids = f"{os.urandom(16).hex()}-{os.urandom(8).hex()}"
                        entry += ["traceparent", f"00-{ids}-{'01' if n % every == 0 else '00'}"]
                    commands.append(pack("XADD", stream, "*", *entry))
                await connection.call(*commands)
        finally:
            await connection.close()

    asyncio.run(fill())


def _main_source(directory: str) -> str | None:
    """`src/` of the `main` branch exported into `directory`, or None if git cannot."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "main", "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
    return os.path.join(directory, "src")


def _variants(sink: str, main_src: str | None) -> dict[str, dict[str, str]]:
    traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink, "OTEL_METRICS_EXPORTER": "none"}
    main_path = {"PYTHONPATH": f"{main_src}:{REPO}"}
    one_percent = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                   "OTEL_TRACES_SAMPLER_ARG": "0.01"}  # fmt: skip
    today = (
        {"today": main_path, "today-trace-1%": {**traced, **one_percent, **main_path}}
        if main_src
        else {}
    )
    return {
        **today,
        "off": {"GRISTMILL_HEALTH_PORT": "0"},
        "metrics": {},
        "carried": {},
        "trace-1%": {**traced, **one_percent},
        "trace-1%-sdk": {**traced, **one_percent},
        "trace-100%": {**traced, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    }  # fmt: skip


def _scrape_every_second(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as reply:
                reply.read()
        except OSError:
            pass  # not up yet, or already stopping


def _measure(bench: Bench, name: str, env: dict[str, str], size: int) -> Row:
    bench.flush()
    ids = bench.register_schemas()
    command, base_env = stream_command("gristmill", bench.url, PASSTHROUGH_STREAMS, ids.invoice)
    port = _free_port()
    if name != "today":  # main's settings refuse variables they do not know
        env = {**base_env, "GRISTMILL_HEALTH_PORT": str(port),
               "GRISTMILL_HEALTH_HOST": "127.0.0.1", **env}  # fmt: skip
    else:
        env = {**base_env, **env}
    if name in SAMPLED:
        _prefill_traced(bench.url, PASSTHROUGH_STREAMS[0], size, ids.order, *SAMPLED[name])
    else:
        bench.prefill(PASSTHROUGH_STREAMS[0], size, ids.order)
    stop = threading.Event()
    scraper = threading.Thread(target=_scrape_every_second, args=(port, stop), daemon=True)
    process = bench.launch(f"gristmill-{name}", command, env)
    scraper.start()
    try:
        timing = bench.time_outputs(bench.count_entries(PASSTHROUGH_STREAMS[-1]), size, process)
        return row(SCENARIO, f"gristmill {name}", timing)
    except BenchError as exc:
        return row(SCENARIO, f"gristmill {name}", None, f"not measured: {exc}")
    finally:
        stop.set()
        process.stop()


def _chosen(variants: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The variants BENCH_TELEMETRY_VARIANTS names (all when unset), `off` always among them."""
    wanted = [n.strip() for n in os.environ.get(VARIANTS_ENV, "").split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(variants))
    if unknown:
        raise SystemExit(f"{VARIANTS_ENV}: unknown {unknown}; known: {', '.join(variants)}")
    if not wanted:
        return variants
    return {n: env for n, env in variants.items() if n in wanted or n == "off"}


def _add_paired(result: Row, runs: list[Row], off: list[Row] | None) -> None:
    if off is None or runs is off:
        return
    for field, key in (("paired_vs_off", "msgs_per_s"), ("paired_cpu_vs_off", "client_cpu_us")):
        paired = paired_ratio(runs, off, key)
        if paired is not None:
            result[field] = [round(value, 3) for value in paired]


def run(url: str, size: int) -> list[dict[str, object]]:
    bench = Bench(url)
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    main_dir = tempfile.TemporaryDirectory(prefix="bench-main-")
    try:
        sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
        variants = _chosen(_variants(sink_url, _main_source(main_dir.name)))
        runs: dict[str, list[Row]] = {name: [] for name in variants}
        for _ in range(repeats()):  # round-robin: a noisy neighbour hits every variant
            for name, env in variants.items():
                runs[name].append(_measure(bench, name, env, size))
                report_progress(runs[name][-1])
        rows = [median_run(runs[n]) if len(runs[n]) > 1 else runs[n][0] for n in variants]
        by_name = {str(r["system"]).removeprefix("gristmill "): rate_of(r) for r in rows}
        for name, result in zip(variants, rows, strict=True):
            _add_paired(result, runs[name], runs.get("off"))
            if f"today-{name}" in runs:
                within = paired_ratio(runs[name], runs[f"today-{name}"], "msgs_per_s")
                if within is not None:
                    result["paired_vs_today"] = [round(value, 3) for value in within]
            rate = rate_of(result)
            notes = []
            for base in ("today", "off"):
                base_rate = by_name.get(base)
                if rate is not None and base_rate:
                    result[f"vs_{base}"] = round(rate / base_rate, 3)
                    notes.append(f"{rate / base_rate:.3f}x {base}")
            for base in ("off", "today"):
                paired = result.get(f"paired_vs_{base}")
                if isinstance(paired, list):
                    low, high = paired[1], paired[2]
                    notes.append(f"paired {paired[0]:.3f}x {base} ({low:.3f}-{high:.3f})")
            if notes:
                result["note"] = ", ".join(notes)
        return rows
    finally:
        main_dir.cleanup()
        sink.shutdown()
        sink.server_close()
        bench.close()
