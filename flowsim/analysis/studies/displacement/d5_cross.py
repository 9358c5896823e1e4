"""D5, Ren & Sutherland (2024)'s decomposition: in a dataset, the other pairs' pull displaces pairs their
own term would not.

In a dataset trained on its mean loss the first-order rate of log pi(y_w^i) is the pair's own term
``ent_own`` plus the other pairs' ``ent_cross`` (the empirical NTK between pairs).  Measured: among
the displaced pairs of a dataset, the share whose own term is positive (it would raise p(y_w))
while the sum ``dlogpw_dt0`` is negative -- the displacement only the cross-pair term explains.
The details give every predictor's rank correlation with dlogpw and its interval over trainings,
which says which ranks the pairs best.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.measures import rho_text
from flowsim.analysis.studies.displacement.rules import MODELS, pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds

#: The per-pair predictors whose rank correlation with dlogpw the details give, in this order.
PREDICTORS: tuple[str, ...] = (
    "ches",
    "ches_ln",
    "ches_pre",
    "hidden_ip",
    "ent_own",
    "dlogpw_dt0",
    "edit_distance",
    "token_overlap",
)


def rule_cross(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D5: ``m["share"]``, the share of displaced pairs only the cross-pair term explains."""
    text = (
        f"supported if the share of displaced pairs with ent_own > 0 > dlogpw_dt0 is >= {th.cross_supported:g}; "
        f"partly if >= {th.cross_partly:g}"
    )
    if at_least(m["share"], th.cross_supported):
        return SUPPORTED, text
    return (PARTLY if at_least(m["share"], th.cross_partly) else NOT), text


def predictor_texts(p) -> list[str]:
    """'name: rho = r [lo, hi]' for each predictor the rows hold and that varies."""
    out = []
    for name in PREDICTORS:
        try:
            out.append(rho_text(name, *p.correlation(name)))
        except NotApplicable:
            continue
    return out


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D5: in datasets, many displaced pairs have a positive own term and a negative total first-order rate.

    Fails if fewer than cross_partly of the displaced pairs have ent_own > 0 > dlogpw_dt0.  Not
    applicable to one-pair trainings (ent_cross = 0: no other pairs), where no pair is displaced, or
    where the terms are NaN.
    """
    p = pairs_of(d)
    f = p.frame
    own, total, cross = (f[c].to_numpy(float) for c in ("ent_own", "dlogpw_dt0", "ent_cross"))
    one_pair = "n_pairs" in f.columns and bool((f["n_pairs"].to_numpy(float) <= 1).all())
    if one_pair or not np.any(cross[np.isfinite(cross)]):
        raise NotApplicable("one-pair trainings: no other pairs, ent_cross = 0 (or NaN)")
    sel = p.displaced & np.isfinite(own) & np.isfinite(total)
    if not sel.any():
        raise NotApplicable("no displaced pair with its first-order terms")
    only_cross = sel & (own > 0) & (total < 0)
    own_explains = sel & (own < 0)
    share = float(only_cross.sum() / sel.sum())
    details = (
        f"{int(only_cross.sum())} of {int(sel.sum())} displaced pairs have ent_own > 0 > dlogpw_dt0 "
        f"(own term negative: {int(own_explains.sum())}); rank correlations with dlogpw: "
        + "; ".join(predictor_texts(p))
    )
    return share, {"share": share}, details


CLAIM = Claim(
    id="D5",
    title="In datasets, the other pairs' pull displaces pairs their own term would not",
    paper="the learning dynamics of one example are driven by the others through the empirical NTK between "
    "them (Ren & Sutherland 2024; flowsim's own test of the cross-pair term)",
    where="Ren & Sutherland 2024, §3 (arXiv 2407.10490); issue #31",
    metric="share of displaced pairs in datasets with ent_own > 0 > dlogpw_dt0 (only the cross-pair term "
    "explains them)",
    rule=rule_cross,
    measure=measure,
    models=MODELS,
    columns=("ent_own", "ent_cross", "dlogpw_dt0", "displaced"),
    thresholds=("cross_supported", "cross_partly"),
)
