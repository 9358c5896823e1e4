"""The general chart: the policy's own parameters theta in R^d, integrated in t.

State y = (theta, t) and tau = t, so dy/dt = (-grad L(theta), 1).  A threshold on p_i is the
event log p_i(theta) = log level (a smooth function for a softmax policy), found by root
finding on the dense output and, for a stop, landed on by one Newton step along the
field.  Tolerances: theta are logits, i.e. log-probability coordinates, so each gets
atol = max(atol, rtol) (an absolute error in a logit is a relative error in a probability).
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.dynamics.charts.base import System
from flowsim.dynamics.events import Threshold


class ParameterChart:
    """Builds the :class:`System` of one flow in the policy's parameters."""

    #: A general flow may stall (a finite minimiser) and p_w may fall (likelihood displacement).
    may_stall, p_w_rises = True, False

    def __init__(self, objective) -> None:
        self.objective = objective
        self.policy = objective.policy

    def met_at_start(self, theta0: list[float], rules: tuple[Threshold, ...]) -> list[Threshold]:
        p = self.policy.probs(np.asarray(theta0))
        return [r for r in rules if bool(r.met(p))]

    def system(self, theta0: list[float], rules: tuple[Threshold, ...], t_max: float, options) -> System:
        grad = self.objective.grad
        d = len(theta0)
        g0 = grad(np.asarray(theta0, dtype=float))
        if not np.all(np.isfinite(g0)):
            raise FloatingPointError(f"non-finite gradient {g0.tolist()} at the initial condition {list(theta0)}")

        nonfinite: dict[str, str] = {}

        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            g = grad(y[:d])
            if not np.all(np.isfinite(g)):  # NaN: the solver rejects the step (see charts.base)
                nonfinite["where"] = f"the gradient was not finite ({g.tolist()}) at t={t!r}, theta={y[:d].tolist()}"
                return np.full(d + 1, np.nan)
            return np.append(-g, 1.0)

        atol = [max(options.atol, options.rtol)] * d + [options.atol]
        sys_ = System(
            y0=np.append(np.asarray(theta0, dtype=float), 0.0),
            rhs=rhs,
            atol=atol,
            tau_end=t_max,
            end_status="timeout",
            theta=lambda y: y[:d].tolist(),
            nonfinite=nonfinite,
        )
        for rule in rules:
            self._add(sys_, rule, d)
        if options.implicit:
            sys_.jac = self._jacobian(d)
        return sys_

    def _add(self, sys_: System, rule: Threshold, d: int) -> None:
        log_probs, i, level = self.policy.log_probs, rule.response, math.log(rule.level)

        def g(y: np.ndarray) -> float:
            return float(log_probs(y[:d])[i]) - level

        sys_.add_event(rule.name, lambda t, y: g(y), 1.0 if rule.rising else -1.0, rule.terminal)
        if rule.terminal:
            sys_.landing[rule.name] = (g, _directional(g))

    def _jacobian(self, d: int):
        hessian = self.objective.hessian

        def jac(t: float, y: np.ndarray) -> np.ndarray:
            out = np.zeros((d + 1, d + 1))
            out[:d, :d] = -hessian(y[:d])
            return out

        return jac


def _directional(g):
    """(y, f) -> dg/dtau = grad g . f, by a central difference along f."""

    def slope(y: np.ndarray, f: np.ndarray) -> float:
        eps = 1e-7 / max(float(np.linalg.norm(f)), 1e-300)
        return (g(y + eps * f) - g(y - eps * f)) / (2 * eps)

    return slope
