"""C4, Remark 2: p(y_l) falls faster than p(y_w) rises.

Measured: among starts where neither target is met at t = 0, the share where p_l reaches
its target before p_w reaches its own; and the share of starts where |dp_l/dt| > |dp_w/dt|
(both rates at the same loss: the start's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import median_of, share_of
from flowsim.analysis.claims.rules import EVERY_MODEL, SHARE_THRESHOLDS
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_faster(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C4: ``m["share_first"]`` (t_l < t_w) and ``m["share_initial"]`` (|dp_l/dt| > |dp_w/dt|).

    Both shares >= share_supported: supported; either >= share_partly: partly.  A NaN share
    (no field without the experiment) is left out: the other decides alone.
    """
    hi, lo = th.share_supported, th.share_partly
    text = f"supported if both shares >= {hi:g}; partly if either >= {lo:g}"
    vals = [v for v in (m["share_first"], m["share_initial"]) if not np.isnan(v)]
    if vals and all(at_least(v, hi) for v in vals):
        return SUPPORTED, text
    return (PARTLY if any(at_least(v, lo) for v in vals) else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Remark 2: p_l reaches its target (t_l) before p_w reaches its own (t_w), and falls faster at the start.

    Among starts where neither target is met at t = 0; a target never reached counts as
    t = +inf (both never: not l-first).  Fails if p_w reaches its target first, or if
    |dp_w/dt| >= |dp_l/dt| at the start (the same loss for both rates).
    """
    contested = d.ok & (d.t_w != 0) & (d.t_l != 0)
    if not contested.any():
        raise NotApplicable("no start where neither target is met at t = 0")
    tl, tw = np.nan_to_num(d.t_l, nan=np.inf), np.nan_to_num(d.t_w, nan=np.inf)
    first = share_of(tl < tw, contested)
    both = share_of(np.isfinite(tl) & np.isfinite(tw), contested)
    v = d.rates()
    init = rate = float("nan")
    if v is not None:
        init = share_of(np.abs(v[:, 1]) > np.abs(v[:, 0]), d.ok)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = median_of(np.abs(v[d.ok, 1] / v[d.ok, 0]))
    details = (
        f"{int(contested.sum())} contested starts; t_l < t_w: {fmt(first)} (both reached: {fmt(both)}); "
        f"|dp_l/dt| > |dp_w/dt| at t = 0: {fmt(init)} (median |dp_l/dt|/|dp_w/dt| {fmt(rate)})"
    )
    return first, {"share_first": first, "share_initial": init}, details


CLAIM = Claim(
    id="C4",
    title="Remark 2: p(y_l) falls faster than p(y_w) rises",
    paper="the DPO loss function decreases the probability of producing human dispreferred data at a faster "
    "rate than it increases the probability of producing preferred data",
    where="Abstract; §3.3.1, Remark 2",
    metric="share of starts (neither target met at t = 0) where p_l reaches its target before p_w reaches its own",
    rule=rule_faster,
    measure=measure,
    models=EVERY_MODEL,
    columns=("t_w", "t_l", "status", "p1_0", "p2_0", "ref_w", "ref_l"),
    thresholds=SHARE_THRESHOLDS,
)
