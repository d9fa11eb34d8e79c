"""The page's HTML skeleton and its style sheet (pure: strings in, a string out).

The server renders the frame (what it reads, whether actions are on); `script.SCRIPT` fills
the sections from the JSON endpoints and keeps them current. Nothing comes from elsewhere:
no CDN, no build step, every byte is served by the app.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gristmill.ui.access import ActionRules

STYLE = """
:root { --ink: #1d2733; --dim: #6b7785; --line: #d5dbe2; --bg: #f6f8fa; --warn: #b3261e;
  --ok: #1b7f3b; --accent: #2460a7; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: var(--ink); background: var(--bg); }
header { display: flex; gap: 24px; align-items: baseline; padding: 10px 18px; background: #fff;
  border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0; }
header .dim, .dim { color: var(--dim); }
.totals span { margin-right: 16px; }
.totals b { font-size: 15px; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 14px; padding: 14px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  min-width: 0; overflow-x: auto; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 13px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--dim); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eef1f4;
  vertical-align: top; white-space: nowrap; }
td.num, th.num { text-align: right; }
tr.selected td { background: #eaf2fc; }
.bad { color: var(--warn); font-weight: 600; }
.good { color: var(--ok); }
pre { background: var(--bg); border: 1px solid var(--line); padding: 8px; margin: 6px 0;
  max-height: 260px; overflow: auto; font-size: 12px; }
button { font: inherit; padding: 3px 10px; border: 1px solid var(--accent); background: #fff;
  color: var(--accent); border-radius: 4px; cursor: pointer; margin-right: 6px; }
button.danger { border-color: var(--warn); color: var(--warn); }
button:disabled { opacity: .4; cursor: default; }
a { color: var(--accent); cursor: pointer; }
#problem { color: var(--warn); font-weight: 600; }
svg text { font: 11px system-ui, sans-serif; }
svg .stream rect { fill: #fff; stroke: var(--accent); }
svg .group rect { fill: #e8f0fb; stroke: var(--accent); }
svg .source rect { fill: #fff; stroke: var(--dim); stroke-dasharray: 4 3; }
svg .edge { stroke: #8a97a6; fill: none; }
svg .edge.lagging { stroke: var(--warn); }
svg .label { fill: var(--dim); font-size: 10px; }
svg .label .lagging { fill: var(--warn); }
"""

_SECTIONS = """
<main>
  <section class="wide"><h2>Pipeline</h2><div id="graph" class="dim">loading…</div></section>
  <section class="wide"><h2>Streams and groups</h2><div id="groups"></div></section>
  <section><h2>Dead letters</h2><div id="lanes"></div><div id="lane"></div>
    <div id="action-result" class="dim"></div></section>
  <section><h2>Delayed entries</h2><div id="delayed"></div>
    <h2 style="margin-top:12px">Leader leases</h2><div id="leases"></div></section>
  <section><h2>Schedules</h2><div id="schedules"></div>
    <h2 style="margin-top:12px">Tasks (newest)</h2><div id="tasks"></div></section>
  <section><h2>Schemas</h2><div id="schemas"></div></section>
</main>
"""


def render(*, address: str, rules: ActionRules, interval: float) -> str:
    """The page for a dashboard reading `address` (which holds no password) under `rules`."""
    if not rules.allow_actions:
        mode = "read-only (start with --allow-actions to replay and purge)"
    elif rules.token is not None:
        mode = "actions on, with a token"
    else:
        mode = "actions on"
    token_box = (
        '<label>token <input id="token" type="password" autocomplete="off" size="16"></label>'
        if rules.allow_actions and rules.token is not None
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gristmill dashboard</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body data-interval-ms="{round(interval * 1000)}" data-actions="{str(rules.allow_actions).lower()}">
<header>
  <h1>gristmill</h1>
  <span class="dim">{html.escape(address)}</span>
  <span class="totals" id="totals"></span>
  <span class="dim" id="taken"></span>
  <span class="dim" id="mode">{html.escape(mode)}</span>
  {token_box}
  <span id="problem"></span>
</header>
{_SECTIONS}
<script src="/static/dashboard.js"></script>
</body></html>
"""
