"""C2, Corollary 1: the update rate |dL/dx1 / dL/dx2| = x2/x1 on the ratio plane, eq. (3).

Measured: the worst relative deviation of the ratio of central differences of DPO.value
from x2/x1, at the starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import checkable, median_of, representable
from flowsim.analysis.claims.rules import IDENTITY_THRESHOLDS, rule_identity
from flowsim.analysis.verdicts import Claim, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Fails if |dL/dx1 / dL/dx2| (finite differences) differs from x2/x1."""
    loss = d.dpo_loss()
    pts, n_under = representable(loss, d.x0)
    pts, fd, n_under = checkable(loss, pts, d.beta, n_under)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(np.abs(fd[:, 0] / fd[:, 1]) / (pts[:, 1] / pts[:, 0]) - 1.0)
    worst = float(np.nanmax(np.where(np.isnan(dev), np.inf, dev)))
    g = loss.grad(pts)
    exact = float(np.max(np.abs(np.abs(g[:, 0] / g[:, 1]) * pts[:, 0] / pts[:, 1] - 1.0)))
    v, _ = d.field()
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.abs(v[:, 0] / v[:, 1])
    details = (
        f"{len(pts)} initial points ({n_under} left out where the gradient under- or overflows); with DPO.grad: "
        f"worst {fmt(exact)}; in probabilities the rate "
        f"|dp1/dt|/|dp2/dt| = (ref_w/ref_l) x2/x1 has median {fmt(median_of(pr))}"
    )
    return worst, {"worst": worst}, details


CLAIM = Claim(
    id="C2",
    title="Corollary 1: the update rate x2/x1",
    paper="|dL/dx1 / dL/dx2| = x2/x1",
    where="§3.1, Corollary 1, eq. (3)",
    metric="worst relative deviation of |dL/dx1 / dL/dx2| (central differences) from x2/x1",
    rule=rule_identity,
    measure=measure,
    models=("ratio",),
    losses=("dpo",),
    uses_flows=False,
    columns=("beta", "x1_0", "x2_0", "ref_w", "ref_l"),
    thresholds=IDENTITY_THRESHOLDS,
)
