"""C8, §3.3.2: on the left side of Fig. 1(b) the gradient favours x2.

Measured: the share of left-column starts where |dp_l/dt| > |dp_w/dt|.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, share_of
from flowsim.analysis.claims.rules import EVERY_MODEL, SHARE_THRESHOLDS, rule_share
from flowsim.analysis.verdicts import Claim, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds

#: The regions of "the left side of Figure 1(b)".
LEFT_COLUMN: tuple[str, ...] = ("top-left", "left", "bottom-left")


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C8 (§3.3.2): on the left side the gradient favours x2: |dp_l/dt| > |dp_w/dt| there.

    Fails if at left-column starts p_w moves faster than p_l (Corollary 1 on the ratio plane:
    |dp_w/dt| / |dp_l/dt| = (ref_w / ref_l) x2 / x1, above 1 wherever p_l > p_w there).
    """
    sel = np.isin(d.region, LEFT_COLUMN)
    if not sel.any():
        raise NotApplicable("0 starts in the left column")
    v, _ = d.field()
    share = share_of(np.abs(v[:, 1]) > np.abs(v[:, 0]), sel)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = median_of(np.abs(v[sel, 0] / v[sel, 1]))
        cor = median_of((d.refs[sel, 0] / d.refs[sel, 1]) * d.x0[sel, 1] / d.x0[sel, 0])
    details = (
        f"{int(sel.sum())} starts in {'/'.join(LEFT_COLUMN)}; median |dp_w/dt|/|dp_l/dt| there {fmt(rate)} "
        f"(Corollary 1's (ref_w/ref_l) x2/x1: {fmt(cor)})"
    )
    return share, {"share": share}, details


CLAIM = Claim(
    id="C8",
    title="Left side: the gradient favours x2",
    paper="When the initial position of LLMs is situated at the left side of Figure 1(b) [...] DPO may not be able "
    "to swiftly increase this probability, as the gradient direction favors optimizing x2.",
    where="§3.3.2, second bullet",
    metric="share of left-column starts with |dp_l/dt| > |dp_w/dt|",
    rule=rule_share,
    measure=measure,
    models=EVERY_MODEL,
    regional=True,
    columns=("region", "x1_0", "x2_0", "p1_0", "p2_0", "ref_w", "ref_l"),
    thresholds=SHARE_THRESHOLDS,
)
