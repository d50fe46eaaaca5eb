"""The dashboard's one stylesheet (served at ``/dashboard/style.css``).

Every state has its own colour within its kind (:data:`STATE_COLOURS`): a rollout's
running, paused, completed and aborted; a rollout device's pending ... skipped; a batch's;
a device's own status. Each colour has a light and a dark shade (:data:`PALETTE`), both
legible on the page's background. A failed or regressed device and a rollout the health
gate paused are filled (:data:`FILLED`): they stand out of a long list. The page never
scrolls sideways: a table scrolls inside its own box, the navigation and forms wrap.
"""

from __future__ import annotations

#: colour -> (light scheme, dark scheme)
PALETTE: dict[str, tuple[str, str]] = {
    "green": ("#1a7f37", "#3fb950"),
    "blue": ("#0969da", "#58a6ff"),
    "purple": ("#8250df", "#bc8cff"),
    "amber": ("#9a6700", "#d29922"),
    "orange": ("#bc4c00", "#f0883e"),
    "red": ("#cf222e", "#f85149"),
    "magenta": ("#bf3989", "#f778ba"),
    "teal": ("#1b7c83", "#39c5cf"),
    "olive": ("#5a6b00", "#a4c639"),
    "grey": ("#59636e", "#8b949e"),
}

#: kind -> state -> colour: within a kind, no two states share a colour
STATE_COLOURS: dict[str, dict[str, str]] = {
    "rollout": {"running": "blue", "paused": "purple", "completed": "green", "aborted": "red"},
    "rollout device": {
        "pending": "teal",
        "updating": "amber",
        "retrying": "orange",
        "activated": "green",
        "failed": "red",
        "regressed": "magenta",
        "rolled_back": "olive",
        "skipped": "grey",
    },
    "batch": {
        "pending": "teal",
        "running": "blue",
        "done": "green",
        "aborted": "red",
        "skipped": "grey",
    },
    "device": {
        "idle": "teal",
        "downloading": "amber",
        "verifying": "orange",
        "loading": "blue",
        "active": "green",
        "failed": "red",
        "unknown": "grey",
    },
    "link": {"online": "green", "offline": "red"},
    # a rollout the health gate paused, beside its state
    "mark": {"gate": "purple", "canary": "amber"},
}

#: badges drawn filled, not outlined: what must stand out
FILLED = frozenset({"failed", "regressed", "gate"})


def badge_colours() -> dict[str, str]:
    """badge class suffix -> colour (a state in several kinds has one colour in all)."""
    found: dict[str, str] = {}
    for states in STATE_COLOURS.values():
        for state, colour in states.items():
            if found.setdefault(state, colour) != colour:
                raise ValueError(f"state {state!r} has two colours")
    return found


def _palette() -> str:
    light = " ".join(f"--c-{name}: {shades[0]};" for name, shades in PALETTE.items())
    dark = " ".join(f"--c-{name}: {shades[1]};" for name, shades in PALETTE.items())
    return f":root {{ {light} }}\n@media (prefers-color-scheme: dark) {{ :root {{ {dark} }} }}\n"


def _badges() -> str:
    rules = []
    for state, colour in sorted(badge_colours().items()):
        if state in FILLED:
            rules.append(
                f".b-{state} {{ color: var(--bg); background: var(--c-{colour}); "
                f"border-color: var(--c-{colour}); font-weight: 600; }}"
            )
        else:
            rules.append(f".b-{state} {{ color: var(--c-{colour}); }}")
    return "\n".join(rules) + "\n"


_BASE = """
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
nav { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center;
  padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--head); }
nav .home { font-weight: 600; text-decoration: none; color: var(--fg); }
nav .who { margin-left: auto; color: var(--muted); overflow-wrap: anywhere; }
nav form { margin: 0; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .2rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.05rem; margin: 1.6rem 0 .5rem; }
p { overflow-wrap: anywhere; }
a { color: var(--info); }
.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td { font-variant-numeric: tabular-nums; }
time { text-decoration: underline dotted; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr);
  gap: .25rem 1.2rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-size: .85em;
  border: 1px solid currentColor; white-space: nowrap; }
.empty, .hint, .filter { color: var(--muted); }
.error { color: var(--bad); font-weight: 600; }
section.attention { border-left: 4px solid var(--bad); padding-left: .8rem; }
section.attention ul { margin: 0; padding-left: 1.1rem; }
form.login { display: flex; flex-direction: column; gap: .5rem; max-width: 26rem; }
input, button, select { font: inherit; padding: .35rem .6rem; max-width: 100%; }
form.action, form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center;
  margin: 0 0 .6rem; }
form.filters input { width: 11rem; }
form.action input[name=reason] { min-width: min(18rem, 100%); }
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
@media (max-width: 640px) {
  nav, main { padding-left: .6rem; padding-right: .6rem; }
  dl.facts { grid-template-columns: minmax(0, 1fr); }
  dl.facts dd { margin-bottom: .4rem; }
  form.filters input, form.filters select { width: 100%; }
}
"""

CSS = _BASE + _palette() + _badges()
