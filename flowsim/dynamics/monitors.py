"""Stops and path records that are functions of the parameters, for any chart.

The stop rule's probability thresholds are levels a chart can place in its own coordinates
(:mod:`flowsim.dynamics.events`); the rest are functions of theta evaluated on the chart's
state: the loss target (``reached_loss``), the margin target (``reached_margin``), the
stationary tolerance (``stationary``), and two *monitors* that record the path without
stopping it: where p_w turns from falling to rising (its local minima: ``p_w_min``) and where
p_w + p_l turns from rising to falling (its local maxima: ``max_mass``).  Each is a
``solve_ivp`` event; the slope a monitor needs, dp/dtau, is a central difference of the
probabilities along the field.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flowsim.dynamics.charts.base import System
from flowsim.dynamics.record import StopRule

#: The direction in which each function stop's residual (below) crosses 0 when the stop is met.
FUNCTION_DIRECTIONS: dict[str, float] = {"reached_loss": -1.0, "reached_margin": 1.0, "stationary": -1.0}


def along(g: Callable[[np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    """(y, f) -> dg/dtau = grad g . f, by a central difference along f (for landing on g = 0)."""

    def slope(y: np.ndarray, f: np.ndarray) -> float:
        eps = 1e-7 * max(1.0, float(np.max(np.abs(y)))) / max(float(np.max(np.abs(f))), 1e-300)
        return (g(y + eps * f) - g(y - eps * f)) / (2 * eps)

    return slope


def stop_functions(objective, stop: StopRule, *, may_stall: bool = True) -> dict[str, tuple[Callable, float]]:
    """The function stops that are on (:meth:`StopRule.functions`): name -> (residual of theta, direction)."""
    residuals = {
        "reached_loss": lambda th: float(objective.value(th)) - stop.loss_target,
        "reached_margin": lambda th: _margin(objective, th) - stop.margin_target,
        "stationary": lambda th: float(np.linalg.norm(objective.grad(th))) - stop.stationary_tol,
    }
    return {n: (residuals[n], FUNCTION_DIRECTIONS[n]) for n in stop.functions(may_stall=may_stall)}


def _margin(objective, theta: np.ndarray) -> float:
    h = objective.h(theta)
    return float(h[..., 0] - h[..., 1])


def add_stops(sys_: System, objective, stop: StopRule, *, may_stall: bool = True) -> None:
    """Terminal events for the function stops, each with its landing residual."""
    for name, (fn, direction) in stop_functions(objective, stop, may_stall=may_stall).items():
        g = _on_state(sys_, fn)
        sys_.add_event(name, lambda t, y, g=g: g(y), direction, True)
        sys_.landing[name] = (g, along(g))


def add_monitors(sys_: System, policy, *, p_w_rises: bool = False) -> None:
    """Non-terminal events at the turns of p_w (minima) and of p_w + p_l (maxima)."""

    def probs(y: np.ndarray) -> np.ndarray:
        return policy.probs(np.asarray(sys_.theta(y)))

    def rate(y: np.ndarray, weights: np.ndarray) -> float:
        f = sys_.rhs(0.0, y)
        eps = 1e-7 * max(1.0, float(np.max(np.abs(y[:-1])))) / max(float(np.max(np.abs(f[:-1]))), 1e-300)
        dp = probs(y + eps * f)[:2] - probs(y - eps * f)[:2]
        return float(weights @ dp) / (2 * eps)

    if not p_w_rises:
        sys_.add_event("p_w_turn", lambda t, y: rate(y, np.array([1.0, 0.0])), 1.0, False)
    sys_.add_event("mass_turn", lambda t, y: rate(y, np.array([1.0, 1.0])), -1.0, False)


def _on_state(sys_: System, fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    return lambda y: fn(np.asarray(sys_.theta(y)))
