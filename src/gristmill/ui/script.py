"""The page's script: poll the JSON endpoints, draw the graph and charts, run the actions.

Plain JavaScript served as /static/dashboard.js. Every value from the server reaches the page
through `textContent` or an SVG attribute, never through HTML parsing, so a stream named
`<script>` stays text.
"""

from __future__ import annotations

SCRIPT = r"""
"use strict";
const INTERVAL = Number(document.body.dataset.intervalMs) || 2000;
const ACTIONS = document.body.dataset.actions === "true";
const INVENTORY_EVERY = 10000;
const SVG = "http://www.w3.org/2000/svg";
let selected = null;   // {stream, group, id}
let laneCount = null;  // the selected lane's size when it was last read

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.onclick = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function fill(id, ...children) { document.getElementById(id).replaceChildren(...children); }
function num(v, digits) {
  if (v === null || v === undefined) return "-";
  return digits === undefined ? v.toLocaleString("en") : v.toFixed(digits);
}
function age(ms) {
  if (ms === null || ms === undefined) return "-";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + "s";
  if (s < 3600) return (s / 60).toFixed(1) + "m";
  return (s / 3600).toFixed(1) + "h";
}
function when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-"; }
function table(headings, rows, numeric) {
  const head = el("tr", {}, ...headings.map((h, i) =>
    el("th", numeric && numeric.includes(i) ? {class: "num"} : {}, h)));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
}
function row(cells, numeric, attrs) {
  return el("tr", attrs || {}, ...cells.map((c, i) =>
    el("td", numeric && numeric.includes(i) ? {class: "num"} : {}, c)));
}
async function getJSON(url) {
  const reply = await fetch(url, {cache: "no-store"});
  const body = await reply.json();
  if (!reply.ok) throw new Error(body.error || reply.statusText);
  return body;
}

function sparkline(series) {
  const w = 120, h = 24, box = svg("svg", {width: w, height: h, class: "spark"});
  if (series.length < 2) return box;
  const t0 = series[0][0], t1 = series[series.length - 1][0];
  const top = Math.max(...series.map(p => p[1]), 1e-9);
  const points = series.map(([t, v]) =>
    `${((t - t0) / Math.max(t1 - t0, 1) * (w - 2) + 1).toFixed(1)},` +
    `${(h - 2 - v / top * (h - 4)).toFixed(1)}`);
  box.append(svg("polyline", {points: points.join(" "), fill: "none", stroke: "#2460a7"}));
  return box;
}

function drawGraph(graph) {
  const W = 124, H = 34;
  const box = svg("svg", {width: graph.width, height: graph.height, id: "graph-svg"});
  const at = Object.fromEntries(graph.nodes.map(n => [n.id, n]));
  for (const e of graph.edges) {
    const a = at[e.from], b = at[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
    const lag = e.lag || 0;
    box.append(svg("path", {d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      class: "edge" + (lag > 0 ? " lagging" : ""), "marker-end": ""}));
    if ("lag" in e) {
      const label = svg("text", {x: mid, y: Math.min(y1, y2) - 18, "text-anchor": "middle",
        class: "label edge-label", "data-edge": `${e.from}>${e.to}`});
      label.append(svg("tspan", {x: mid, dy: 0}, `${num(e.rate_per_s, 1)}/s`));
      label.append(svg("tspan", {x: mid, dy: 12, class: lag > 0 ? "lagging" : ""},
        `lag ${num(e.lag)} pend ${num(e.pending)}`));
      box.append(label);
    }
  }
  for (const n of graph.nodes) {
    const g = svg("g", {class: n.kind, "data-node": n.id});
    g.append(svg("rect", {x: n.x, y: n.y, width: W, height: H, rx: n.kind === "stream" ? 17 : 4}));
    g.append(svg("text", {x: n.x + 8, y: n.y + 21}, n.label.length > 19 ?
      n.label.slice(0, 18) + "…" : n.label));
    g.append(svg("title", {}, n.label));
    box.append(g);
  }
  return box;
}

function drawGroups(live) {
  const rows = [];
  for (const s of live.streams) {
    if (!s.groups.length) rows.push(row([s.stream, num(s.length), "(no group)"], [1]));
    s.groups.forEach((g, i) => {
      const consumers = g.consumers.map(c =>
        `${c.name} ${age(c.idle_ms)}` + (c.pending ? ` (${c.pending})` : "")).join(", ");
      rows.push(row([i ? "" : s.stream, i ? "" : num(s.length), g.group, num(g.rate_per_s, 1),
        sparkline(g.series), num(g.lag), num(g.pending), age(g.oldest_pending_age_ms),
        num(g.dead_letters), num(g.retry_waiting), consumers || "-"], [1, 3, 5, 6, 7, 8, 9],
        {"data-stream": s.stream, "data-group": g.group}));
    });
  }
  const t = table(["stream", "length", "group", "read/s", "last minutes", "lag", "pending",
    "oldest pending", "dead", "retrying", "consumers: idle (pending)"], rows,
    [1, 3, 5, 6, 7, 8, 9]);
  t.id = "groups-table";
  return t;
}

function drawLanes(live) {
  if (!live.dead_lanes.length) { selected = null; return el("p", {class: "dim"}, "no dead letters"); }
  if (!selected || !live.dead_lanes.some(l => l.stream === selected.stream &&
      l.group === selected.group)) {
    selected = {stream: live.dead_lanes[0].stream, group: live.dead_lanes[0].group, id: null};
    laneCount = null;
  }
  const rows = live.dead_lanes.map(l => {
    const mine = l.stream === selected.stream && l.group === selected.group;
    if (mine && laneCount !== l.entries) { laneCount = l.entries; readLane(); }
    return row([el("a", {onclick: () => { selected = {stream: l.stream, group: l.group, id: null};
      laneCount = l.entries; readLane(); }}, `${l.stream} / ${l.group}`), num(l.entries)], [1],
      {class: mine ? "selected lane" : "lane", "data-stream": l.stream, "data-group": l.group,
       "data-entries": l.entries});
  });
  return table(["lane (stream / group)", "entries"], rows, [1]);
}

async function readLane() {
  if (!selected) { fill("lane"); return; }
  const q = new URLSearchParams({stream: selected.stream, group: selected.group});
  if (selected.id) q.set("id", selected.id);
  let lane;
  try { lane = await getJSON("/api/lane?" + q); } catch (e) { fill("lane", String(e)); return; }
  const reasons = el("p", {id: "reasons"}, "by reason: ", lane.reasons.map(r =>
    `${r.reason || "?"} ${r.entries}`).join(", ") + (lane.reasons_partial ? " (first entries)" : ""));
  const entries = table(["id", "reason", "exception", "attempts", "last failure"],
    lane.entries.map(e => row([el("a", {onclick: () => { selected.id = e.id; readLane(); }}, e.id),
      e.reason, e.exception, e.attempts, when(e.last_failure_ms)], [3],
      {class: lane.shown && lane.shown.id === e.id ? "selected" : ""})), [3]);
  const parts = [reasons, entries];
  const s = lane.shown;
  if (s) {
    parts.push(el("h2", {style: "margin-top:10px"}, `entry ${s.id}`));
    parts.push(el("p", {}, `${s.reason}: ${s.exception} ${s.message}`.trim()));
    parts.push(el("pre", {id: "shown-payload"}, s.payload_json ??
      `does not decode: ${JSON.stringify(s.payload_error)}`));
    if (s.traceback) parts.push(el("pre", {class: "dim"}, s.traceback));
    const buttons = el("p", {});
    const off = ACTIONS ? {} : {disabled: "", title: "start runtime ui with --allow-actions"};
    buttons.append(el("button", {id: "replay-entry", ...off,
      onclick: () => act("replay", {id: s.id}, `Replay entry ${s.id} to ${lane.group}?`)},
      "replay this entry"));
    buttons.append(el("button", {id: "replay-lane", ...off,
      onclick: () => act("replay", {}, `Replay every entry of this lane to ${lane.group}?`)},
      "replay the lane"));
    buttons.append(el("button", {id: "purge-lane", class: "danger", ...off,
      onclick: () => act("purge", {}, `Delete every entry of this lane for good?`)},
      "purge the lane"));
    parts.push(buttons);
  }
  fill("lane", ...parts);
}

async function act(action, extra, question) {
  if (!selected || !window.confirm(question)) return;
  const token = document.getElementById("token");
  const reply = await fetch("/api/lane/" + action, {method: "POST",
    headers: {"content-type": "application/json", "x-gristmill-token": token ? token.value : ""},
    body: JSON.stringify({stream: selected.stream, group: selected.group, ...extra})});
  const body = await reply.json();
  fill("action-result", reply.ok ? (action === "replay" ?
    `replayed ${body.moved} (gone meanwhile ${body.skipped}, refused ${body.refused})` :
    `deleted ${body.deleted} of ${body.selected}`) : `refused: ${body.error}`);
  selected.id = null;
  await refresh();
  readLane();
}

async function refresh() {
  let live;
  try { live = await getJSON("/api/live"); } catch (e) { fill("problem", String(e)); return; }
  fill("problem", live.problem || "");
  if (live.taken_ms === null) return;
  const t = live.totals;
  fill("totals", el("span", {}, "read ", el("b", {id: "total-rate"}, num(t.rate_per_s, 1)), "/s"),
    el("span", {}, "lag ", el("b", {id: "total-lag"}, num(t.lag))),
    el("span", {}, "pending ", el("b", {id: "total-pending"}, num(t.pending))),
    el("span", {}, "dead ", el("b", {id: "total-dead", class: t.dead_letters ? "bad" : ""},
      num(t.dead_letters))),
    el("span", {class: "dim"}, `${t.streams} streams, ${t.groups} groups`));
  fill("taken", "at " + when(live.taken_ms) + " UTC");
  fill("graph", live.graph.nodes.length ? drawGraph(live.graph) : "no streams yet");
  fill("groups", drawGroups(live), ...live.notes.map(n => el("p", {class: "dim"}, n)));
  fill("lanes", drawLanes(live));
  fill("leases", table(["role", "holder", "expires in"], live.leases.map(l =>
    row([l.role, l.holder || "(none)", age(l.ttl_ms)]))));
}

async function inventory() {
  let inv;
  try { inv = await getJSON("/api/inventory"); } catch (e) { fill("delayed", String(e)); return; }
  const waiting = inv.delayed.filter(d => d.entries);
  const empty = el("p", {class: "dim"}, `${inv.delayed.length - waiting.length} empty stores ` +
    "not shown");
  fill("delayed", waiting.length ? table(["target stream", "entries", "buckets", "next due in",
    "last due in"], waiting.map(d => row([d.stream, num(d.entries), num(d.buckets),
    age(d.next_due_in_ms), age(d.last_due_in_ms)], [1, 2, 3, 4])), [1, 2, 3, 4]) : "", empty);
  fill("schedules", inv.schedules.length ? table(["name", "task", "when", "state", "last fire",
    "next fire", "fires"], inv.schedules.map(s => row([s.name, s.task, `${s.when} ${s.tz}`,
    s.paused ? "paused" : "active", when(s.last_fire_ms), when(s.next_fire_ms), s.fires]))) :
    el("p", {class: "dim"}, "no schedules"));
  fill("tasks", inv.tasks.length ? table(["id", "name", "queue", "state", "since", "runs", "error"],
    inv.tasks.map(t => row([t.id, t.name, t.queue, t.state, when(t.state_at_ms), t.attempt,
    t.error]))) : el("p", {class: "dim"}, "no tasks"));
  fill("schemas", inv.schemas.length ? table(["subject", "mode", "version", "schema id", "message"],
    inv.schemas.flatMap(s => s.versions.map((v, i) => row([i ? "" : s.subject, i ? "" : s.mode,
    v.version, v.schema_id, v.message || "?"])))) : el("p", {class: "dim"}, "no schemas"));
}

refresh();
inventory();
setInterval(refresh, INTERVAL);
setInterval(inventory, INVENTORY_EVERY);
"""
