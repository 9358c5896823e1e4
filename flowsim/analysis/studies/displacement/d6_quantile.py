"""D6, Razin et al. (2024, §5): DPO on the top CHES quantile of a pool displaces more than on the bottom.

Read from trainings whose dataset was *selected* from a pool (``[model] pool``, ``select``;
:mod:`flowsim.model.network.select`): for each predictor, the pairs trained on its displacing end
(the top of ``ches``, ``ches_ln``, ``hidden_ip``; the *smallest* ``pair_edit_distance``) against
those trained on its other end -- the share displaced and the mean dlogpw of each, their
difference (displacing end minus other) and its 95% interval from resampling the trainings (seeds)
within each end (:func:`~flowsim.analysis.studies.displacement.measures.compare_sides`).

The rule, fixed before the data: CHES separates the shares when the share displaced is higher on
its top by >= ``share_gap`` with the difference's interval above 0, and separates dlogpw when the
mean dlogpw difference's interval is below 0.  The baselines' (hidden_ip, edit distance) numbers
are reported beside CHES's and do not enter the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.measures import compare_sides
from flowsim.analysis.studies.displacement.rules import pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.measures import Pairs
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds

#: Each predictor's two selections: (the end claimed to displace, the other end).
ENDS: dict[str, tuple[str, str]] = {
    "ches": ("ches_top", "ches_bottom"),
    "ches_ln": ("ches_ln_top", "ches_ln_bottom"),
    "hidden_ip": ("hidden_ip_top", "hidden_ip_bottom"),
    "pair_edit_distance": ("pair_edit_distance_small", "pair_edit_distance_large"),
}


def compare(p: Pairs, predictor: str) -> dict[str, float] | None:
    """:func:`compare_sides` of a predictor's two selections in the pairs ``p`` (None unless both were trained)."""
    chosen = p.frame["select"].to_numpy(str)
    hi, lo = (chosen == name for name in ENDS[predictor])
    return compare_sides(p, hi, lo) if hi.any() and lo.any() else None


def _text(name: str, c: dict[str, float]) -> str:
    def ci(what: str) -> str:
        lo, hi = c[f"{what}_diff_lo"], c[f"{what}_diff_hi"]
        return f"[{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) else "[n/a: one training]"

    return (
        f"{name}: displaced {fmt(c['displaced_hi'])} vs {fmt(c['displaced_lo'])} (diff {fmt(c['displaced_diff'])} "
        f"{ci('displaced')}), dlogpw {fmt(c['dlogpw_hi'])} vs {fmt(c['dlogpw_lo'])} "
        f"(diff {fmt(c['dlogpw_diff'])} {ci('dlogpw')})"
    )


def rule_quantile(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D6: CHES's differences ``m["share"]``, ``m["share_lo"]`` and ``m["dlogpw_hi"]`` (the intervals' ends)."""
    text = (
        f"supported if DPO on the top CHES quantile displaces a share >= {th.share_gap:g} above the bottom's "
        "(its 95% interval above 0) and its mean dlogpw is lower (interval below 0); partly if one of the two"
    )
    shares = m["share"] >= th.share_gap and m["share_lo"] > 0
    logps = m["dlogpw_hi"] < 0
    if shares and logps:
        return SUPPORTED, text
    return (PARTLY if shares or logps else NOT), text


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D6: the pairs DPO trained on as the top CHES quantile of their pool displace more than the bottom's.

    Fails if the share displaced on the top is not above the bottom's by share_gap with its
    interval above 0 and the mean dlogpw difference's interval is not below 0.  Not applicable
    without trainings of both ``ches_top`` and ``ches_bottom``.
    """
    p = pairs_of(d)
    if "select" not in p.frame.columns:
        raise NotApplicable("the rows lack the column select: no dataset was selected from a pool")
    found = {name: compare(p, name) for name in ENDS}
    if found["ches"] is None:
        raise NotApplicable("no trainings of both ches_top and ches_bottom here")
    c = found["ches"]
    details = "; ".join(_text(name, v) for name, v in found.items() if v is not None)
    metrics = {"share": c["displaced_diff"], "share_lo": c["displaced_diff_lo"], "dlogpw_hi": c["dlogpw_diff_hi"]}
    return c["displaced_diff"], metrics, details


CLAIM = Claim(
    id="D6",
    title="Training on the top CHES quantile displaces more than on the bottom",
    paper="training on the samples with the highest CHES scores leads to substantially more severe likelihood "
    "displacement than training on those with the lowest (Razin et al. 2024)",
    where="Razin et al. 2024, §5, Figure 2 (arXiv 2410.08847)",
    metric="share displaced and mean dlogpw, DPO on the top minus on the bottom CHES quantile of a pool, with "
    "95% intervals over seeds; the hidden_ip and edit-distance baselines beside it",
    rule=rule_quantile,
    measure=measure,
    models=("network",),
    columns=("ches", "displaced", "select"),
    thresholds=("share_gap",),
)
