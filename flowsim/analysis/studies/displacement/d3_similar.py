"""D3, Pal et al. (2024): similar responses displace p(y_w) more (edit distance and token overlap).

Measured over the pairs of a group: Spearman's rho of the edit distance between y_w and y_l with
dlogpw (claimed positive: the farther apart, the less displacement) and of their token overlap
with dlogpw (claimed negative), each with its interval over trainings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.measures import rho_text
from flowsim.analysis.studies.displacement.rules import MODELS, direction, pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds

#: The similarity measures and the sign of their claimed correlation with dlogpw.
MEASURES: dict[str, int] = {"edit_distance": 1, "token_overlap": -1}


def rule_similar(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D3: each measure's ``rho``, ``lo``, ``hi`` (keys prefixed by its name)."""
    text = (
        f"supported if every measure that varies ranks dlogpw its way with |rho| >= {th.rho_min:g} and an interval "
        "excluding 0; partly if one does with |rho| >= the bound"
    )
    reads = [direction(m, th, s, f"{k} ") for k, s in MEASURES.items() if not np.isnan(m[f"{k} rho"])]
    if reads and all(r == "strong" for r in reads):
        return SUPPORTED, text
    return (PARTLY if any(r != "none" for r in reads) else NOT), text


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D3: the more alike y_w and y_l (smaller edit distance, larger token overlap), the more p(y_w) falls.

    Fails if neither measure ranks dlogpw its way with |rho| >= rho_min.  Not applicable where both
    are NaN (logits, features: no tokens) or constant over the pairs (one similarity setting).
    """
    p, metrics, parts, why = pairs_of(d), {}, [], []
    for name in MEASURES:
        try:
            rho, lo, hi = p.correlation(name)
        except NotApplicable as exc:
            rho, lo, hi = (float("nan"),) * 3
            why.append(str(exc))
        metrics.update({f"{name} rho": rho, f"{name} lo": lo, f"{name} hi": hi})
        parts.append(rho_text(name, rho, lo, hi))
    if len(why) == len(MEASURES):
        raise NotApplicable("; ".join(why))
    return metrics["edit_distance rho"], metrics, f"{'; '.join(parts)} ({p.n_trainings} trainings)"


CLAIM = Claim(
    id="D3",
    title="Similar responses displace p(y_w) more",
    paper="when the preferred and dispreferred responses differ by few tokens, DPO reduces the probability of "
    "the preferred response (Pal et al. 2024)",
    where="Pal et al. 2024, §3 (arXiv 2402.13228); Razin et al. 2024's edit-distance baseline",
    metric="Spearman rho of edit_distance (+) and token_overlap (-) with dlogpw, intervals over trainings",
    rule=rule_similar,
    measure=measure,
    models=MODELS,
    columns=("edit_distance", "token_overlap"),
    thresholds=("rho_min",),
)
