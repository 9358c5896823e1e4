"""C9, §3.3.1: similar responses hinder learning y_w (a claim across the responses' similarity).

Measured, from the least to the most similar responses: the drop of the median final p_w and
the rise of the share of flows displaced (p_w fell below its start).  The similarity axis is
declared per model (:data:`AXES`): the cosine of the responses' features ``cos_wl`` for
``features`` (higher = more similar), the edit distance between y_w and y_l for a ``network``
(lower = more similar, Pal et al. 2024).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowsim.analysis.claims.measures import median_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, at_least, fmt

#: Per model, the similarity column and which end of it is the more similar: "higher" or "lower".
AXES: dict[str, tuple[str, str]] = {"features": ("cos_wl", "higher"), "network": ("edit_distance", "lower")}
#: Which end is the more similar, by column (the measurement reads the axis it is handed).
MORE_SIMILAR: dict[str, str] = dict(AXES.values())

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import AcrossGroup
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_similar(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C9: ``m["p1_drop"]`` and ``m["displaced_rise"]`` from the least to the most similar responses."""
    text = f"count of: final p_w median drop >= {th.p1_gap:g}, displaced share rise >= {th.p1_gap:g}; 2: supported"
    n = at_least(m["p1_drop"], th.p1_gap) + at_least(m["displaced_rise"], th.p1_gap)
    return (SUPPORTED if n == 2 else PARTLY if n else NOT), text


def measure(d: AcrossGroup, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C9 (§3.3.1): as y_w and y_l grow alike (cos_wl up; edit distance down), p_w ends lower and is
    displaced more often.

    Fails if the median final p_w at the most similar end of the axis is not at least p1_gap below
    that at the least similar end, and the share of flows displaced (p_w fell below its start)
    does not rise by at least p1_gap.
    """
    col = d.cols[0]
    axis = d.axis[col]
    med, share, t_w = {}, {}, {}
    for k in np.unique(axis[d.ok & pd.notna(axis)]):  # the group's arrays: a bootstrap resample indexes them
        sel = d.ok & (axis == k)
        med[k], share[k], t_w[k] = median_of(d.pf[sel, 0]), float(d.displaced[sel].mean()), median_of(d.t_w[sel])
    far, near = min(med), max(med)  # least and most similar ends
    if MORE_SIMILAR[col] == "lower":
        far, near = near, far
    drop, rise = float(med[far] - med[near]), float(share[near] - share[far])
    details = "; ".join(
        f"{col} = {k:g}: median p_w final {fmt(med[k])}, displaced {fmt(share[k])}, median t_w {fmt(t_w[k])}"
        for k in med
    )
    return drop, {"p1_drop": drop, "displaced_rise": rise}, details


CLAIM = Claim(
    id="C9",
    title="Similar responses hinder learning y_w",
    paper="if the human-preferred response yw and the dispreferred response yl are literally similar, the gradient "
    "with respect to x2 would counteract the gradient of x1 to some extent, thereby weakening the "
    "optimization toward x1",
    where="§3.3.1, after Remark 2",
    metric="drop of median final p_w and rise of the share displaced, least to most similar responses (cos_wl up, "
    "edit_distance down; across combinations)",
    rule=rule_similar,
    measure=measure,
    models=("features", "network"),
    across={m: (c,) for m, (c, _) in AXES.items()},
    columns=("p1_final", "displaced", "t_w", "status"),
    thresholds=("p1_gap",),
)
