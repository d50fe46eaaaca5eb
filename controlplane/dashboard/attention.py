"""The overview's "Needs attention" section: rollouts the health gate paused (with the
gate's reason), devices the gate found regressed, devices that report ``failed``."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.attention import Flagged
from controlplane.dashboard.finder import href
from controlplane.dashboard.html import Markup, badge, esc, join, link, path_part
from controlplane.dashboard.rollout_view import gate_paused, state_badge
from controlplane.schemas import RolloutSummary

#: how many devices of each kind the section lists
SHOWN = 10


def _rollout(r: RolloutSummary) -> Markup:
    return Markup(
        f"<li>{link(f'/dashboard/rollouts/{r.id}', f'rollout {r.id}')} "
        f"{esc(f'{r.model} {r.version} to {r.fleet}')} {state_badge(r)}: {esc(r.reason)}</li>"
    )


def _device(flag: Flagged, state: str) -> Markup:
    where = ""
    if flag.rollout_id is not None:
        where = (
            f" in {link(f'/dashboard/rollouts/{flag.rollout_id}', f'rollout {flag.rollout_id}')}"
        )
    why = f": {esc(flag.reason)}" if flag.reason else ""
    device = link(f"/dashboard/devices/{path_part(flag.device_id)}", flag.device_id)
    return Markup(f"<li>{device} {badge(state)}{where}{why}</li>")


def section(
    busy: Sequence[RolloutSummary],
    regressed: Sequence[Flagged],
    failed: tuple[int, Sequence[Flagged]],
) -> Markup:
    """The section (empty markup when nothing needs attention); ``busy``: the rollouts in
    progress, ``failed``: how many devices failed and the first of them."""
    paused = [r for r in busy if gate_paused(r)]
    total, first = failed
    items = [_rollout(r) for r in sorted(paused, key=lambda r: r.id)]
    items += [_device(f, "regressed") for f in regressed[:SHOWN]]
    items += [_device(f, "failed") for f in first[:SHOWN]]
    if not items:
        return Markup("")
    more = ""
    if total > len(first[:SHOWN]):
        more = f"<p>{link(href({'status': 'failed'}), f'all {total} failed devices')}</p>"
    return Markup(
        f'<section class="attention"><h2>Needs attention</h2><ul>{join(items)}</ul>{more}</section>'
    )
