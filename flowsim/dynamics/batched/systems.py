"""The per-start charts of :mod:`flowsim.dynamics.charts`, for a batch of starts at once.

A :class:`BatchSystem` is the batched twin of :class:`flowsim.dynamics.charts.base.System`:
the same coordinates, clock, tolerances, events (thresholds, function stops, monitors),
landing residuals and snaps as the per-start driver builds for each row, with per-row data
(references, levels, clocks) held as arrays and every function taking the rows ``rows``
(indices into the batch) it is evaluated for.  Objective-based pieces (a composed field,
the loss, margin and stationary stops, the monitors' probabilities) evaluate the policy
restricted to those rows, ``policy.row(rows)``, so any parameterisation and loss works
through the objective's vectorised gradient.  States are component-major, (m, k) for k
rows (see :mod:`.tableaus`); the objective sees parameters (k, d) as always.

* :class:`RatioSystem`: the ratio plane, in the chart registered for the loss
  (:data:`flowsim.dynamics.charts.RATIO_CHARTS`; DPO's (x1^2, log x2) clocked by log x2, with
  its closed-form field vectorised here) or the identity chart in t.
* :class:`ParameterSystem`: any other parameterisation, in its parameters and t.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowsim.dynamics.charts import IDENTITY, RATIO_CHARTS, PowerChart
from flowsim.dynamics.charts.dpo_ratio import dpo_vector_field
from flowsim.dynamics.events import Threshold
from flowsim.dynamics.monitors import FUNCTION_DIRECTIONS
from flowsim.dynamics.record import StopRule
from flowsim.model.objective import Objective


@dataclass
class Event:
    """One event of every row: g(tau, y) crosses 0 in ``direction``; what it does there."""

    name: str
    direction: float
    terminal: bool
    #: "stop" (terminal), "crossing" (t_w, t_l: the first one counts) or "monitor" (every turn)
    kind: str


#: Vectorised closed-form chart fields, by the loss kind whose :class:`RatioChartSpec` has a ``field``.
#: A spec with a field but no entry here is integrated with the field composed from the gradient.
VECTOR_FIELDS: dict[str, Callable] = {"dpo": lambda loss: dpo_vector_field(loss.beta)}


class BatchSystem:
    """Rows as initial-value problems: y0 (n, m), field, tolerances, ends and events (see the module)."""

    #: a general flow may stall, and p_w may fall
    may_stall, p_w_rises = True, False

    def __init__(self, objective: Objective, stop: StopRule) -> None:
        self.objective, self.policy, self.stop = objective, objective.policy, stop
        self.events: list[Event] = []
        #: status -> (component of theta, per-row value (n,)) that a stop puts exactly on its level
        self.snaps: dict[str, tuple[int, np.ndarray]] = {}
        self._cache: dict[int, tuple[np.ndarray, Objective]] = {}

    # -- the batch restricted to some rows ------------------------------------------------

    def objective_of(self, rows: np.ndarray) -> Objective:
        """The objective of the policy restricted to ``rows`` (cached for the last few row sets)."""
        hit = self._cache.get(id(rows))
        if hit is not None and hit[0] is rows:
            return hit[1]
        obj = Objective(self.objective.loss, self.policy.row(rows))
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[id(rows)] = (rows, obj)
        return obj

    def probs(self, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.objective_of(rows).policy.probs(self.theta(y))

    # -- to be provided by a chart --------------------------------------------------------

    def theta(self, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def rhs(self, tau: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _levels(self, tau, y, rows) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _level_slope(self, e: int, y, f, rows) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad_norm(self, y: np.ndarray, f: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        return np.linalg.norm(self.objective_of(rows).grad(self.theta(y)), axis=-1)

    # -- the function stops and the monitors (:mod:`flowsim.dynamics.monitors`) -----------

    def add_functions(self) -> None:
        """The function stops that are on, then the monitors, after the chart's own events."""
        self.n_levels = len(self.events)
        stop = self.stop
        self.functions = [(name, FUNCTION_DIRECTIONS[name]) for name in stop.functions(may_stall=self.may_stall)]
        self.events += [Event(name, d, True, "stop") for name, d in self.functions]
        self.monitors = ([("p_w_turn", 1.0, np.array([1.0, 0.0]))] if not self.p_w_rises else []) + [
            ("mass_turn", -1.0, np.array([1.0, 1.0]))
        ]
        self.events += [Event(name, d, False, "monitor") for name, d, _ in self.monitors]

    def functions_at(self, theta: np.ndarray, rows: np.ndarray, gnorm: Callable | None = None) -> list[np.ndarray]:
        """The function stops' residuals at parameters theta (k, d), in the order of the events."""
        obj = self.objective_of(rows)
        out = []
        for name, _ in self.functions:
            if name == "reached_loss":
                out.append(obj.value(theta) - self.stop.loss_target)
            elif name == "reached_margin":
                h = obj.h(theta)
                out.append((h[..., 0] - h[..., 1]) - self.stop.margin_target)
            else:
                g = gnorm() if gnorm is not None else np.linalg.norm(obj.grad(theta), axis=-1)
                out.append(g - self.stop.stationary_tol)
        return out

    def g(self, tau: np.ndarray, y: np.ndarray, rows: np.ndarray, f: np.ndarray | None = None) -> np.ndarray:
        """Every event's residual (E, k) at (tau, y) of ``rows``; ``f`` is the field there, if known."""
        cols = self._levels(tau, y, rows)
        if self.functions:
            cols += self.functions_at(self.theta(y), rows, lambda: self.grad_norm(y, f, rows))
        if self.monitors:
            dp = self._rates(y, self.rhs(tau, y, rows) if f is None else f, rows)
            cols += [dp @ w for _, _, w in self.monitors]
        return np.stack(cols) if cols else np.empty((0, y.shape[1]))

    def g_one(self, e: int, tau: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Event ``e``'s residual (k,) at (tau, y) of ``rows`` (for root finding)."""
        if e < self.n_levels:
            return self._levels(tau, y, rows)[e]
        j = e - self.n_levels
        if j < len(self.functions):
            return self.functions_at(self.theta(y), rows, lambda: self.grad_norm(y, None, rows))[j]
        dp = self._rates(y, self.rhs(tau, y, rows), rows)
        return dp @ self.monitors[j - len(self.functions)][2]

    def _rates(self, y: np.ndarray, f: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """d(p_w, p_l)/dtau by a central difference along the field (as the driver's monitors)."""
        big = np.maximum(1.0, np.max(np.abs(y[:-1]), axis=0))
        eps = 1e-7 * big / np.maximum(np.max(np.abs(f[:-1]), axis=0), 1e-300)
        dp = self.probs(y + eps * f, rows)[:, :2] - self.probs(y - eps * f, rows)[:, :2]
        return dp / (2 * eps)[:, None]

    def root_known(self, e: int, rows: np.ndarray) -> np.ndarray | None:
        """Where event ``e`` of ``rows`` is known to cross 0 (an event on the clock), or None."""
        return None

    def slope(self, e: int, y: np.ndarray, f: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """dg_e/dtau at (y, f) for the landing's Newton step (the driver's slopes)."""
        if e < self.n_levels:
            return self._level_slope(e, y, f, rows)
        j = e - self.n_levels  # a function stop: central difference along f (monitors.along)
        big = np.maximum(1.0, np.max(np.abs(y), axis=0))
        eps = 1e-7 * big / np.maximum(np.max(np.abs(f), axis=0), 1e-300)
        up = self.functions_at(self.theta(y + eps * f), rows)[j]
        down = self.functions_at(self.theta(y - eps * f), rows)[j]
        return (up - down) / (2 * eps)


class RatioSystem(BatchSystem):
    """The ratio plane in the chart registered for the loss (:class:`flowsim.dynamics.charts.RatioChart`)."""

    def __init__(self, objective, stop, rules, met, options, smooth: bool) -> None:
        super().__init__(objective, stop)
        spec = RATIO_CHARTS.get(objective.loss.kind, IDENTITY) if smooth else IDENTITY
        if not spec.applies(objective.loss):
            spec = IDENTITY
        self.spec, self.chart, self.clock = spec, PowerChart(spec.exponents), spec.clock
        self.may_stall, self.p_w_rises = not spec.never_stalls, spec.p_w_rises
        make = VECTOR_FIELDS.get(objective.loss.kind) if spec.field is not None else None
        self._field = make(objective.loss) if make is not None else self._composed
        pol = objective.policy
        self.ref = np.asarray(pol.ref, dtype=float).reshape(-1, 2)
        x0 = np.asarray(pol.theta0, dtype=float).reshape(-1, 2)
        n = len(x0)
        z0 = np.stack([self._level(i, x0[:, i])[0] for i in (0, 1)], -1)
        self.y0 = np.concatenate([z0.T, np.zeros((1, n))])
        self.f0 = self.rhs(np.zeros(n), self.y0, np.arange(n))
        self.atol = np.empty((3, n))
        for i, a in enumerate(self.chart.a):
            self.atol[i] = max(options.atol, options.rtol) if a == 0 else options.atol
        self.atol[2] = options.rtol * self.f0[2] if self.clock is not None else options.atol
        self.tau_end = np.full(n, math.inf if self.clock is not None else stop.t_max)
        self.end_status = np.full(n, "timeout", dtype=object)
        self.armed: list[np.ndarray] = []
        self._specs: list[tuple] = []
        sigma = np.sign(self.f0[self.clock]) if self.clock is not None else None
        for r in rules:
            self._add_level(r, z0, sigma, ~met[r.name])
        if self.clock is not None:
            self.events.append(Event("timeout", 1.0, True, "stop"))
            self._specs.append(("timeout", 2, None))
            self.armed.append(np.ones(n, bool))
        self.add_functions()
        self.armed += [np.ones(n, bool)] * (len(self.events) - len(self.armed))

    def _level(self, i: int, x_level: np.ndarray) -> tuple[np.ndarray, float]:
        a = self.chart.a[i]
        with np.errstate(divide="ignore"):
            return (np.log(x_level), 1.0) if a == 0 else (x_level**a, math.copysign(1.0, a))

    def _add_level(self, rule: Threshold, z0, sigma, live: np.ndarray) -> None:
        """A threshold as a level of z_i: a known tau per row on the clock, else an event on the state."""
        i = rule.response
        lev = rule.level / self.ref[:, i]
        if rule.terminal:
            self.snaps[rule.name] = (i, lev)
        z_level, sign = self._level(i, lev)
        direction = sign if rule.rising else -sign
        if i == self.clock:
            reached = (direction == sigma) & live
            tau_level = np.abs(z_level - z0[:, i])
            if rule.terminal:
                sooner = reached & (tau_level < self.tau_end)
                self.tau_end = np.where(sooner, tau_level, self.tau_end)
                self.end_status[sooner] = rule.name
                return
            self.events.append(Event(rule.name, 1.0, False, "crossing"))
            self._specs.append(("clock", i, tau_level))
        else:
            self.events.append(Event(rule.name, direction, rule.terminal, "stop" if rule.terminal else "crossing"))
            self._specs.append(("state", i, z_level))
            reached = live
        self.armed.append(reached.copy())

    def theta(self, y: np.ndarray) -> np.ndarray:
        """x (k, 2) from the chart's z (as :meth:`PowerChart.inverse`)."""
        out = np.empty((y.shape[1], 2))
        for i, a in enumerate(self.chart.a):
            out[:, i] = np.exp(y[i]) if a == 0 else np.abs(y[i]) if a == 1 else np.abs(y[i]) ** (1.0 / a)
        return out

    def rhs(self, tau, y, rows):
        return self._field(tau, y, rows)

    def _composed(self, tau, y, rows) -> np.ndarray:
        """The chart's field from the objective's gradient (:meth:`RatioChart._field`)."""
        x = self.chart.inverse(y[:2].T)
        v = (-self.chart.deriv(x) * self.objective_of(rows).grad(x)).T
        out = np.empty_like(y)
        if self.clock is None:
            out[:2], out[2] = v, 1.0
            return out
        r = 1.0 / np.abs(v[self.clock])
        out[:2], out[2] = v * r, r
        return out

    def _levels(self, tau, y, rows) -> list[np.ndarray]:
        out = []
        for kind, i, level in self._specs:
            if kind == "state":
                out.append(y[i] - level[rows])
            elif kind == "clock":
                out.append(tau - level[rows])
            else:
                out.append(y[2] - self.stop.t_max)
        return out

    def _level_slope(self, e, y, f, rows):
        _, i, _ = self._specs[e]
        return f[i]

    def root_known(self, e, rows):
        if e < len(self._specs) and self._specs[e][0] == "clock":
            return self._specs[e][2][rows]  # g = tau - tau_level is linear in tau
        return None


class ParameterSystem(BatchSystem):
    """Any parameterisation in its own parameters theta and t (:class:`flowsim.dynamics.charts.ParameterChart`)."""

    def __init__(self, objective, stop, rules, met, options) -> None:
        super().__init__(objective, stop)
        theta0 = np.asarray(objective.policy.theta0, dtype=float)
        n, d = theta0.shape
        self.d = d
        self.y0 = np.concatenate([theta0.T, np.zeros((1, n))])
        self.f0 = self.rhs(np.zeros(n), self.y0, np.arange(n))
        self.atol = np.empty((d + 1, n))
        self.atol[:d] = max(options.atol, options.rtol)
        self.atol[d] = options.atol
        self.tau_end = np.full(n, stop.t_max)
        self.end_status = np.full(n, "timeout", dtype=object)
        self._rules = list(rules)
        self.events = [
            Event(r.name, 1.0 if r.rising else -1.0, r.terminal, "stop" if r.terminal else "crossing") for r in rules
        ]
        self.armed = [~met[r.name] for r in rules]
        self.add_functions()
        self.armed += [np.ones(n, bool)] * (len(self.events) - len(self.armed))

    def theta(self, y):
        # row-major, as the driver's one start is: a reduction over a strided view (logsumexp over
        # the K responses) rounds differently, enough to put a start on its threshold on the other side
        return np.ascontiguousarray(y[: self.d].T)

    def rhs(self, tau, y, rows):
        out = np.empty_like(y)
        out[: self.d] = self.objective_of(rows).grad(self.theta(y)).T
        out[: self.d] *= -1.0
        out[self.d] = 1.0
        return out

    def grad_norm(self, y, f, rows):
        if f is None:
            return super().grad_norm(y, f, rows)
        return np.sqrt(np.einsum("ij,ij->j", f[: self.d], f[: self.d]))

    def _log_probs(self, y, rows):
        return self.objective_of(rows).policy.log_probs(self.theta(y))

    def _levels(self, tau, y, rows):
        if not self._rules:
            return []
        lp = self._log_probs(y, rows)
        return [lp[:, r.response] - math.log(r.level) for r in self._rules]

    def _level_slope(self, e, y, f, rows):
        # the driver's _directional: a central difference along f, eps = 1e-7 / |f|
        r = self._rules[e]
        eps = 1e-7 / np.maximum(np.sqrt(np.einsum("ij,ij->j", f, f)), 1e-300)
        up = self._log_probs(y + eps * f, rows)[:, r.response]
        down = self._log_probs(y - eps * f, rows)[:, r.response]
        return (up - down) / (2 * eps)


__all__ = ["VECTOR_FIELDS", "BatchSystem", "Event", "ParameterSystem", "RatioSystem"]
