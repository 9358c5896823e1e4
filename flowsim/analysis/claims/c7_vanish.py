"""C7, §3.2's reading of Fig. 1(b): the field vanishes at low x1 and low x2.

Measured: the median |grad_theta L| at bottom-left starts over the median elsewhere, in
the model's own parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, ratio_of
from flowsim.analysis.claims.rules import POLICY_MODELS
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_vanish(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C7: ``m["grad_ratio"]``, median |grad L| in the low corner / elsewhere."""
    text = f"supported if ratio <= 1/{th.speed_factor:g}; partly if < 1"
    if m["grad_ratio"] < 1.0 / th.speed_factor:  # NaN compares False
        return SUPPORTED, text
    r = m["grad_ratio"]
    return (PARTLY if not np.isnan(r) and r < 1 else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C7 (§3.2): the field vanishes at low x1 and low x2.

    Fails if the median |grad_theta L| at bottom-left starts (low p_w and p_l) is not below
    the median elsewhere (on the ratio plane it grows there, as 1/x).
    """
    sel = d.region == "bottom-left"
    if not sel.any() or sel.all():
        raise NotApplicable(f"{int(sel.sum())} of {d.n} starts in bottom-left: nothing to compare")
    _, gnorm = d.field()
    ratio = ratio_of(median_of(gnorm[sel]), median_of(gnorm[~sel]))
    details = (
        f"{int(sel.sum())} starts in bottom-left; median |grad L| there {fmt(median_of(gnorm[sel]))}, elsewhere "
        f"{fmt(median_of(gnorm[~sel]))} (in the model's own parameters, {d.model_kind})"
    )
    return ratio, {"grad_ratio": ratio}, details


CLAIM = Claim(
    id="C7",
    title="The field vanishes at low x1 and low x2",
    paper="the gradient vector field vanishes in the area of low x1 and then moves away, but it converges towards "
    "the region of low x2 to vanish there",
    where="§3.2, reading of Fig. 1(b)",
    metric="median |grad_theta L| at bottom-left starts / median elsewhere, in the model's own parameters",
    rule=rule_vanish,
    measure=measure,
    models=POLICY_MODELS,
    regional=True,
    columns=("region", "p1_0", "p2_0", "ref_w", "ref_l"),
    thresholds=("speed_factor",),
)
