"""D4, Ren & Sutherland (2024): the squeezing effect -- a negative gradient on y_l moves mass to the most
likely other response, more so the peakier the start.

Measured over the pairs of a group: Spearman's rho of ``top_other_0`` (the start's most likely
response other than y_w, y_l: its probability) with ``top_other_gain`` (that response's
probability at the end minus at the start), with its interval over trainings, and the share of
pairs whose top other response gained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.measures import rho_text
from flowsim.analysis.studies.displacement.rules import MODELS, direction, pairs_of
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds


def rule_squeeze(m: Metrics, th: DisplacementThresholds) -> tuple[str, str]:
    """D4: ``m["rho"]`` of top_other_0 with top_other_gain and its interval."""
    text = f"supported if rho >= {th.rho_min:g} with its 95% interval above 0; partly if rho >= {th.rho_min:g}"
    read = direction(m, th, +1)
    return {"strong": SUPPORTED, "weak": PARTLY}.get(read, NOT), text


def measure(d: Group, th: DisplacementThresholds) -> tuple[float, dict, str]:
    """D4: the peakier the start (top_other_0), the more the top other response gains (top_other_gain).

    Fails if rho(top_other_0, top_other_gain) < rho_min.  Not applicable where either is NaN on every
    pair, or top_other_0 is constant.
    """
    p = pairs_of(d)
    gain = p.frame["top_other_gain"].to_numpy(float)
    if not np.isfinite(gain).any():
        raise NotApplicable("top_other_gain is NaN on every pair: the model records no other response")
    rho, lo, hi = p.correlation("top_other_0", other=gain)
    gained = float((gain[np.isfinite(gain)] > 0).mean())
    details = f"{rho_text('top_other_0 vs top_other_gain', rho, lo, hi)}; share whose top other gained {fmt(gained)}"
    return rho, {"rho": rho, "lo": lo, "hi": hi, "gained": gained}, details


CLAIM = Claim(
    id="D4",
    title="Squeezing: the peakier the start, the more the top other response gains",
    paper="imposing a large negative gradient on a low-probability response squeezes the probability mass "
    "towards the most likely one (Ren & Sutherland 2024)",
    where="Ren & Sutherland 2024, §3.3 (arXiv 2407.10490)",
    metric="Spearman rho(top_other_0, top_other_gain) with its interval over trainings",
    rule=rule_squeeze,
    measure=measure,
    models=MODELS,
    columns=("top_other_0", "top_other_gain"),
    thresholds=("rho_min",),
)
