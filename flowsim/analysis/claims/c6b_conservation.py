"""C6b, flowsim's own law of the ratio plane: x1^2 + x2^2 is conserved along the DPO flow.

Derived in :mod:`flowsim.dynamics.closed_forms.dpo_ratio`, not in the paper; it makes
Remark 3 exact.  Measured: the worst distance of an integrated flow's end from the end the
law predicts, over the radius.  Also here: :func:`predicted_final` and
:func:`standard_dpo_law`, the law's consequences for a sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from flowsim.analysis.claims.rules import IDENTITY_THRESHOLDS
from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Claim, Metrics, NotApplicable, at_most, fmt
from flowsim.dynamics.record import StopRule

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.thresholds import ClaimThresholds


def rule_law(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C6b: ``m["worst"]`` (distance / radius) and ``m["n_status_mismatch"]``."""
    text = f"supported if worst <= {th.rtol_supported:g} and no status differs; partly if worst <= {th.rtol_partly:g}"
    if at_most(m["worst"], th.rtol_supported) and m["n_status_mismatch"] == 0:
        return SUPPORTED, text
    return (PARTLY if at_most(m["worst"], th.rtol_partly) else NOT), text


def predicted_final(x0: np.ndarray, refs: np.ndarray, stop: StopRule) -> tuple[np.ndarray, np.ndarray]:
    """The DPO flow's end point from the conserved radius R^2 = x1^2 + x2^2, ignoring t_max.

    Returns (x_final (n, 2), status (n,)): ``converged`` at (sqrt(R^2 - f^2), f) with the
    floor f = p2_floor / ref_l when that is inside the cap 1/ref_w, else ``capped`` at
    (1/ref_w, sqrt(R^2 - 1/ref_w^2)); a start already past the floor or cap stays put.
    """
    x1, x2 = x0[:, 0], x0[:, 1]
    cap, floor = 1.0 / refs[:, 0], stop.p2_floor / refs[:, 1]
    r2 = x1 * x1 + x2 * x2
    conv = r2 - floor * floor <= cap * cap
    with np.errstate(invalid="ignore"):
        xf = np.where(
            conv[:, None],
            np.stack([np.sqrt(x1 * x1 + (x2 - floor) * (x2 + floor)), floor], -1),
            np.stack([cap, np.sqrt(x2 * x2 + (x1 - cap) * (x1 + cap))], -1),
        )
    status = np.where(conv, "converged", "capped").astype(object)
    at_floor, at_cap = x2 <= floor, x1 >= cap
    still = at_floor | at_cap
    xf[still] = x0[still]
    status[at_floor] = "converged"
    status[~at_floor & at_cap] = "capped"
    return xf, status


def measure(d: Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C6b: integrated flows end where the conserved radius x1^2 + x2^2 = R^2 puts them.

    Fails if an integrated flow (nfev > 0) ends off the predicted point or with another
    status.  Closed-form rows (nfev = 0) are built on the law: "by construction", not applicable.
    """
    stop = d.ctx.stop
    d.dpo_loss()
    integrated = d.nfev > 0
    if not integrated.any():
        raise NotApplicable("by construction: every row is from the closed form (nfev = 0), which is built on this law")
    fin = np.isin(d.status, ("converged", "capped")) & integrated
    x0, cap, floor = d.x0, 1.0 / d.refs[:, 0], stop.p2_floor / d.refs[:, 1]
    r2 = x0[:, 0] ** 2 + x0[:, 1] ** 2
    # A circle that meets the cap and the floor together (within 1e-9 R^2) ends at an
    # ill-conditioned corner where either status is right: such starts are left out.
    tie = np.abs(r2 - floor**2 - cap**2) <= 1e-9 * r2
    n_tie = int((fin & tie).sum())
    fin &= ~tie
    if not fin.any():
        raise NotApplicable("no finished integrated flows")
    xf, status = predicted_final(d.x0[fin], d.refs[fin], stop)
    r = np.hypot(d.x0[fin, 0], d.x0[fin, 1])
    dev = np.hypot(*(d.xf[fin] - xf).T) / r
    worst = float(dev.max())
    mismatch = int((status != d.status[fin]).sum())
    p1_law = np.minimum(d.refs[fin, 0] * r, 1.0)
    p1_dev = float(np.abs(d.pf[fin, 0] - p1_law).max())
    details = (
        f"{int(fin.sum())} finished integrated flows ({int((~integrated).sum())} closed-form rows and "
        f"{int((d.status == 'timeout').sum())} timeouts left out, and {n_tie} "
        "starts on the circle through the corner (cap, floor), where either status is right); "
        f"{mismatch} with another status than predicted; max |p1_final - min(ref_w R, 1)| {fmt(p1_dev)}"
    )
    return worst, {"worst": worst, "n_status_mismatch": float(mismatch)}, details


def standard_dpo_law(flows: pd.DataFrame, p2_floor: float = 1e-6) -> dict[str, float]:
    """Check the standard-DPO consequences of the conservation law against a sweep's rows.

    With the reference at the SFT model every flow starts at x = (1, 1), so R^2 = 2: by
    :func:`predicted_final` it converges (x2 reaches the floor) iff
    2 - (p2_floor/p2_0)^2 <= 1/p1_0^2, ending at p1 = p1_0 sqrt(2 - (p2_floor/p2_0)^2) ~ sqrt(2) p1_0;
    otherwise it is capped at p1 = 1 with p2 = p2_0 sqrt(2 - 1/p1_0^2).
    """
    p0 = flows[["p1_0", "p2_0"]].to_numpy(float)
    xf, status = predicted_final(np.ones_like(p0), p0, StopRule(p2_floor=p2_floor))
    p_law = xf * p0
    conv = status == "converged"
    done = flows["status"].isin(["converged", "capped"]).to_numpy()
    pf = flows[["p1_final", "p2_final"]].to_numpy(float)
    return {
        "share_capped_law": float(np.mean(~conv)),
        "share_capped_data": float(np.mean(flows["status"] == "capped")),
        "status_mismatches": int(np.sum(done & ((flows["status"] == "capped").to_numpy() != ~conv))),
        "max_rel_err_p1": float(np.max(np.abs(pf[done, 0] / p_law[done, 0] - 1))),
        "max_rel_err_p2": float(np.max(np.abs(pf[done, 1] / p_law[done, 1] - 1))),
        "max_gain_p1": float(np.max(flows["p1_final"] / flows["p1_0"])),
    }


CLAIM = Claim(
    id="C6b",
    title="Conservation law of the ratio plane (derived in flowsim, not in the paper)",
    paper="(derived in flowsim.dynamics.closed_forms.dpo_ratio, not in the paper; it makes Remark 3 exact) "
    "x1^2 + x2^2 = R^2 is conserved, so the start fixes the end: p1_final = min(ref_w R, 1)",
    where="flowsim's own law, bearing on §3.3.2, Remark 3",
    metric="worst |x_final - x_predicted| / R over finished integrated flows (nfev > 0)",
    rule=rule_law,
    measure=measure,
    models=("ratio",),
    losses=("dpo",),
    columns=("beta", "x1_0", "x2_0", "x1_final", "x2_final", "p1_final", "ref_w", "ref_l", "status", "nfev"),
    thresholds=IDENTITY_THRESHOLDS,
)
