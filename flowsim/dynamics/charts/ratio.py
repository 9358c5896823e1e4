r"""The ratio plane's charts: z_i = x_i**a_i (log x_i where a_i = 0), optionally clocked.

The flow dx/dt = -grad L(x) is integrated in a chart where

    dz_i/dt = v_i = a_i x_i^(a_i - 1) * (-dL/dx_i),

and, when the chart names a *clock* coordinate c, not in t but in tau with dtau = |dz_c|:
the state is y = (z1, z2, t) and dy/dtau = (v1, v2, 1) / |v_c| (without a clock,
(v1, v2, 1) and tau = t).  A fast chart is a :class:`RatioChartSpec` registered for an exact
loss kind in :data:`flowsim.dynamics.charts.RATIO_CHARTS`; any other loss on the ratio
plane gets the identity chart in t, with the field composed from the objective's gradient.

Thresholds on p_i are levels of x_i = p_i / ref_i and so of z_i: on the clock coordinate
they are reached at a known tau (a stop ends the integration there, a crossing is the
event tau = tau_level); on the other coordinate they are ``solve_ivp`` events on the state.
With a clock, the timeout is an event on t; without one, it is the end of the span.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowsim.dynamics.charts.base import System
from flowsim.dynamics.events import Threshold


@dataclass(frozen=True)
class RatioChartSpec:
    """A chart for one loss on the ratio plane: exponents, clock, and optionally a closed-form field.

    ``field(loss)`` returns (z1, z2) -> (dz1/dtau, dz2/dtau, dt/dtau) on Python floats, or is
    None (the field is composed from the objective); ``applies(loss)`` says for which of the
    loss's hyperparameters the spec was derived (e.g. DPO's default divergence only).
    """

    exponents: tuple[float, float] = (1.0, 1.0)
    clock: int | None = None
    field: Callable | None = None
    applies: Callable = lambda loss: True
    #: Declared properties of the flow (derived for the loss, not inferred): its gradient never
    #: vanishes (no ``stationary`` test needed), and p_w only rises (no minimum to look for).
    never_stalls: bool = False
    p_w_rises: bool = False


IDENTITY = RatioChartSpec()


class PowerChart:
    """Coordinates z_i = x_i**a_i (log x_i where a_i = 0), elementwise on arrays (..., 2).

    Where a_i > 0 the inverse is continued evenly past z_i = 0 (x_i = |z_i|**(1/a_i)), so
    that Runge-Kutta stages which overshoot the end of a flow see a finite field.
    """

    def __init__(self, exponents: tuple[float, float]) -> None:
        self.a = tuple(float(a) for a in exponents)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        return np.stack(
            [np.exp(z[..., i]) if a == 0 else np.abs(z[..., i]) ** (1 / a) for i, a in enumerate(self.a)], -1
        )

    def deriv(self, x: np.ndarray) -> np.ndarray:
        """dz_i/dx_i."""
        x = np.asarray(x, dtype=float)
        return np.stack([1 / x[..., i] if a == 0 else a * x[..., i] ** (a - 1) for i, a in enumerate(self.a)], -1)

    def deriv2(self, x: np.ndarray) -> np.ndarray:
        """d^2 z_i / dx_i^2."""
        x = np.asarray(x, dtype=float)
        return np.stack(
            [-1 / x[..., i] ** 2 if a == 0 else a * (a - 1) * x[..., i] ** (a - 2) for i, a in enumerate(self.a)], -1
        )

    def scalar_maps(self, i: int) -> tuple[Callable[[float], float], Callable[[float], float]]:
        """(z -> x, x -> dz/dx) for coordinate i, on Python floats (the integrator's fast path)."""
        a = self.a[i]
        if a == 0:
            return math.exp, lambda x: 1.0 / x
        if a == 1:
            return abs, lambda x: 1.0
        inv, am1 = 1.0 / a, a - 1.0
        return (lambda z: abs(z) ** inv), (lambda x: a * x**am1)

    def level(self, i: int, x_level: float) -> tuple[float, float]:
        """(z level, sign) such that sign * (z_i - level) > 0 exactly where x_i > x_level."""
        a = self.a[i]
        return (math.log(x_level), 1.0) if a == 0 else (x_level**a, math.copysign(1.0, a))


class RatioChart:
    """Builds the :class:`System` of one ratio-plane flow (see the module docstring)."""

    def __init__(self, objective, spec: RatioChartSpec) -> None:
        self.objective, self.spec = objective, spec
        self.chart = PowerChart(spec.exponents)
        self.clock = spec.clock
        self.may_stall, self.p_w_rises = not spec.never_stalls, spec.p_w_rises
        self.ref = [float(r) for r in np.asarray(objective.policy.ref, dtype=float).reshape(2)]

    def levels(self, rule: Threshold) -> float:
        """The threshold as a level of x_i = p_i / ref_i."""
        return rule.level / self.ref[rule.response]

    def met_at_start(self, x0: list[float], rules: tuple[Threshold, ...]) -> list[Threshold]:
        """The rules the start already meets, compared in x as the chart sees them."""
        out = []
        for r in rules:
            x, lev = x0[r.response], self.levels(r)
            if (x >= lev) if r.rising else (x <= lev):
                out.append(r)
        return out

    def system(self, x0: list[float], rules: tuple[Threshold, ...], t_max: float, options) -> System:
        """The initial-value problem of the flow from x0, with its events (raises if the field is not finite)."""
        chart, clock = self.chart, self.clock
        z0 = (chart.level(0, x0[0])[0], chart.level(1, x0[1])[0])
        field = self._field(z0)
        f0 = field(*z0)
        if not all(map(math.isfinite, f0)):
            raise FloatingPointError(f"non-finite field {list(f0)} at the initial condition {list(x0)}")

        nonfinite: dict[str, str] = {}

        def rhs(tau: float, y: np.ndarray) -> np.ndarray:
            z1, z2, _ = y.tolist()
            f1, f2, f3 = field(z1, z2)
            if not (math.isfinite(f1) and math.isfinite(f2) and math.isfinite(f3)):
                # a Runge-Kutta stage can overshoot the model's domain (past p_l = 1, where ORPO has a
                # pole, from a start near it): NaN makes the solver reject the step and shrink it; if
                # the field is not finite on the path itself the solver gives up, and the place is named
                nonfinite["where"] = f"the field was not finite ({[f1, f2, f3]}) at tau={tau!r}, z={[z1, z2]}"
                return np.full(3, np.nan)
            return np.array((f1, f2, f3))

        # Tolerances per state component (z1, z2, t): see SolverOptions.
        atol = [max(options.atol, options.rtol) if a == 0 else options.atol for a in chart.a]
        atol.append(options.rtol * f0[2] if clock is not None else options.atol)
        sys_ = System(
            y0=np.array([z0[0], z0[1], 0.0]),
            rhs=rhs,
            atol=atol,
            tau_end=math.inf if clock is not None else t_max,
            end_status="timeout",
            theta=self._theta,
            theta_path=lambda states: chart.inverse(states[:2].T),
            nonfinite=nonfinite,
        )
        sigma = math.copysign(1.0, f0[clock]) if clock is not None else 1.0  # the clock's direction
        for rule in rules:
            self._add_level(sys_, rule, z0, sigma)
        if clock is not None:  # t is a state: the timeout is an event on it
            sys_.add_event("timeout", lambda t, y: y[2] - t_max, 1.0, True)
            sys_.landing["timeout"] = (lambda y: y[2] - t_max, lambda y, f: f[2])
        if options.implicit:
            sys_.jac = self._jacobian(sigma)
        return sys_

    def _add_level(self, sys_: System, rule: Threshold, z0, sigma: float) -> None:
        """A threshold as a level of z_i: a known tau on the clock, else a state event."""
        i = rule.response
        if rule.terminal:  # a stop puts x_i on its level: the record snaps it there exactly
            sys_.snap[rule.name] = (i, self.levels(rule))
        z_level, sign = self.chart.level(i, self.levels(rule))
        direction = sign if rule.rising else -sign  # the sign of dz_i/dtau at the crossing
        if i == self.clock:
            if direction != sigma:  # the clock runs away from this level: never reached
                return
            tau_level = abs(z_level - z0[i])
            if rule.terminal:
                if tau_level < sys_.tau_end:
                    sys_.tau_end, sys_.end_status = tau_level, rule.name
                return
            sys_.add_event(rule.name, lambda t, y: t - tau_level, 1.0, False)
            return
        sys_.add_event(rule.name, lambda t, y: y[i] - z_level, direction, rule.terminal)
        if rule.terminal:
            sys_.landing[rule.name] = (lambda y: y[i] - z_level, lambda y, f: f[i])

    def _theta(self, y: np.ndarray) -> list[float]:
        return [self.chart.scalar_maps(i)[0](float(y[i])) for i in (0, 1)]

    def _field(self, z0):
        """(z1, z2) -> (dz1/dtau, dz2/dtau, dt/dtau), on Python floats: the right-hand side.

        The spec's closed form when it has one; else composed from the objective's gradient.
        """
        if self.spec.field is not None:
            return self.spec.field(self.objective.loss)
        chart, clock, grad = self.chart, self.clock, self.objective.grad
        (inv1, d1), (inv2, d2) = chart.scalar_maps(0), chart.scalar_maps(1)

        def field(z1: float, z2: float) -> tuple[float, float, float]:
            x1, x2 = inv1(z1), inv2(z2)
            g1, g2 = grad(np.array((x1, x2))).tolist()
            v1, v2 = -d1(x1) * g1, -d2(x2) * g2
            if clock is None:
                return v1, v2, 1.0
            r = 1.0 / abs(v2 if clock else v1)
            return v1 * r, v2 * r, r

        return field

    def _jacobian(self, sigma: float):
        """d(dy/dtau)/dy for y = (z1, z2, t), from the objective's Hessian (for the implicit methods)."""
        chart, clock, obj = self.chart, self.clock, self.objective

        def jac(tau: float, y: np.ndarray) -> np.ndarray:
            x = chart.inverse(y[:2])
            d1, d2 = chart.deriv(x), chart.deriv2(x)
            g, h = obj.grad(x), obj.hessian(x)
            v = -d1 * g
            jv = -(np.diag(d2 * g) + d1[:, None] * h) / d1[None, :]  # dv_i/dz_k
            out = np.zeros((3, 3))
            if clock is None:
                out[:2, :2] = jv
                return out
            rho = 1.0 / abs(v[clock])
            drho = -sigma * rho * rho * jv[clock]  # d(1/|v_c|)/dz_k
            out[:2, :2] = rho * jv + v[:, None] * drho[None, :]
            out[2, :2] = drho
            return out

        return jac
