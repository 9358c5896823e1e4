"""C10, footnote 4: the reference model only stretches the figure (a claim across ref_w, ref_l).

Measured: the share of the other claims whose verdict is the same under every fixed
reference, and how far dp/dt at the same starts is from a per-axis rescaling of the first
reference's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowsim.analysis.claims.rules import POLICY_MODELS
from flowsim.analysis.verdicts import NA, NOT, PARTLY, SUPPORTED, Claim, Metrics, at_least, at_most, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import AcrossGroup
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_stretch(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C10: ``m["share"]`` (claims with one verdict under every reference) and ``m["stretch_dev"]``.

    ``stretch_dev`` is how far the field in probabilities at the same starts is from a
    rescaling of one reference's field by a constant factor per axis (0: a pure stretch).
    """
    text = (
        f"supported if share of claims unchanged >= {th.share_supported:g} and the field is a per-axis "
        f"rescaling within {th.rtol_partly:g}; partly if one holds or the share >= {th.share_partly:g}"
    )
    same, stretch = at_least(m["share"], th.share_supported), at_most(m["stretch_dev"], th.rtol_partly)
    if same and stretch:
        return SUPPORTED, text
    return (PARTLY if same or stretch or at_least(m["share"], th.share_partly) else NOT), text


def same_verdicts(claims: pd.Series, verdicts: pd.Series) -> tuple[float, str]:
    """Share of claims with one verdict (not applicable aside) across the references, and those that change."""
    same, changed = 0, []
    for cid, v in verdicts.groupby(claims, sort=False):
        v = set(v) - {NA, None}
        if not v:
            continue
        if len(v) == 1:
            same += 1
        else:
            changed.append(str(cid))
    n = same + len(changed)
    return (same / n if n else float("nan")), ", ".join(changed) or "none"


def stretch(entries: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """How far fields (p0, dp/dt) under several references are from per-axis rescalings of the first.

    Per axis, over the starts the groups share, max / min of |v_ref / v_first| minus 1,
    the worst over references and axes (0: every field a constant stretch of the first).
    """
    base_p, base_v = entries[0]
    index = {tuple(np.round(p, 12)): i for i, p in enumerate(base_p)}
    worst = float("nan")
    for p, v in entries[1:]:
        pairs = [(i, index.get(tuple(np.round(q, 12)))) for i, q in enumerate(p)]
        pairs = [(i, j) for i, j in pairs if j is not None]
        if not pairs:
            continue
        mine, first = zip(*pairs, strict=True)
        with np.errstate(all="ignore"):
            r = np.abs(v[list(mine)] / base_v[list(first)])
        r = r[np.all(np.isfinite(r) & (r > 0), axis=1)]
        if len(r):
            dev = float((r.max(axis=0) / r.min(axis=0) - 1.0).max())
            worst = dev if np.isnan(worst) else max(worst, dev)
    return worst


def _fields(d: AcrossGroup) -> list[tuple[np.ndarray, np.ndarray]]:
    """(starts, dp/dt there) of each reference's group that has starts and a field."""
    rates = [(m.p0, m.rates() if m.n else None) for m in d.members]
    return [(p0, v) for p0, v in rates if v is not None]


def measure(d: AcrossGroup, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C10: under every reference the claims keep their verdicts and the field is a stretch.

    Fails if the other claims' verdicts change with the reference, and dp/dt at the same
    starts is not a per-axis rescaling of the first reference's.
    """
    value, changed = same_verdicts(d.records["claim"], d.verdicts())
    entries = d.cached("fields", lambda: _fields(d))
    dev = d.cached("stretch", lambda: stretch(entries) if len(entries) > 1 else float("nan"))
    details = (
        f"{d.n_values} references; claims whose verdict changes with the reference: {changed}; "
        f"dp/dt at the same starts is a per-axis rescaling within {fmt(dev)} "
        f"(max/min of the per-axis ratio - 1; n/a without a field)"
    )
    return value, {"share": value, "stretch_dev": dev}, details


CLAIM = Claim(
    id="C10",
    title="The reference only stretches the figure",
    paper="Since πref(yw|x) and πref(yl|x) are constants determined by the initial reference model, which may cause "
    "stretching or compression of the figure, rather than causing formal changes, we omit the denominators",
    where="§3.2 and footnote 4",
    metric="share of the other claims whose verdict is the same under every fixed reference (across combinations); "
    "distance of dp/dt at the same starts from a per-axis rescaling",
    rule=rule_stretch,
    measure=measure,
    models=POLICY_MODELS,
    across=("ref_w", "ref_l"),
    reads_verdicts=True,
    columns=("ref_w", "ref_l", "p1_0", "p2_0"),
    thresholds=("share_supported", "share_partly", "rtol_partly"),
)
