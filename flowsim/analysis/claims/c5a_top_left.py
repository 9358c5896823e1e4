"""C5a, the top-left corner of Fig. 1(b): p_w rises fast while p_l barely moves.

Measured: the share of top-left flows whose p_l changes at most 1/dominance as much as p_w
from start to stop, and the region's median |dp_w/dt| over the median elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, ratio_of, share_of
from flowsim.analysis.claims.rules import CORNER_THRESHOLDS, POLICY_MODELS, rule_corner
from flowsim.analysis.verdicts import Claim, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5a: in the top-left, p_w rises fast while p_l changes little over the whole flow.

    Fails if p_l changes by more than 1/dominance of p_w's change from start to stop (not
    only at the start, where on the ratio plane dominance is forced by the cuts), or if the
    region's median |dp_w/dt| is below speed_factor times the median elsewhere.
    """
    sel = d.region == "top-left"
    if not sel.any():
        raise NotApplicable("0 starts in top-left")
    mv = sel & d.moving
    dp = np.abs(d.pf - d.p0)
    share = share_of(dp[:, 1] * th.dominance <= dp[:, 0], mv)
    v = d.rates()
    ratio = float("nan") if v is None else ratio_of(median_of(np.abs(v[sel, 0])), median_of(np.abs(v[~sel, 0])))
    details = (
        f"{int(sel.sum())} starts in top-left ({int(mv.sum())} moving); median |Δp_l|/|Δp_w| there "
        f"{fmt(median_of(dp[mv, 1] / np.maximum(dp[mv, 0], 1e-300)))}; median |dp_w/dt| there / elsewhere "
        f"{fmt(ratio)}"
    )
    return share, {"share_dominant": share, "speed_ratio": ratio}, details


CLAIM = Claim(
    id="C5a",
    title="Top-left corner: p1 rises fast, p2 barely moves",
    paper="When x1 is extremely small and x2 is extremely large ... the gradient flow of DPO tends to rapidly "
    "increase x1 while causing only minor changes to x2.",
    where="§3.2, top-left of Fig. 1(b)",
    metric="share of top-left flows with |Δp_l| <= |Δp_w| / dominance from start to stop",
    rule=rule_corner,
    measure=measure,
    models=POLICY_MODELS,
    reads=("dominance",),
    regional=True,
    columns=("region", "p1_0", "p2_0", "p1_final", "p2_final", "status", "t_stop"),
    thresholds=CORNER_THRESHOLDS,
)
