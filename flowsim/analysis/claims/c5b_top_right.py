"""C5b, the top-right corner of Fig. 1(b): small change, and saddle points.

Measured: the median |dp/dt| at top-right starts over the median at the others, and (DPO
on the ratio plane) the stationary points on a 400 x 400 log mesh of the plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, ratio_of
from flowsim.analysis.claims.rules import POLICY_MODELS
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least, at_most, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_saddle(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C5b: ``m["speed_ratio"]`` (top-right median |dp/dt| / rest) and ``m["n_stationary"]``."""
    text = f"supported if speed ratio <= 1/{th.speed_factor:g} and stationary points > 0; partly if one holds"
    slow = at_most(m["speed_ratio"], 1.0 / th.speed_factor)
    saddle = at_least(m["n_stationary"], 1.0)
    return (SUPPORTED if slow and saddle else PARTLY if slow or saddle else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5b: top-right starts move slowly, and there are stationary points.

    Fails if the top-right median |dp/dt| exceeds 1/speed_factor of the median elsewhere
    and no mesh point (DPO on the ratio plane) is stationary.  No top-right start (e.g.
    among feasible starts with the default cuts): not applicable.
    """
    sel = d.region == "top-right"
    if not sel.any():
        raise NotApplicable("0 starts in top-right")
    v, _ = d.field()
    speed = np.hypot(v[:, 0], v[:, 1])
    ratio = ratio_of(median_of(speed[sel]), median_of(speed[~sel]))
    n_stat, mesh = d.mesh_check(th.stationary_tol, "|grad L| on a 400x400 log mesh: min {gmin}, {n} stationary points")
    t_ratio = ratio_of(median_of(d.t_stop[sel & d.ok]), median_of(d.t_stop[~sel & d.ok]))
    details = f"{int(sel.sum())} starts in top-right; {mesh}; median t_stop there / elsewhere {fmt(t_ratio)}"
    return ratio, {"speed_ratio": ratio, "n_stationary": n_stat}, details


CLAIM = Claim(
    id="C5b",
    title="Top-right corner: small change, saddle points",
    paper="When both x1 and x2 are extremely large ... the overall change is relatively minor, potentially "
    "resulting in difficulty escaping saddle points.",
    where="§3.2, top-right of Fig. 1(b); Remark 3",
    metric="median |dp/dt| at top-right starts / median at other starts",
    rule=rule_saddle,
    measure=measure,
    models=POLICY_MODELS,
    reads=("stationary_tol",),
    regional=True,
    columns=("region", "t_stop", "status", "p1_0", "p2_0", "ref_w", "ref_l"),
    thresholds=("speed_factor", "stationary_tol"),
)
