"""D1, Razin et al. (2024): the CHES score predicts which pairs displace p(y_w).

Measured over the pairs of a group (its trainings pooled over seeds and similarity settings):
Spearman's rho of ``ches`` with dlogpw (log pi(y_w) at the end minus at the start) and its 95%
interval from resampling whole trainings; and the share displaced among the pairs in the top
``quantile`` of CHES minus that in the bottom one.  Higher CHES is claimed to mean more
displacement: rho < 0 and a positive gap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.analysis.studies.displacement.measures import rho_text
from flowsim.analysis.studies.displacement.rules import MODELS, negative, pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, at_least, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds


def rule_ches(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D1: ``m["rho"]``, its interval ``m["hi"]`` and the quantile gap ``m["gap"]``."""
    text = (
        f"supported if rho <= -{th.rho_min:g} with its 95% interval below 0 and the top-{th.quantile:g} share "
        f"displaced exceeds the bottom's by >= {th.share_gap:g}; partly if one of the two"
    )
    ranks, gap = negative(m, th), at_least(m["gap"], th.share_gap)
    if ranks == "strong" and gap:
        return SUPPORTED, text
    return (PARTLY if ranks == "strong" or gap else NOT), text


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D1: the higher a pair's CHES at the DPO start, the more its log pi(y_w) falls.

    Fails if rho(ches, dlogpw) is not <= -rho_min with its interval below 0 and the share
    displaced in CHES's top quantile does not exceed the bottom quantile's by share_gap.  Not
    applicable where CHES is NaN or constant (logits: the one-hot CHES is -1 for every pair).
    """
    p = pairs_of(d)
    rho, lo, hi = p.correlation("ches")
    top, bottom, gap = p.quantile_gap("ches", th.quantile)
    details = (
        f"{rho_text('ches', rho, lo, hi)} over {len(p.dlogpw)} pairs of {p.n_trainings} trainings; "
        f"displaced in the top {th.quantile:g} of ches {fmt(top)}, bottom {fmt(bottom)}"
    )
    return rho, {"rho": rho, "lo": lo, "hi": hi, "gap": gap}, details


CLAIM = Claim(
    id="D1",
    title="CHES predicts likelihood displacement",
    paper="the CHES score [...] identifies which training samples contribute most to likelihood displacement "
    "in a given dataset (Razin et al. 2024)",
    where="Razin et al. 2024, §5 (arXiv 2410.08847)",
    metric="Spearman rho(ches, dlogpw) with its interval over trainings; share displaced, top minus bottom "
    "quantile of ches",
    rule=rule_ches,
    measure=measure,
    models=MODELS,
    columns=("ches", "displaced"),
    thresholds=("rho_min", "share_gap", "quantile"),
    reads=("quantile",),
)
