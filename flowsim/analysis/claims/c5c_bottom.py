"""C5c, the lower part of Fig. 1(b): p_l falls fast while p_w barely moves.

Measured: the share of bottom-row starts where |dp_l/dt| >= dominance |dp_w/dt|, and the
row's median |dp_l/dt| over the median elsewhere.
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

#: The regions of "x2 extremely small".
BOTTOM_ROW: tuple[str, ...] = ("bottom-left", "bottom", "bottom-right")


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5c: on the bottom row, |dp_l/dt| >= dominance |dp_w/dt| at the start, and fast.

    Fails if at bottom-row starts p_w moves at more than 1/dominance of p_l's speed, or if
    their median |dp_l/dt| is below speed_factor times the median elsewhere.
    """
    sel = np.isin(d.region, BOTTOM_ROW)
    if not sel.any():
        raise NotApplicable("0 starts in the bottom row")
    v, _ = d.field()
    s_fast, s_slow = np.abs(v[:, 1]), np.abs(v[:, 0])
    share = share_of(s_fast >= th.dominance * s_slow, sel)
    ratio = ratio_of(median_of(s_fast[sel]), median_of(s_fast[~sel]))
    dp = np.abs(d.pf - d.p0)
    path = share_of(dp[:, 1] > dp[:, 0], sel & d.moving)
    details = (
        f"{int(sel.sum())} starts in {'/'.join(BOTTOM_ROW)}; median |dp_l/dt| there / elsewhere {fmt(ratio)}; "
        f"share whose whole path moves p_l more {fmt(path)}"
    )
    return share, {"share_dominant": share, "speed_ratio": ratio}, details


CLAIM = Claim(
    id="C5c",
    title="Bottom: p2 falls fast, p1 barely moves",
    paper="When x2 is extremely small ... the gradient flow of DPO tends to rapidly decrease x2 while causing "
    "only minor changes to x1.",
    where="§3.2, lower part of Fig. 1(b)",
    metric="share of bottom-row starts with |dp_l/dt| >= dominance * |dp_w/dt|",
    rule=rule_corner,
    measure=measure,
    models=POLICY_MODELS,
    reads=("dominance",),
    regional=True,
    columns=("region", "p1_0", "p2_0", "p1_final", "p2_final", "ref_w", "ref_l", "status", "t_stop"),
    thresholds=CORNER_THRESHOLDS,
)
