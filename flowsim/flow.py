r"""One initial condition -> one :class:`~flowsim.records.FlowResult`, by ``solve_ivp``.

The flow dx/dt = -grad L(x) is integrated in a *chart* z_i = x_i**a_i (z_i = log x_i for
a_i = 0) chosen by the loss (:meth:`Loss.chart_exponents`), with

    dz_i/dt = a_i x_i^(a_i - 1) * (-dL/dx_i).

Why a chart: for DPO with beta < 1 the speed |dx2/dt| ~ x2^(beta-1) diverges as x2 -> 0,
and for beta < 2 the flow reaches x2 = 0 in finite time, so in x an adaptive solver spends
most of its steps creeping up on the singular end.  In DPO's chart z = (x1^2, x2^(2-beta))
the velocity dz2/dt = -(2-beta) beta / (x1^beta + x2^beta) stays finite and non-zero at
x2 = 0, so the end is crossed like any other point.  Stage evaluations that step past
x2 = 0 (z2 < 0) are evaluated at the floor / 100 so that the field stays finite there;
the stop event always comes first.

Stops (terminal events) and crossings (non-terminal) are all ``solve_ivp`` events, located
by root finding on the dense output to solver accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from flowsim._validation import check_choice, check_interval, check_positive
from flowsim.losses import Loss
from flowsim.records import FlowResult, StopRule

#: The solve_ivp methods the integrator accepts.
METHODS: tuple[str, ...] = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
#: Default method and tolerances: see the README's "Accuracy" section for the measurement.
DEFAULT_METHOD, DEFAULT_RTOL, DEFAULT_ATOL = "DOP853", 1e-9, 1e-12
_IMPLICIT = {"Radau", "BDF", "LSODA"}


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate one flow.

    Parameters
    ----------
    method : str, default "DOP853"
        A ``solve_ivp`` method, one of :data:`METHODS`.  "auto" means the default.
        Implicit methods get the analytic Jacobian (from the loss's Hessian).
    rtol, atol : float, default 1e-9 and 1e-12
        ``solve_ivp`` tolerances, applied in chart coordinates.
    chart : {"smooth", "identity"}, default "smooth"
        "smooth" integrates in the loss's chart; "identity" in plain x (as a user writing
        ``solve_ivp`` by hand would; kept for the benchmark baseline and for checks).
    """

    method: str = DEFAULT_METHOD
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    chart: str = "smooth"

    def __post_init__(self) -> None:
        method = DEFAULT_METHOD if self.method == "auto" else self.method
        object.__setattr__(self, "method", check_choice("method", method, METHODS))
        object.__setattr__(self, "rtol", check_interval("rtol", self.rtol, 0.0, 1.0, closed="neither"))
        object.__setattr__(self, "atol", check_positive("atol", self.atol))
        check_choice("chart", self.chart, ("smooth", "identity"))


class PowerChart:
    """Coordinates z_i = x_i**a_i (log x_i where a_i = 0), elementwise on arrays (..., 2).

    Where a_i > 0 the inverse is continued evenly past z_i = 0 (x_i = |z_i|**(1/a_i)), so
    that Runge-Kutta stages which overshoot the end of a flow see a finite field.
    """

    def __init__(self, exponents: tuple[float, float]) -> None:
        self.a = tuple(float(a) for a in exponents)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.stack([np.log(x[..., i]) if a == 0 else x[..., i] ** a for i, a in enumerate(self.a)], -1)

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


def integrate(
    loss: Loss,
    x0: object,
    stop: StopRule | None = None,
    options: SolverOptions | None = None,
    *,
    path: bool = False,
    path_points: int = 200,
) -> FlowResult:
    """Integrate the gradient flow dx/dt = -grad L(x) from one initial condition.

    Parameters
    ----------
    loss : Loss
        The loss, e.g. ``flowsim.losses.DPO(beta=0.1)``.
    x0 : array_like, shape (2,)
        Initial ratios (x1, x2) in the loss's domain box.
    stop : StopRule, optional
        Stop and crossing criteria (defaults: ``StopRule()``).
    options : SolverOptions, optional
        Method, tolerances, chart (defaults: ``SolverOptions()``).
    path : bool, default False
        Also return ``path_points`` points along the path, evenly spaced in time.

    Returns
    -------
    FlowResult
        Status, stop time and point, crossing times ``t_w`` and ``t_l``, and ``nfev``.

    Examples
    --------
    >>> from flowsim.losses import DPO
    >>> r = integrate(DPO(beta=0.1), [0.5, 0.5])
    >>> r.status, round(r.t_stop, 4), round(r.x1_final, 6)
    ('converged', 2.5921, 0.707107)
    """
    stop = StopRule() if stop is None else stop
    options = SolverOptions() if options is None else options
    x0 = loss.check_domain("x0", x0)
    if x0.shape != (2,):
        raise ValueError(f"x0 must be one point of shape (2,); got shape {x0.shape}")
    x_floor = stop.p2_floor / loss.ref_l
    x_cap = 1.0 / loss.ref_w
    x1_target, x2_target = stop.p1_target / loss.ref_w, stop.p2_target / loss.ref_l
    t_w0 = 0.0 if x0[0] >= x1_target else math.nan
    t_l0 = 0.0 if x0[1] <= x2_target else math.nan

    if x0[1] <= x_floor or x0[0] >= x_cap:  # already stopped
        status = "converged" if x0[1] <= x_floor else "capped"
        return _record(loss, status, 0.0, x0, t_w0, t_l0, 0, "", None)

    chart = PowerChart(loss.chart_exponents() if options.chart == "smooth" else (1.0, 1.0))
    (inv1, d1), (inv2, d2) = chart.scalar_maps(0), chart.scalar_maps(1)
    grad_at = loss.grad_at

    def rhs(t: float, z: np.ndarray) -> np.ndarray:
        z1, z2 = z.tolist()
        x1, x2 = inv1(z1), inv2(z2)
        g1, g2 = grad_at(x1, x2)
        v1, v2 = -d1(x1) * g1, -d2(x2) * g2
        if not (math.isfinite(v1) and math.isfinite(v2)):
            # scipy's Runge-Kutta loop never ends on a NaN derivative (its step size turns NaN)
            raise FloatingPointError(f"non-finite field {[v1, v2]} at t={t!r}, x={[x1, x2]}")
        return np.array((v1, v2))

    def jac(t: float, z: np.ndarray) -> np.ndarray:
        x = chart.inverse(z)
        d1, d2 = chart.deriv(x), chart.deriv2(x)
        g, h = loss.grad(x), loss.hessian(x)
        return -(np.diag(d2 * g) + d1[:, None] * h) / d1[None, :]

    def event(i: int, x_level: float, terminal: bool, direction: float):
        level, sign = chart.level(i, x_level)

        def g(t: float, z: np.ndarray) -> float:
            return sign * (z[i] - level)

        g.terminal, g.direction = terminal, direction  # type: ignore[attr-defined]
        return g

    events = [event(1, x_floor, True, -1.0), event(0, x_cap, True, 1.0)]
    if math.isnan(t_w0):
        events.append(event(0, x1_target, False, 1.0))
    if math.isnan(t_l0):
        events.append(event(1, x2_target, False, -1.0))

    kwargs = {"jac": jac} if options.method in _IMPLICIT else {}
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(
                rhs, (0.0, stop.t_max), chart.forward(x0), method=options.method,
                rtol=options.rtol, atol=options.atol, events=events, dense_output=path, **kwargs,
            )  # fmt: skip
    except Exception as exc:  # a failing flow is a result, not a crash
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")
    if sol.status == -1:
        return FlowResult.failed(sol.message, sol.nfev)

    def first(k: int) -> float:
        return float(sol.t_events[k][0]) if len(events) > k and sol.t_events[k].size else math.nan

    if sol.status == 1:  # a terminal event: the earlier of floor and cap
        k = 0 if sol.t_events[0].size and (not sol.t_events[1].size or sol.t_events[0][0] <= sol.t_events[1][0]) else 1
        status, t_end, z_end = ("converged", "capped")[k], float(sol.t_events[k][0]), sol.y_events[k][0]
    else:
        status, t_end, z_end = "timeout", float(sol.t[-1]), sol.y[:, -1]
    x_end = chart.inverse(z_end)
    # An event puts the state on its level up to rounding: snap that coordinate exactly.
    if status == "converged":
        x_end[1] = x_floor
    elif status == "capped":
        x_end[0] = x_cap
    t_w = t_w0 if not math.isnan(t_w0) else first(2)
    t_l = t_l0 if not math.isnan(t_l0) else first(2 if not math.isnan(t_w0) else 3)
    trace = None
    if path:
        ts = np.linspace(0.0, t_end, path_points)
        trace = (ts, chart.inverse(sol.sol(ts).T))
    return _record(loss, status, t_end, x_end, t_w, t_l, int(sol.nfev + getattr(sol, "njev", 0)), "", trace)


def _record(loss, status, t, x, t_w, t_l, nfev, message, trace) -> FlowResult:
    x = np.asarray(x, dtype=float)
    p = loss.to_prob(x)
    return FlowResult(
        status=status, t_stop=float(t), x1_final=float(x[0]), x2_final=float(x[1]),
        p1_final=float(p[0]), p2_final=float(p[1]), loss_final=float(loss.value(x)),
        t_w=float(t_w), t_l=float(t_l), nfev=nfev, message=message,
        path_t=None if trace is None else trace[0], path_x=None if trace is None else trace[1],
    )  # fmt: skip


__all__ = ["DEFAULT_ATOL", "DEFAULT_METHOD", "DEFAULT_RTOL", "METHODS", "PowerChart", "SolverOptions", "integrate"]
