"""C1, Theorem 1: DPO's partial derivatives on the ratio plane, eq. (2).

Measured: the worst relative difference between DPO.grad (eq. (2) in a stable form) and
central differences of DPO.value, at the initial and final points of the group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.claims.measures import checkable, rel_dev, representable
from flowsim.analysis.claims.rules import IDENTITY_THRESHOLDS, rule_identity
from flowsim.analysis.verdicts import Claim, fmt

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def paper_grad(x: np.ndarray, b: float) -> np.ndarray:
    """Theorem 1, eq. (2), as printed (powers x^b, not the stable form of DPO.grad)."""
    x1, x2 = x[:, 0], x[:, 1]
    with np.errstate(all="ignore"):
        den = x1**b + x2**b
        return np.stack([-b * x2**b / (x1 * den), b * x2 ** (b - 1) / den], -1)


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Fails if DPO.grad (eq. (2) in a stable form) differs from finite differences of L."""
    loss = d.dpo_loss()
    pts = np.concatenate([d.x0, d.xf[d.ok]])
    pts, n_under = representable(loss, pts[np.all(np.isfinite(pts) & (pts > 0), axis=1)])
    pts, fd, n_under = checkable(loss, pts, d.beta, n_under)
    worst = float(rel_dev(loss.grad(pts), fd).max())
    eq2 = paper_grad(pts, d.beta)
    fin = np.all(np.isfinite(eq2), axis=1)
    eq2_dev = float(rel_dev(eq2[fin], loss.grad(pts[fin])).max()) if fin.any() else float("nan")
    details = (
        f"{len(pts)} points ({n_under} left out where the gradient under- or overflows); eq. (2) as printed vs "
        f"DPO.grad: worst {fmt(eq2_dev)} ({int(fin.sum())} points where x^b is finite)"
    )
    return worst, {"worst": worst}, details


CLAIM = Claim(
    id="C1",
    title="Theorem 1: the partial derivatives",
    paper="dL/dx1 = -b x2^b / (x1 (x1^b + x2^b)),  dL/dx2 = b x2^(b-1) / (x1^b + x2^b)",
    where="§3.1, Theorem 1, eq. (2)",
    metric="worst relative difference, DPO.grad vs central differences of DPO.value, at initial and final points",
    rule=rule_identity,
    measure=measure,
    models=("ratio",),
    losses=("dpo",),
    uses_flows=False,
    columns=("beta", "x1_0", "x2_0", "x1_final", "x2_final", "status"),
    thresholds=IDENTITY_THRESHOLDS,
)
