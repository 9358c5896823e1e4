"""The seed paper's ratio plane: theta = x = (pi(y_w)/ref_w, pi(y_l)/ref_l) itself.

This is the picture the paper draws: gradient flow run directly in the ratios, each in
(0, 1/ref]; nothing ties p_w + p_l to 1, so a path can leave the probability simplex
(``max_mass`` > 1 in a sweep).  h = log x and dh_i/dx_i = 1/x_i, so the VJP is g / x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.model.parameterisations.base import Parameterisation, Policy, margin_keeps_sign


class RatioPolicy(Policy):
    """Ratio-plane policies at starts x0 = p0 / ref (batch shape of ``p0``)."""

    kind = "ratio"
    has_cap = True
    dim = 2
    n_responses = 2

    def __init__(self, p0: np.ndarray, ref: np.ndarray) -> None:
        self.p0 = np.asarray(p0, dtype=float)
        self.ref = np.broadcast_to(np.asarray(ref, dtype=float), self.p0.shape)
        self.log_ref = np.log(self.ref)
        self.upper = 1.0 / self.ref

    @property
    def theta0(self) -> np.ndarray:
        return self.p0 / self.ref

    def log_probs(self, theta):
        return np.log(np.asarray(theta, dtype=float)) + self.log_ref

    def log_ratios(self, theta):
        return np.log(np.asarray(theta, dtype=float))

    def probs(self, theta):
        return np.asarray(theta, dtype=float) * self.ref

    def ratios(self, theta):
        return np.asarray(theta, dtype=float)

    def describe_domain(self):
        ub = np.asarray(self.upper).reshape(-1, 2)[0]
        rf = np.asarray(self.ref).reshape(-1, 2)[0]
        return (
            f"0 < x1 <= {ub[0]:g}, 0 < x2 <= {ub[1]:g}: probabilities in (0, 1] with ref_w={rf[0]:g}, ref_l={rf[1]:g}"
        )

    def vjp(self, theta, g):
        return np.asarray(g, dtype=float) / np.asarray(theta, dtype=float)

    def chain_hessian(self, theta, loss):
        # h_i = log x_i: d2L/dx_i dx_j = (H_ij - delta_ij g_i) / (x_i x_j), the bracket from the
        # loss (Loss.log_hessian, free of cancellation where the loss says so), one division at a time
        x = np.asarray(theta, dtype=float)
        return loss.log_hessian(np.log(x), self.log_ref) / x[..., :, None] / x[..., None, :]

    def theta_scale(self, theta):
        return np.abs(np.asarray(theta, dtype=float))  # ratios: steps relative to x itself

    def in_domain(self, theta):
        theta = np.asarray(theta, dtype=float)
        return np.all((theta > 0) & (theta <= self.upper), axis=-1)

    def row(self, i):
        return RatioPolicy(self.p0[i], self.ref[i])


@dataclass(frozen=True)
class RatioPlane(Parameterisation):
    """theta = x, the paper's plane (no hyperparameters).

    Examples
    --------
    >>> pol = RatioPlane().bind([0.3, 0.6], [0.5, 1.0])
    >>> pol.theta0.tolist(), pol.probs(pol.theta0).tolist()
    ([0.6, 0.6], [0.3, 0.6])
    """

    kind: ClassVar[str] = "ratio"
    normalised: ClassVar[bool] = False

    def bind(self, p0, ref):
        return RatioPolicy(p0, ref)

    def impossible(self, outcome, loss, p0, ref):
        """Displacement, for a margin loss whose dL/dh_w is <= 0 at every start (:func:`margin_keeps_sign`).

        With theta = x = e^h, d log x_w/dt = -g_w / x_w^2 and, for g_l = -g_w,
        d(h_w - h_l)/dt = -g_w (1/x_w^2 + 1/x_l^2).
        """
        if outcome != "displaced":
            return None
        how = "on the ratio plane d log p_w/dt = -dL/dh_w / x_w^2, whose sign the margin's flow keeps"
        return margin_keeps_sign(loss, p0, ref, how)
