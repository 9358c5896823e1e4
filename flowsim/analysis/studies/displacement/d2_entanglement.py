"""D2, Yuan et al. (2024): gradient entanglement predicts the sign of the first change of log pi(y_w).

Measured: the share of pairs whose *measured* change of log pi(y_w) over the first optimiser step
(``dlogpw_first``, per unit lr) has the sign the first-order prediction ``dlogpw_dt0`` gives, the
own-pair term (a ||g_w||^2 + b <g_w, g_l>)/N plus, in a dataset, the other pairs' pull.  In a
one-pair training ``dlogpw_dt0`` is the own term ``ent_own`` alone (Yuan et al.'s condition:
displacement when <g_w, g_l> > ||g_w||^2); the details give how often ``ent_own`` alone gets the
sign right, which in a dataset says how much the cross-pair term matters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.rules import MODELS, pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds


def rule_sign(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D2: ``m["share"]``, the share of pairs whose measured first change has the predicted sign."""
    text = f"supported if share with the predicted sign >= {th.sign_supported:g}; partly if >= {th.sign_partly:g}"
    if at_least(m["share"], th.sign_supported):
        return SUPPORTED, text
    return (PARTLY if at_least(m["share"], th.sign_partly) else NOT), text


def _agree(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(a) & np.isfinite(b)
    return (float((np.sign(a[ok]) == np.sign(b[ok])).mean()) if ok.any() else float("nan")), int(ok.sum())


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D2: the entanglement term's sign is the sign of log pi(y_w)'s first change.

    Fails if fewer than sign_partly of the pairs' measured first changes (``dlogpw_first``) have
    the sign of the first-order prediction (``dlogpw_dt0``: ``ent_own``, plus ``ent_cross`` in a
    dataset).  Not applicable where either is NaN on every pair.
    """
    f = pairs_of(d).frame
    measured, predicted, own = (f[c].to_numpy(float) for c in ("dlogpw_first", "dlogpw_dt0", "ent_own"))
    share, n = _agree(measured, predicted)
    if not n:
        raise NotApplicable("dlogpw_first or dlogpw_dt0 is NaN on every pair: the model records no first step")
    own_share, _ = _agree(measured, own)
    falls = int((measured[np.isfinite(measured)] < 0).sum())
    details = (
        f"a share {fmt(share)} of the {n} pairs have the predicted sign ({falls} fall at the first step); "
        f"the own-pair term ent_own alone: {fmt(own_share)}"
    )
    return share, {"share": share, "own_share": own_share}, details


CLAIM = Claim(
    id="D2",
    title="Gradient entanglement predicts the sign of the first change of p(y_w)",
    paper="the chosen log-probability decreases when <g_w, g_l> > ||g_w||^2 [...] gradient entanglement "
    "(Yuan et al. 2024)",
    where="Yuan et al. 2024, §2 (arXiv 2410.13828)",
    metric="share of pairs whose measured first change of log pi(y_w) (dlogpw_first) has the sign of the "
    "first-order prediction dlogpw_dt0",
    rule=rule_sign,
    measure=measure,
    models=MODELS,
    columns=("dlogpw_first", "dlogpw_dt0", "ent_own"),
    thresholds=("sign_supported", "sign_partly"),
)
