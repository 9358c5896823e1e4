"""C6, Remark 3: the SFT model's start decides the outcome.

Measured: three signs of it — the spread of the regions' median final p_w, how much lower
bottom-left starts end than the rest, and how much longer top-right starts take.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, ratio_of, span
from flowsim.analysis.claims.rules import EVERY_MODEL
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least, fmt
from flowsim.experiment.regions import REGIONS

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_sensitivity(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C6: ``m["p1_spread"]``, ``m["p1_gap_bottom_left"]``, ``m["t_stop_ratio_top_right"]``."""
    text = (
        f"count of: p1_final spread >= {th.p1_gap:g}, bottom-left gap >= {th.p1_gap:g}, "
        f"top-right t_stop ratio >= {th.speed_factor:g}; 3: supported, 1-2: partly"
    )
    n = (
        at_least(m["p1_spread"], th.p1_gap)
        + at_least(m["p1_gap_bottom_left"], th.p1_gap)
        + at_least(m["t_stop_ratio_top_right"], th.speed_factor)
    )
    return (SUPPORTED if n == 3 else PARTLY if n else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C6: the start decides the outcome.

    Fails if the regions' median final p_w are within p1_gap of each other, bottom-left
    ends no lower than the rest, and top-right takes no longer than speed_factor times the rest.
    """
    ok = d.ok
    if not ok.any():
        raise NotApplicable("no finished flows")
    p1f = d.pf[:, 0]
    med = {r: median_of(p1f[ok & (d.region == r)]) for r in REGIONS}
    med = {r: v for r, v in med.items() if np.isfinite(v)}
    if len(med) < 2:  # one training of one pair, say: a single region has nothing to be compared with
        raise NotApplicable(f"finished flows in {len(med)} region(s): the claim compares regions")
    spread = max(med.values()) - min(med.values()) if med else float("nan")
    bl, tr = d.region == "bottom-left", d.region == "top-right"
    gap = median_of(p1f[ok & ~bl]) - median_of(p1f[ok & bl])
    t_ratio = ratio_of(median_of(d.t_stop[ok & tr]), median_of(d.t_stop[ok & ~tr]))
    tmed = {r: median_of(d.t_stop[ok & (d.region == r)]) for r in REGIONS}
    tmed = {r: v for r, v in tmed.items() if np.isfinite(v)}
    details = (
        f"region medians of p1_final {span(med)}; bottom-left {fmt(median_of(p1f[ok & bl]))} vs rest "
        f"{fmt(median_of(p1f[ok & ~bl]))}; top-right median t_stop / rest {fmt(t_ratio)}; "
        f"region medians of t_stop {span(tmed)}"
    )
    metrics = {"p1_spread": spread, "p1_gap_bottom_left": gap, "t_stop_ratio_top_right": t_ratio}
    return spread, metrics, details


CLAIM = Claim(
    id="C6",
    title="Remark 3: the SFT start decides the outcome",
    paper="The initial states in the gradient vector field have a significant impact on the final optimization "
    "results. [lower-left: low p1; upper-right: sluggish convergence]",
    where="§3.3.2, Remark 3",
    metric="spread (max - min) of the regions' median final p1",
    rule=rule_sensitivity,
    measure=measure,
    models=EVERY_MODEL,
    regional=True,
    columns=("region", "p1_final", "t_stop", "status"),
    thresholds=("p1_gap", "speed_factor"),
)
