"""The dashboard's one stylesheet (served at ``/dashboard/style.css``)."""

from __future__ import annotations

CSS = """
:root { color-scheme: light dark; --fg: #1d232a; --muted: #5c6773; --line: #d8dee4;
  --bg: #ffffff; --head: #f3f5f7; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
  --info: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9aa5b1; --line: #30363d; --bg: #0d1117;
    --head: #161b22; --ok: #3fb950; --warn: #d29922; --bad: #f85149; --info: #58a6ff; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
nav { display: flex; gap: 1rem; align-items: center; padding: .6rem 1.2rem;
  border-bottom: 1px solid var(--line); background: var(--head); }
nav .home { font-weight: 600; text-decoration: none; color: var(--fg); }
nav .who { margin-left: auto; color: var(--muted); }
nav form { margin: 0; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
a { color: var(--info); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td { font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1.2rem;
  margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-size: .85em;
  border: 1px solid currentColor; white-space: nowrap; }
.b-online, .b-active, .b-activated, .b-completed, .b-done { color: var(--ok); }
.b-paused, .b-updating, .b-running, .b-downloading, .b-verifying, .b-loading,
.b-pending, .b-idle, .b-retrying { color: var(--warn); }
.b-offline, .b-failed, .b-regressed, .b-aborted, .b-rolled_back { color: var(--bad); }
.empty, .hint, .filter, .b-skipped { color: var(--muted); }
.error { color: var(--bad); font-weight: 600; }
form.login { display: flex; flex-direction: column; gap: .5rem; max-width: 26rem; }
input, button { font: inherit; padding: .35rem .6rem; }
form.action { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center;
  margin: 0 0 .6rem; }
form.action input[name=reason] { min-width: 18rem; }
a.button { display: inline-block; padding: .3rem .7rem; margin: 0 .4rem .4rem 0;
  border: 1px solid var(--line); border-radius: .3rem; text-decoration: none; }
figure.chart { margin: .4rem 0 1rem; max-width: 760px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { fill: var(--muted); font-size: 11px; }
svg.chart text.ct { fill: var(--fg); font-weight: 600; font-size: 12px; }
svg.chart line.grid { stroke: var(--line); stroke-width: 1; }
svg.chart polyline { fill: none; stroke-width: 1.6; }
svg.chart polyline.c0 { stroke: var(--info); } svg.chart polyline.c1 { stroke: var(--warn); }
svg.chart polyline.c2 { stroke: var(--bad); } svg.chart polyline.c3 { stroke: var(--ok); }
svg.chart rect.c0, svg.chart circle.c0 { fill: var(--info); }
svg.chart rect.c1, svg.chart circle.c1 { fill: var(--warn); }
svg.chart rect.c2, svg.chart circle.c2 { fill: var(--bad); }
svg.chart rect.c3, svg.chart circle.c3 { fill: var(--ok); }
.charts h3 { font-size: .95rem; margin: 1rem 0 .2rem; }
.candidates table { width: auto; margin: .3rem 0; font-size: .9em; }
.windows .chosen { font-weight: 600; }
time { text-decoration: underline dotted var(--line); }
"""
