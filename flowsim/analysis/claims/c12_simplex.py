"""C12, implicit throughout §3: the flow stays a probability distribution (p_w + p_l <= 1).

Measured: the share of feasible starts whose recorded path reaches p_w + p_l > 1 (the
unnormalised ratio plane can; a softmax cannot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import share_of
from flowsim.analysis.claims.rules import EVERY_MODEL
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_most, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds

#: Paths whose p_w + p_l exceeds 1 by more than this have left the simplex.
MASS_TOL = 1e-12


def rule_simplex(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C12: ``m["share_left"]``, the share of feasible starts whose path has p_w + p_l > 1."""
    hi = 1.0 - th.share_supported
    text = f"supported if no path leaves the simplex; partly if share leaving <= {hi:.3g}"
    s = m["share_left"]
    if at_most(s, 0.0):
        return SUPPORTED, text
    return (PARTLY if at_most(s, hi) else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C12 (implicit): a flow from a feasible start keeps p_w + p_l <= 1.

    Fails if any path from a feasible start reaches p_w + p_l > 1 (the unnormalised ratio plane can).
    """
    sel = d.feasible & d.ok & np.isfinite(d.max_mass)
    if not sel.any():
        raise NotApplicable("no feasible start with a recorded path (max_mass)")
    left = d.max_mass > 1.0 + MASS_TOL
    share = share_of(left, sel)
    details = (
        f"{int((left & sel).sum())} of {int(sel.sum())} feasible starts reach p_w + p_l > 1 "
        f"(largest {fmt(float(np.max(d.max_mass[sel])))})"
    )
    return share, {"share_left": share}, details


CLAIM = Claim(
    id="C12",
    title="The flow stays a probability distribution",
    paper="(implicit throughout: x1, x2 are ratios of probabilities of two responses to one prompt)",
    where="§3 (implicit)",
    metric="share of feasible starts whose path reaches p_w + p_l > 1",
    rule=rule_simplex,
    measure=measure,
    models=EVERY_MODEL,
    columns=("feasible", "status", "max_mass"),
    thresholds=("share_supported",),
)
