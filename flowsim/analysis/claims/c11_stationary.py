"""C11, Remark 3 and §3.2: local minima and saddle points hinder escape.

Measured: the share of flows that end ``stationary``, and (DPO on the ratio plane) the
stationary points on a 400 x 400 log mesh of the plane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import share_of
from flowsim.analysis.claims.rules import POLICY_MODELS
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_least

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_stuck(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C11: ``m["share_stationary"]`` (flows ending stationary) and ``m["n_mesh"]`` (mesh points)."""
    lo = 1.0 - th.share_supported
    text = f"supported if share ending stationary >= {lo:.3g} or mesh stationary points > 0; partly if any ends so"
    if at_least(m["share_stationary"], lo) or at_least(m["n_mesh"], 1.0):
        return SUPPORTED, text
    s = m["share_stationary"]
    return (PARTLY if not np.isnan(s) and s > 0 else NOT), text


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C11 (Remark 3, §3.2): local minima or saddles stop flows.

    Fails if no flow ends ``stationary`` and (DPO on the ratio plane) no mesh point is.
    """
    if not d.ok.any():
        raise NotApplicable("no finished flows")
    share = share_of(d.status == "stationary", d.ok)
    n_mesh, mesh = d.mesh_check(th.stationary_tol, "DPO ratio-plane mesh: min |grad L| {gmin}, {n} stationary points")
    details = f"{int((d.status == 'stationary').sum())} of {int(d.ok.sum())} flows end stationary; {mesh}"
    return share, {"share_stationary": share, "n_mesh": n_mesh}, details


CLAIM = Claim(
    id="C11",
    title="Local minima and saddle points hinder escape",
    paper="the presence of very small gradients in the upper-right corner can lead to sluggish convergence and "
    "challenges in escaping local minima",
    where="§3.3.2, Remark 3; §3.2 (saddle points)",
    metric="share of flows ending stationary; for DPO on the ratio plane, stationary points on a mesh",
    rule=rule_stuck,
    measure=measure,
    models=POLICY_MODELS,
    reads=("stationary_tol",),
    columns=("status",),
    thresholds=("share_supported", "stationary_tol"),
)
