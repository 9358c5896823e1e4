r"""One initial condition -> one :class:`~flowsim.records.FlowResult`, by ``solve_ivp``.

The flow dx/dt = -grad L(x) is integrated in a *chart* z_i = x_i**a_i (z_i = log x_i for
a_i = 0) chosen by the loss (:meth:`Loss.chart_exponents`), where

    dz_i/dt = v_i = a_i x_i^(a_i - 1) * (-dL/dx_i),

and, when the loss names a *clock* coordinate c (:meth:`Loss.clock_coordinate`), not in t
but in tau with dtau = |dz_c|: the state is y = (z1, z2, t) and

    dy/dtau = (v1, v2, 1) / |v_c|            (without a clock: (v1, v2, 1) and tau = t).

Why: for DPO with beta < 2 the flow reaches x2 = 0 in finite time with a speed
|dx2/dt| ~ x2^(beta - 1) that diverges, and the time left near the end is a sum of two
incommensurate powers of x2, so no chart of x2 alone makes it smooth in t: an adaptive
solver in t creeps up on the end (in x, or less so in any power chart).  With DPO's chart
(x1^2, log x2) and log x2 as the clock, the right-hand side is a sum of exponentials in
tau and the stop at the floor is a known tau (a few steps per e-fold, then fewer).

Stops and crossings on the clock coordinate are reached at a known tau: a stop there ends
the integration (the end of ``t_span``) and a crossing is the event tau = tau_level, which
root finding on the dense output solves at once.  Every other stop (terminal event) or
crossing (non-terminal event) is a ``solve_ivp`` event on the state, located by root
finding on the dense output to solver accuracy.  With a clock, the timeout is an event on
t; without one, it is the end of ``t_span``.  The dense output is an order less accurate
than the steps, so a stop found by an event is then landed on: one more step, exactly from
the last accepted point to the root, and a Newton step on the event's component (this
takes the worst t_stop error on the paper grid from 7.5e-9 to 1.9e-9 at rtol 1e-9, for
~1% more work).  Crossing times stay as the events found them (errors up to ~10 rtol).
"""

from __future__ import annotations

import functools
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
#: Default method and tolerances: the README's "Accuracy" section gives the measurement.
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
        ``solve_ivp`` tolerances on the state (z1, z2, t).  A power coordinate z = x**a gets
        (rtol, atol).  A log coordinate z = log x gets atol = max(atol, rtol): an absolute
        error in log x is a relative error in x.  With a clock, t gets atol = rtol * dt/dtau
        at the start (t starts at 0, so a relative tolerance alone would shrink the first
        steps to nothing); without one, t = tau is exact.
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
    x = np.asarray(x0, dtype=float)
    x0_1, x0_2 = x.tolist() if x.shape == (2,) else (math.nan, math.nan)
    if not (0.0 < x0_1 <= 1.0 / loss.ref_w and 0.0 < x0_2 <= 1.0 / loss.ref_l):  # (NaN fails too)
        x = loss.check_domain("x0", x0)  # raises, naming the problem
        if x.shape != (2,):
            raise ValueError(f"x0 must be one point of shape (2,); got shape {x.shape}")
    x_floor = stop.p2_floor / loss.ref_l
    x_cap = 1.0 / loss.ref_w
    x1_target, x2_target = stop.p1_target / loss.ref_w, stop.p2_target / loss.ref_l
    t_w0 = 0.0 if x0_1 >= x1_target else math.nan
    t_l0 = 0.0 if x0_2 <= x2_target else math.nan

    if x0_2 <= x_floor or x0_1 >= x_cap:  # already stopped
        status = "converged" if x0_2 <= x_floor else "capped"
        return _record(loss, status, 0.0, x0_1, x0_2, t_w0, t_l0, 0, "", None)

    smooth = options.chart == "smooth"
    chart = PowerChart(loss.chart_exponents() if smooth else (1.0, 1.0))
    clock = loss.clock_coordinate() if smooth else None
    if clock not in (None, 0, 1):
        raise ValueError(f"{type(loss).__name__}.clock_coordinate() must be None, 0 or 1; got {clock!r}")
    z0 = (chart.level(0, x0_1)[0], chart.level(1, x0_2)[0])
    try:
        field = _field(loss, chart, clock, z0 if smooth else None)
        f0 = field(*z0)
        if not all(map(math.isfinite, f0)):
            raise FloatingPointError(f"non-finite field {list(f0)} at the initial condition {[x0_1, x0_2]}")
    except Exception as exc:  # a failing flow is a result, not a crash
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")

    def rhs(tau: float, y: np.ndarray) -> np.ndarray:
        z1, z2, _ = y.tolist()
        f1, f2, f3 = field(z1, z2)
        if not (math.isfinite(f1) and math.isfinite(f2) and math.isfinite(f3)):
            # fail now, with the place: scipy would only shrink the step until it gives up
            raise FloatingPointError(f"non-finite field {[f1, f2, f3]} at tau={tau!r}, z={[z1, z2]}")
        return np.array((f1, f2, f3))

    if clock is not None:
        sigma = math.copysign(1.0, f0[clock])  # the direction the clock coordinate runs, fixed along the flow
    # Tolerances per state component (z1, z2, t): see SolverOptions.
    atol = [max(options.atol, options.rtol) if a == 0 else options.atol for a in chart.a]
    atol.append(options.rtol * f0[2] if clock is not None else options.atol)

    # Levels: a stop or crossing on the clock coordinate is reached at a known tau (the clock
    # coordinate runs at unit speed); any other is a solve_ivp event, located by root finding.
    tau_end, end_status = (math.inf, "timeout") if clock is not None else (stop.t_max, "timeout")
    events, names, on = [], [], {}  # on[name]: (state component, level) of a stop found by an event

    def level(name: str, i: int, x_level: float, rising: bool, terminal: bool) -> None:
        nonlocal tau_end, end_status
        z_level, sign = chart.level(i, x_level)
        direction = sign if rising else -sign  # the sign of dz_i/dtau at the crossing
        if i == clock:
            if direction != sigma:  # the clock runs away from this level: never reached
                return
            tau_level = abs(z_level - z0[i])
            if terminal:
                if tau_level < tau_end:
                    tau_end, end_status = tau_level, name
                return

            def g(t: float, y: np.ndarray) -> float:
                return t - tau_level

            g.terminal, g.direction = False, 1.0  # type: ignore[attr-defined]
        else:

            def g(t: float, y: np.ndarray) -> float:
                return y[i] - z_level

            g.terminal, g.direction = terminal, direction  # type: ignore[attr-defined]
            on[name] = (i, z_level)
        events.append(g)
        names.append(name)

    level("converged", 1, x_floor, False, True)
    level("capped", 0, x_cap, True, True)
    if math.isnan(t_w0):
        level("t_w", 0, x1_target, True, False)
    if math.isnan(t_l0):
        level("t_l", 1, x2_target, False, False)
    if clock is not None:  # t is a state: the timeout is an event on it

        def timeout(t: float, y: np.ndarray) -> float:
            return y[2] - stop.t_max

        timeout.terminal, timeout.direction = True, 1.0  # type: ignore[attr-defined]
        events.append(timeout)
        names.append("timeout")
        on["timeout"] = (2, stop.t_max)

    kwargs = {}
    if options.method in _IMPLICIT:
        kwargs["jac"] = _jacobian(loss, chart, clock, sigma if clock is not None else 1.0)
    try:
        with np.errstate(all="ignore"):
            sol = solve_ivp(
                rhs, (0.0, tau_end), [z0[0], z0[1], 0.0], method=options.method,
                rtol=options.rtol, atol=atol, events=events or None, dense_output=path, **kwargs,
            )  # fmt: skip
    except Exception as exc:  # a failing flow is a result, not a crash
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")
    if sol.status == -1:
        return FlowResult.failed(sol.message, sol.nfev)

    found = {}  # first crossing of each event: (tau, state)
    for k, name in enumerate(names):
        if sol.t_events[k].size:
            found[name] = (float(sol.t_events[k][0]), sol.y_events[k][0])
    nfev = int(sol.nfev + getattr(sol, "njev", 0))
    if sol.status == 1:  # a terminal event: the earliest one
        status = min((n for n in ("converged", "capped", "timeout") if n in found), key=lambda n: found[n][0])
        tau_stop, y_end = found[status]
        try:
            tau_stop, y_end, more = _land(rhs, sol, options, atol, kwargs, *on[status], tau_stop, y_end)
            nfev += more
        except Exception:  # landing only refines a stop already found: keep it as found
            pass
    else:  # solve_ivp reached tau_end: the stop on the clock coordinate (or t_max when tau = t)
        status, tau_stop, y_end = end_status, float(sol.t[-1]), sol.y[:, -1]
    t_end = stop.t_max if status == "timeout" else float(y_end[2])
    x_end = [chart.scalar_maps(i)[0](float(y_end[i])) for i in (0, 1)]
    # A stop puts the state on its level up to rounding: snap that coordinate exactly.
    if status == "converged":
        x_end[1] = x_floor
    elif status == "capped":
        x_end[0] = x_cap

    def crossing(name: str, t0: float) -> float:
        if not math.isnan(t0):
            return t0
        if name in found and found[name][0] <= tau_stop:
            return float(found[name][1][2])
        return math.nan

    trace = None
    if path:
        ts = np.linspace(0.0, t_end, path_points)
        trace = (ts, chart.inverse(_states_at_times(sol.sol, ts, tau_stop)[:2].T))
        trace[1][-1] = x_end
    return _record(loss, status, t_end, float(x_end[0]), float(x_end[1]), crossing("t_w", t_w0), crossing("t_l", t_l0),
                   nfev, "", trace)  # fmt: skip


@functools.cache
def _trusts_its_closed_form(cls: type) -> bool:
    """Whether ``cls.chart_field_at`` was written for the gradient, chart and clock ``cls`` has.

    False when a subclass overrides any of those but not ``chart_field_at`` itself.
    """

    def owner(name: str) -> type:
        return next(c for c in cls.__mro__ if name in c.__dict__)

    fast = owner("chart_field_at")
    return all(issubclass(fast, owner(n)) for n in ("grad_at", "grad", "chart_exponents", "clock_coordinate"))


def _land(rhs, sol, options: SolverOptions, atol, kwargs, i: int, level: float, tau_e: float, y_e: np.ndarray):
    """Land on a stop that an event found: (tau, state, evaluations spent).

    Events are located on the dense output, which is an order less accurate than the steps:
    in a flow of a few long steps (a short one, say) that is most of the error of t_stop.
    So step once more, exactly from the last accepted point to the root, and correct the
    root by a Newton step on the event's component i (its error then enters squared).
    """
    tau_p, y_p = float(sol.t[-2]), sol.y[:, -2]
    if not tau_e > tau_p:
        return tau_e, y_e, 0
    with np.errstate(all="ignore"):
        step = solve_ivp(rhs, (tau_p, tau_e), y_p, method=options.method, rtol=options.rtol, atol=atol,
                         first_step=tau_e - tau_p, **kwargs)  # fmt: skip
    if step.status != 0:
        return tau_e, y_e, int(step.nfev)
    y = step.y[:, -1]
    f = rhs(tau_e, y)
    d = -(y[i] - level) / f[i] if f[i] != 0 else 0.0
    return tau_e + d, y + f * d, int(step.nfev) + 1


def _field(loss: Loss, chart: PowerChart, clock: int | None, z0: tuple[float, float] | None):
    """(z1, z2) -> (dz1/dtau, dz2/dtau, dt/dtau), on Python floats: the integrator's right-hand side.

    The loss's closed form (:meth:`Loss.chart_field_at`) when it has one for this chart and
    clock (``z0`` given) and no subclass has since changed the gradient, the chart or the
    clock it was written for; else composed from :meth:`Loss.grad_at`.
    """
    if z0 is not None and _trusts_its_closed_form(type(loss)) and loss.chart_field_at(*z0) is not None:
        return loss.chart_field_at
    (inv1, d1), (inv2, d2) = chart.scalar_maps(0), chart.scalar_maps(1)
    grad_at = loss.grad_at

    def field(z1: float, z2: float) -> tuple[float, float, float]:
        x1, x2 = inv1(z1), inv2(z2)
        g1, g2 = grad_at(x1, x2)
        v1, v2 = -d1(x1) * g1, -d2(x2) * g2
        if clock is None:
            return v1, v2, 1.0
        r = 1.0 / abs(v2 if clock else v1)
        return v1 * r, v2 * r, r

    return field


def _jacobian(loss: Loss, chart: PowerChart, clock: int | None, sigma: float):
    """d(dy/dtau)/dy for y = (z1, z2, t), from the loss's Hessian (for the implicit methods)."""

    def jac(tau: float, y: np.ndarray) -> np.ndarray:
        z = y[:2]
        x = chart.inverse(z)
        d1, d2 = chart.deriv(x), chart.deriv2(x)
        g, h = loss.grad(x), loss.hessian(x)
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


def _states_at_times(sol: Callable[[np.ndarray], np.ndarray], ts: np.ndarray, tau_stop: float) -> np.ndarray:
    """States (3, n) at times ``ts`` (increasing), inverting the monotone t(tau) of a dense solution."""
    lo, hi = np.zeros_like(ts), np.full_like(ts, tau_stop)
    for _ in range(64):  # bisection: t(tau) is increasing, as dt/dtau > 0
        mid = 0.5 * (lo + hi)
        below = sol(mid)[2] < ts
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(hi))):
            break
    return sol(0.5 * (lo + hi))


def _record(loss, status, t, x1, x2, t_w, t_l, nfev, message, trace) -> FlowResult:
    return FlowResult(
        status=status, t_stop=float(t), x1_final=x1, x2_final=x2,
        p1_final=x1 * loss.ref_w, p2_final=x2 * loss.ref_l, loss_final=float(loss.value(np.array((x1, x2)))),
        t_w=float(t_w), t_l=float(t_l), nfev=nfev, message=message,
        path_t=None if trace is None else trace[0], path_x=None if trace is None else trace[1],
    )  # fmt: skip


__all__ = ["DEFAULT_ATOL", "DEFAULT_METHOD", "DEFAULT_RTOL", "METHODS", "PowerChart", "SolverOptions", "integrate"]
