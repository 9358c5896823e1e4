"""C3, Remark 1's argument: the flow ends with x1 > 1 and x2 < 1, so the update rate x2/x1 < 1.

Measured: the share of moving flows (t_stop > 0) that end with x1 > 1 and x2 < 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.analysis.claims.measures import share_of
from flowsim.analysis.claims.rules import EVERY_MODEL, SHARE_THRESHOLDS, rule_share
from flowsim.analysis.verdicts import Claim, NotApplicable, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Remark 1's argument: the flow ends with x1 > 1 and x2 < 1 (so x2/x1 < 1).

    Fails if flows end with x1 <= 1 (p_w not above its reference: a reference of 1, a
    capped ratio plane, or p_w displaced) or x2 >= 1.  (The share of starts with x2/x1 < 1
    is the grid's symmetry and the share at the stop the stop rule: both are in details,
    neither is judged.)
    """
    mv = d.moving
    if not mv.any():
        raise NotApplicable("no moving flows")
    share = share_of((d.xf[:, 0] > 1) & (d.xf[:, 1] < 1), mv)
    init = share_of(d.x0[:, 1] < d.x0[:, 0])
    fin = share_of(d.xf[:, 1] < d.xf[:, 0], d.ok)
    details = (
        f"{int(mv.sum())} moving flows; ending with x1 > 1: {fmt(share_of(d.xf[:, 0] > 1, mv))}, with x2 < 1: "
        f"{fmt(share_of(d.xf[:, 1] < 1, mv))}; (not judged: x2/x1 < 1 at the start {fmt(init)}, at the stop "
        f"{fmt(fin)})"
    )
    return share, {"share": share}, details


CLAIM = Claim(
    id="C3",
    title="Remark 1: the update rate falls below 1 (x1 > 1, x2 < 1)",
    paper="For any pairwise preference data, the update rate x2/x1 < 1 holds. [...] x1 is greater than 1, x2 is "
    "less than 1, and therefore x2 < x1.",
    where="§3.1, Remark 1",
    metric="share of moving flows ending with x1 > 1 and x2 < 1 (the remark's argument)",
    rule=rule_share,
    measure=measure,
    models=EVERY_MODEL,
    columns=("x1_0", "x2_0", "x1_final", "x2_final", "status", "t_stop"),
    thresholds=SHARE_THRESHOLDS,
)
