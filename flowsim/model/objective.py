"""The objective L(theta) = loss(h(theta); log_ref): a loss composed with a bound policy.

Vectorised over (..., d): the gradient is the policy's vector-Jacobian product of the
loss's gradient in h, so a loss never needs to know the parameterisation and a
parameterisation never needs to know the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsim.model.losses.base import Loss
from flowsim.model.parameterisations.base import Policy


@dataclass(frozen=True)
class Objective:
    """L(theta) for one loss and one bound policy.

    Examples
    --------
    >>> from flowsim.model.losses import DPO
    >>> from flowsim.model.parameterisations import RatioPlane
    >>> obj = Objective(DPO(beta=0.1), RatioPlane().bind([0.5, 0.5], [1.0, 1.0]))
    >>> obj.grad(obj.policy.theta0).tolist()  # Theorem 1: (-b s / x1, b s / x2), s = 1/2
    [-0.1, 0.1]
    """

    loss: Loss
    policy: Policy

    def h(self, theta: np.ndarray) -> np.ndarray:
        """Log-ratios (h_w, h_l), shape (..., 2)."""
        return self.policy.log_ratios(theta)

    def value(self, theta: np.ndarray) -> np.ndarray:
        """L, shape (...)."""
        return self.loss.value(self.h(theta), self.policy.log_ref)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """dL/dtheta, shape (..., d)."""
        theta = np.asarray(theta, dtype=float)
        return self.policy.vjp(theta, self.loss.grad(self.h(theta), self.policy.log_ref))

    def value_and_grad(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(L, dL/dtheta), sharing h."""
        theta = np.asarray(theta, dtype=float)
        h = self.h(theta)
        lr = self.policy.log_ref
        return self.loss.value(h, lr), self.policy.vjp(theta, self.loss.grad(h, lr))

    def hessian(self, theta: np.ndarray, step: float = 2.0**-17) -> np.ndarray:
        """d^2L/dtheta^2 (..., d, d), for implicit solvers.

        Analytic where the policy composes second derivatives (:meth:`Policy.chain_hessian`,
        e.g. the ratio plane, from the loss's Hessian in h); else central differences of
        :meth:`grad`.  The step is ``step`` times the policy's :meth:`~Policy.theta_scale` of each
        coordinate, and the quotient uses the step as represented; the result is symmetrised.
        """
        theta = np.asarray(theta, dtype=float)
        exact = self.policy.chain_hessian(theta, self.loss)
        if exact is not None:
            return exact
        scale = self.policy.theta_scale(theta)
        cols = []
        for k in range(theta.shape[-1]):
            up, down = theta.copy(), theta.copy()
            up[..., k] += step * scale[..., k]
            down[..., k] -= step * scale[..., k]
            width = (up[..., k] - down[..., k])[..., None]
            cols.append((self.grad(up) - self.grad(down)) / width)
        jac = np.stack(cols, axis=-1)
        return 0.5 * (jac + np.swapaxes(jac, -1, -2))
