"""LD, Razin et al. (2024): likelihood displacement -- DPO often lowers the preferred response's probability.

Measured: the share of finished, moving flows that are ``displaced`` (p_w fell below its start
along the path, by more than the runner's relative tolerance), beside the share that *end*
below their start.  The seed paper's reading is the opposite (p_w rises, only more slowly than
p_l falls: C4); this claim says how often that fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.analysis.claims.measures import share_of
from flowsim.analysis.claims.rules import EVERY_MODEL
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_displaced(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """LD: ``m["share_displaced"]``; "often" is at least share_partly of the flows, "at all" 1 - share_supported."""
    lo = 1.0 - th.share_supported
    text = f"supported if share displaced >= {th.share_partly:g}; partly if >= {lo:.3g}"
    s = m["share_displaced"]
    if at_least(s, th.share_partly):
        return SUPPORTED, text
    return (PARTLY if at_least(s, lo) else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """LD: p_w falls below its start during training in many flows.

    Fails if fewer than 1 - share_supported of the moving flows are displaced (p_w only rises).
    Not applicable where the model declares displacement impossible by construction for the loss
    (:meth:`~flowsim.model.parameterisations.base.Parameterisation.impossible`).
    """
    reason = d.impossible("displaced")
    if reason:  # the model declares it: a "not supported" here would read as a finding about the loss
        raise NotApplicable(f"impossible by construction ({reason})")
    mv = d.moving
    if not mv.any():
        raise NotApplicable("no moving flows")
    share = share_of(d.displaced, mv)
    ends_below = share_of(d.pf[:, 0] < d.p0[:, 0], mv)
    details = (
        f"{int((d.displaced & mv).sum())} of {int(mv.sum())} moving flows displaced (p_w fell below p_w0); "
        f"ending below p_w0: {fmt(ends_below)}"
    )
    return share, {"share_displaced": share}, details


CLAIM = Claim(
    id="LD",
    title="Likelihood displacement: DPO often lowers p(y_w)",
    paper="the likelihood of preferred responses often decreases during training [...] this counter-intuitive "
    "phenomenon, which we term likelihood displacement (Razin et al. 2024; not the seed paper's claim)",
    where="Razin et al. 2024, abstract",
    metric="share of moving flows whose p_w fell below its start along the path (displaced)",
    rule=rule_displaced,
    measure=measure,
    models=EVERY_MODEL,
    columns=("displaced", "p1_0", "p1_final", "status", "t_stop"),
    thresholds=("share_supported", "share_partly"),
)
