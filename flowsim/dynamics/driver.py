r"""One start -> one :class:`~flowsim.dynamics.record.FlowResult`, by ``solve_ivp``.

The driver is generic: a chart (:mod:`flowsim.dynamics.charts`, chosen for the exact
(loss, parameterisation) pair) states the flow as an initial-value problem in its own
coordinates and clock, with the stop rule's thresholds as events; the driver solves it,
picks the earliest stop, lands on it, and reads off the record.

Why charts: for DPO on the ratio plane with beta < 2 the flow reaches x2 = 0 in finite time
with a speed |dx2/dt| ~ x2^(beta - 1) that diverges, and the time left near the end is a
sum of two incommensurate powers of x2, so an adaptive solver in t creeps up on the end.
In DPO's chart (x1^2, log x2) with log x2 as the clock the right-hand side is a sum of
exponentials and the floor is a known tau (:mod:`flowsim.dynamics.charts.dpo_ratio`).

Stops found by events are *landed on*: the dense output is an order less accurate than
the steps, so the driver steps once more, exactly from the last accepted point to the
root, and corrects the root by a Newton step on the event's residual (this takes the
worst t_stop error on the paper grid from 7.5e-9 to 1.9e-9 at rtol 1e-9, for ~1% more
work).  Crossing times stay as the events found them (errors up to ~10 rtol).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from flowsim._validation import ParamError, check_choice, check_interval, check_positive
from flowsim.dynamics.charts import System, chart_for
from flowsim.dynamics.events import Threshold, thresholds
from flowsim.dynamics.monitors import add_monitors, add_stops, along
from flowsim.dynamics.record import FlowResult, PathTrack, StopRule, finish_rows
from flowsim.dynamics.stiffness import DETECTING, StiffFlow
from flowsim.dynamics.switching import MAX_SWITCHES, Mode, ModeObjective, Surfaces
from flowsim.model.losses.base import Loss
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.base import Policy
from flowsim.model.parameterisations.ratio import RatioPolicy

#: The solve_ivp methods the integrator accepts.
METHODS: tuple[str, ...] = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")
#: Default method and tolerances: the docs' "Accuracy" page gives the measurement.
DEFAULT_METHOD, DEFAULT_RTOL, DEFAULT_ATOL = "DOP853", 1e-9, 1e-12
_IMPLICIT = frozenset({"Radau", "BDF", "LSODA"})
#: Default for SolverOptions.max_nfev: 14 times the most any flow of the shipped experiments needs.
STIFF_NFEV = 10_000
#: The method a stiff flow is integrated with instead.
STIFF_METHOD = "LSODA"
#: An implicit method's budget, in units of max_nfev: its steps are few but each may cost many evaluations.
IMPLICIT_FACTOR = 10
#: The most evaluations the step that lands on a stop may spend (it is one step, normally 13 of DOP853's).
LANDING_NFEV = 100
#: What a flow that cannot be computed raises inside the solver (recorded as ``failed``).
_NUMERICAL = (ArithmeticError, ValueError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate one flow.

    Parameters
    ----------
    method : str, default "DOP853"
        A ``solve_ivp`` method, one of :data:`METHODS`.  "auto" means the default.
        Implicit methods get a Jacobian from the objective's Hessian.
    rtol, atol : float, default 1e-9 and 1e-12
        ``solve_ivp`` tolerances on the chart's state.  A power coordinate z = x**a gets
        (rtol, atol).  A log coordinate (log x, or a logit) gets atol = max(atol, rtol): an
        absolute error in a log is a relative error in the probability.  With a clock, t
        gets atol = rtol * dt/dtau at the start (t starts at 0, so a relative tolerance
        alone would shrink the first steps to nothing).
    chart : {"smooth", "identity"}, default "smooth"
        "smooth" integrates in the chart registered for the pair (if any); "identity" in the
        plain parameters in t (as a user writing ``solve_ivp`` by hand would).
    max_nfev : int or None, default 10000
        Field evaluations (by the solver and the monitors) a method may spend on one flow.
        A flow that needs more with an explicit method is stiff there: near a finite
        minimiser the Jacobian is minus the Hessian, which grows like 1/x^2 on the ratio
        plane, so an explicit method crawls at its stability limit (millions of steps) while
        its error floor keeps |grad L| above ``stationary_tol``.  Such a flow is integrated
        again, from the start, with LSODA (stiff-capable, Jacobian from the Hessian), and its
        ``message`` says so; with a budget, DOP853 and RK45 also run Hairer's stiffness test
        (:mod:`flowsim.dynamics.stiffness`), which makes the switch after ~15 steps held at the
        stability limit instead of after max_nfev evaluations.  An implicit method gets ten
        times the budget; a flow that exhausts that too (a field so sharp it is nearly discontinuous) is recorded
        ``failed`` with a message saying why, never left running.  The shipped experiments'
        flows need at most 724.  None (0 in an experiment file): no limit.
    """

    method: str = DEFAULT_METHOD
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    chart: str = "smooth"
    max_nfev: int | None = STIFF_NFEV

    def __post_init__(self) -> None:
        method = DEFAULT_METHOD if self.method == "auto" else self.method
        object.__setattr__(self, "method", check_choice("method", method, METHODS))
        object.__setattr__(self, "rtol", check_interval("rtol", self.rtol, 0.0, 1.0, closed="neither"))
        object.__setattr__(self, "atol", check_positive("atol", self.atol))
        check_choice("chart", self.chart, ("smooth", "identity"))
        if self.max_nfev is not None and (
            isinstance(self.max_nfev, bool) or not isinstance(self.max_nfev, int) or self.max_nfev < 1
        ):
            raise ParamError("max_nfev", "must be a whole number >= 1, or None for no limit", self.max_nfev)

    @property
    def implicit(self) -> bool:
        return self.method in _IMPLICIT


def integrate(
    loss: Loss | Objective,
    x0: object = None,
    stop: StopRule | None = None,
    options: SolverOptions | None = None,
    *,
    ref: object = (1.0, 1.0),
    policy: Policy | None = None,
    path: bool = False,
    path_points: int = 200,
) -> FlowResult:
    """Integrate the gradient flow d theta/dt = -grad L(theta) from one start.

    Parameters
    ----------
    loss : Loss or Objective
        The loss (composed with ``policy``, or with the ratio plane), or an objective.
    x0 : array_like, shape (2,), optional
        On the ratio plane: the initial ratios (x1, x2), 0 < x_i <= 1/ref_i.
    stop : StopRule, optional
        Stop and crossing criteria (defaults: ``StopRule()``).
    options : SolverOptions, optional
        Method, tolerances, chart (defaults: ``SolverOptions()``).
    ref : (float, float), default (1, 1)
        The ratio plane's references (pi_ref(y_w), pi_ref(y_l)) when ``policy`` is not given.
    policy : Policy, optional
        A policy bound to one start (``Parameterisation.bind(p0, ref)``); the flow starts at
        its ``theta0``.  Default: the ratio plane at x0 with references ``ref``.
    path : bool, default False
        Also return ``path_points`` points along the path, evenly spaced in time.

    Returns
    -------
    FlowResult
        Status, stop time and point, crossing times ``t_w`` and ``t_l``, and ``nfev``.

    Examples
    --------
    >>> from flowsim.model.losses import DPO
    >>> r = integrate(DPO(beta=0.1), [0.5, 0.5])
    >>> r.status, round(r.t_stop, 4), round(r.x1_final, 6)
    ('converged', 2.5921, 0.707107)
    """
    stop = StopRule() if stop is None else stop
    options = SolverOptions() if options is None else options
    args = (loss, x0, stop, options, ref, policy, path, path_points)
    try:
        return _integrate(*args)
    except _Stiff as exc:
        if options.implicit:
            return FlowResult.failed(
                f"{options.method} needed more than {exc.budget} field evaluations; raise "
                "[solver] max_nfev or loosen the tolerances",
                exc.budget,
            )
        first = exc
    stiff = dataclasses.replace(options, method=STIFF_METHOD)
    try:
        r = _integrate(*args[:3], stiff, *args[4:])
    except _Stiff:
        why = f"{first.why}, and {STIFF_METHOD} did not end within {IMPLICIT_FACTOR * first.budget}"
        return FlowResult.failed(
            f"stiff: {why} (a near-discontinuous field?); raise [solver] max_nfev",
            first.spent + IMPLICIT_FACTOR * first.budget,
        )
    note = f"stiff: {first.why}; integrated with {STIFF_METHOD}"
    return dataclasses.replace(r, nfev=r.nfev + first.spent, message="; ".join(m for m in (note, r.message) if m))


def work_budget(options: SolverOptions) -> float:
    """The most field evaluations one flow may record under ``options`` (inf without a limit).

    An explicit method's ``max_nfev``, then (a stiff flow) LSODA's ``IMPLICIT_FACTOR`` times it;
    an implicit method's ``IMPLICIT_FACTOR * max_nfev``; plus the landing step's evaluations.
    """
    if options.max_nfev is None:
        return math.inf
    explicit = 0 if options.implicit else options.max_nfev
    return explicit + IMPLICIT_FACTOR * options.max_nfev + LANDING_NFEV + 1


class _Stiff(Exception):
    """A method ran past its budget (``SolverOptions.max_nfev``), or its steps were held by stability.

    ``spent``: the evaluations it used; ``why``: what happened, for the row's message.
    """

    def __init__(self, budget: int, spent: int | None = None, why: str | None = None) -> None:
        self.budget, self.spent = budget, budget if spent is None else spent
        self.why = why or f"needed more than {budget} evaluations"
        super().__init__(self.why)


def _integrate(loss, x0, stop: StopRule, options: SolverOptions, ref, policy, path: bool, path_points: int):
    """:func:`integrate` with one method (raises _Stiff past the method's budget)."""
    objective, theta0 = _setup(loss, x0, ref, policy)
    surfaces = Surfaces.of(objective, theta0)
    if surfaces is not None:  # a loss with switching surfaces: smooth pieces between events on them
        return _integrate_switched(objective, surfaces, theta0, stop, options, path_points if path else 0)
    rules = thresholds(stop, capped=objective.policy.has_cap)
    chart = chart_for(objective, objective.policy.kind, smooth=options.chart == "smooth")
    try:
        met = chart.met_at_start(theta0, rules)
        track = PathTrack(objective.policy.probs(np.asarray(theta0))[None], stop)
        track.t_w[:] = 0.0 if any(r.name == "w" for r in met) else math.nan  # as the chart compares
        track.t_l[:] = 0.0 if any(r.name == "l" for r in met) else math.nan
        done = _status_at_start(objective, stop, theta0, met, chart.may_stall)
        if done:  # already stopped
            return _record(objective, done, 0.0, theta0, 0, None, track)
        sys_ = chart.system(theta0, tuple(r for r in rules if r.terminal or r not in met), stop.t_max, options)
        add_stops(sys_, objective, stop, may_stall=chart.may_stall)
        add_monitors(sys_, objective.policy, p_w_rises=chart.p_w_rises)
        sol = _solve(sys_, options, dense=path)
    except _NUMERICAL as exc:  # a failing flow is a result, not a crash
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")
    if sol.status == -1:
        where = sys_.nonfinite.get("where")
        return FlowResult.failed(f"{sol.message} ({where})" if where else sol.message, sol.nfev)
    return _finish(objective, sys_, sol, options, stop, track, path_points if path else 0)


def _integrate_switched(
    objective, surfaces: Surfaces, theta0, stop: StopRule, options: SolverOptions, path_points: int
) -> FlowResult:
    """:func:`_integrate` for a loss with switching surfaces (:mod:`flowsim.dynamics.switching`).

    The flow is integrated in pieces, one ``solve_ivp`` run per mode (a side of every surface, or
    sliding along one), each in the pair's chart with the stop rule's events plus the mode's
    switches: leaving its side of a surface, or (sliding) the exits a_- < 0 and a_+ > 0.  A switch
    is landed on as a stop is, the next mode decided there, and the next piece starts from it; the
    time spent sliding goes into the track (``t_sliding``).  The budget (max_nfev) is the flow's.
    """
    rules = thresholds(stop, capped=objective.policy.has_cap)
    theta = np.asarray(theta0, dtype=float)
    track = PathTrack(objective.policy.probs(theta)[None], stop)
    factor = IMPLICIT_FACTOR if options.implicit else 1
    t0, nfev, pieces = 0.0, 0, []
    try:
        mode = surfaces.start_mode(theta)
    except _NUMERICAL as exc:
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")
    for _ in range(MAX_SWITCHES + 1):
        proxy = ModeObjective(surfaces, mode)
        chart = chart_for(proxy, objective.policy.kind, smooth=options.chart == "smooth")
        left = None if options.max_nfev is None else max(1, options.max_nfev - nfev // factor)
        piece_options = dataclasses.replace(options, max_nfev=left)
        try:
            met = chart.met_at_start(theta.tolist(), rules)
            if t0 == 0.0:
                track.t_w[:] = 0.0 if any(r.name == "w" for r in met) else math.nan  # as the chart compares
                track.t_l[:] = 0.0 if any(r.name == "l" for r in met) else math.nan
            done = _status_at_start(proxy, stop, theta.tolist(), met, chart.may_stall)
            if done:
                trace = _stopped_path(path_points, t0, theta, pieces)
                return _record(objective, done, t0, theta, nfev, trace, track)
            sys_ = chart.system(
                theta.tolist(), tuple(r for r in rules if r.terminal or r not in met), stop.t_max - t0, piece_options
            )
            if mode.sliding is not None:
                _onto_surface(sys_, surfaces, mode.sliding)
            add_stops(sys_, proxy, stop, may_stall=chart.may_stall)
            add_monitors(sys_, objective.policy, p_w_rises=chart.p_w_rises)
            switches = _add_switches(sys_, surfaces, mode)
            sol = _solve(sys_, piece_options, dense=bool(path_points))
        except _NUMERICAL as exc:
            return FlowResult.failed(f"{type(exc).__name__}: {exc}", nfev)
        if sol.status == -1:
            where = sys_.nonfinite.get("where")
            return FlowResult.failed(f"{sol.message} ({where})" if where else sol.message, nfev + sol.nfev)
        switch = _first_switch(sys_, sol, switches)
        if switch is None:
            return _finish(
                objective,
                sys_,
                sol,
                piece_options,
                stop,
                track,
                path_points,
                t0,
                tuple(pieces),
                nfev,
                sliding=mode.sliding is not None,
            )
        theta, t1, tau, more = _switch(objective, sys_, sol, piece_options, track, switches[switch[0]], switch, t0)
        if mode.sliding is not None:
            track.slide(t1 - t0)
        nfev += int(sol.nfev + getattr(sol, "njev", 0)) + more
        pieces.append(_Piece(t0, sol, sys_, tau))
        try:
            mode, t0 = switches[switch[0]][2](theta), t1
        except _NUMERICAL as exc:  # the next mode cannot be decided (two surfaces at once: switching.DoubleSliding)
            return FlowResult.failed(f"{type(exc).__name__}: {exc}", nfev)
    return FlowResult.failed(
        f"more than {MAX_SWITCHES} switches between the modes of the loss's switching surfaces "
        "(a flow chattering between them)",
        nfev,
    )


def _onto_surface(sys_: System, surfaces: Surfaces, k: int) -> None:
    """Read every state of a run sliding along surface k projected onto it (see :mod:`flowsim.dynamics.switching`)."""
    theta, theta_path = sys_.theta, sys_.theta_path
    sys_.theta = lambda y: surfaces.project(np.asarray(theta(y), dtype=float), k).tolist()
    sys_.theta_path = lambda states: np.array([surfaces.project(th, k) for th in theta_path(states)])


def _add_switches(sys_: System, surfaces: Surfaces, mode: Mode) -> dict[str, tuple]:
    """The mode's switches as terminal events: name -> (residual of the state, its slope, the next mode of theta)."""

    def on_state(fn):
        return lambda y: fn(np.asarray(sys_.theta(y), dtype=float))

    out = {}
    for k in range(surfaces.count):
        if k != mode.sliding:  # leaving its side of surface k: the next mode is decided on the surface
            g = on_state(lambda th, k=k: _inside(float(surfaces.values(th)[k]), mode.side[k]))
            out[f"surface_{k}"] = (g, -mode.side[k], lambda th, k=k: surfaces.decide(th, mode, k, mode.side[k]))
    if mode.sliding is not None:  # alpha leaves [0, 1]: a_- falls through 0, or a_+ rises through 0
        exits = _Cached(lambda th: surfaces.exits(th, mode))
        for i, name, side in ((0, "exit_minus", -1.0), (1, "exit_plus", 1.0)):
            g = on_state(lambda th, i=i, side=side: _inside(exits(th)[i], -side))
            out[name] = (g, side, lambda th, side=side: mode.on(mode.sliding, side))
    for name, (g, direction, _) in out.items():
        sys_.add_event(name, lambda t, y, g=g: g(y), direction, True)
    return {name: (g, along(g), after) for name, (g, _, after) in out.items()}


def _inside(value: float, sign: float) -> float:
    """A switch's residual with an exact 0 counted on the mode's own side (``sign``).

    solve_ivp counts a residual that is 0 at both ends of a step as a crossing; a residual that is
    identically 0 (the hinge's far side has no field, so a_- = 0 there and nothing moves) would
    then switch the mode at every step.  A switch happens where the residual changes sign.
    """
    return value if value != 0.0 else sign * 1e-300


class _Cached:
    """fn(theta) remembered for the last theta (the two exit events read the same normal components)."""

    def __init__(self, fn) -> None:
        self.fn, self.key, self.value = fn, None, None

    def __call__(self, theta: np.ndarray):
        key = theta.tobytes()
        if key != self.key:
            self.key, self.value = key, self.fn(theta)
        return self.value


def _first_switch(sys_: System, sol, switches: dict) -> tuple[str, float, np.ndarray] | None:
    """(name, tau, state) of the switch that ended a run, or None (it ended on a stop, or at its end)."""
    if sol.status != 1:
        return None
    first = None
    for k, name in enumerate(sys_.names):
        if sol.t_events[k].size and sys_.events[k].terminal:
            tau = float(sol.t_events[k][0])
            if first is None or tau < first[1] or (tau == first[1] and name not in switches):  # stops win ties
                first = (name, tau, sol.y_events[k][0])
    return first if first is not None and first[0] in switches else None


def _switch(objective, sys_: System, sol, options: SolverOptions, track: PathTrack, entry, switch, t0: float):
    """Land on a switch; record the piece's crossings and turns: (theta there, t there, tau there, evaluations)."""
    _, tau, y = switch
    more = 0
    try:
        tau, y, more = _land(sys_, sol, options, entry[0], entry[1], tau, y)
    except (*_NUMERICAL, _Stiff):  # landing only refines the switch already found
        pass
    found = {
        n: (float(sol.t_events[k][0]), sol.y_events[k][0]) for k, n in enumerate(sys_.names) if sol.t_events[k].size
    }
    _crossings(sys_, found, tau, track, t0)
    _walk(objective, sys_, sol, tau, track, t0)
    theta = np.asarray(sys_.theta(y), dtype=float)
    t1 = t0 + float(y[sys_.t_index])
    track.visit(t1, objective.policy.probs(theta)[None])
    return theta, t1, tau, more


def _stopped_path(path_points: int, t_end: float, theta: np.ndarray, pieces: list):
    """The path of a flow that stopped at the start of a piece (None: no path asked)."""
    if not path_points:
        return None
    ts = np.linspace(0.0, t_end, path_points)
    xs = _path(ts, tuple(pieces)) if pieces else np.tile(theta, (path_points, 1))
    xs[-1] = theta
    return ts, xs


def _status_at_start(objective, stop: StopRule, theta0: list[float], met, may_stall: bool) -> str:
    """The stop the start already meets ('' if none): a threshold the chart found met, or a function stop."""
    found: dict[str, object] = {r.name: True for r in met if r.terminal}
    if stop.functions(may_stall=may_stall):
        th = np.asarray(theta0)
        h = objective.h(th)
        gnorm = np.linalg.norm(objective.grad(th)) if "stationary" in stop.functions(may_stall=may_stall) else None
        found |= stop.functions_met(objective.value(th), h[0] - h[1], gnorm, may_stall=may_stall)
    return str(stop.status(found)[()])


def _setup(loss, x0, ref, policy) -> tuple[Objective, list[float]]:
    """The objective and the start, validated (raises ValueError naming the problem)."""
    if isinstance(loss, Objective) or policy is not None:
        objective = loss if isinstance(loss, Objective) else Objective(loss, policy)
        theta0 = np.asarray(objective.policy.theta0, dtype=float)
    else:  # the ratio plane at x0 (taken as given, not recomputed from p0 / ref)
        theta0 = np.asarray(x0, dtype=float)
        if theta0.shape != (2,):
            raise ValueError(f"x0 must be one point of shape (2,); got shape {theta0.shape}")
        r = np.asarray(ref, dtype=float)
        objective = Objective(loss, RatioPolicy(theta0 * r, r))
    pol = objective.policy
    if theta0.ndim != 1:
        raise ValueError(f"integrate takes one start; got parameters of shape {theta0.shape}")
    if not bool(pol.in_domain(theta0)):
        raise ValueError(f"the start must lie in the model's domain; got {theta0.tolist()} ({pol.describe_domain()})")
    return objective, theta0.tolist()


def _solve(sys_: System, options: SolverOptions, dense: bool):
    kwargs = {"jac": sys_.jac} if sys_.jac is not None else {}
    rhs, method = sys_.rhs, options.method
    counter = None
    if options.max_nfev is not None:
        # the monitors' slopes evaluate the field too (through sys_.rhs): the budget counts them
        counter = _Budgeted(rhs, options.max_nfev * (IMPLICIT_FACTOR if options.implicit else 1), method)
        sys_.rhs = counter
        method = DETECTING.get(method, method)  # a stiff flow is found in ~15 steps, not max_nfev evaluations
    try:
        with np.errstate(all="ignore"):
            return solve_ivp(
                sys_.rhs,
                (0.0, sys_.tau_end),
                sys_.y0,
                method=method,
                rtol=options.rtol,
                atol=sys_.atol,
                events=[_pinned(e) for e in sys_.events] or None,
                dense_output=dense,
                **kwargs,
            )
    except StiffFlow as exc:
        raise _Stiff(counter.budget, counter.calls, str(exc)) from None
    finally:
        sys_.rhs = rhs


def _pinned(event):
    """``event`` that gives the root finder, at a step's ends, the values solve_ivp's step test saw.

    solve_ivp decides that an event happened in a step from g(t_old, y_old) and g(t, y) on the
    solver's states, then brackets the root with brentq on g(tau, sol(tau)) on the dense output.
    LSODA's and BDF's dense output is a polynomial that need not pass through y_old exactly, so
    when g(t_old, y_old) is 0 or tiny (a monitor at a start where the rate is exactly 0, say)
    the two disagree in sign and brentq raises "f(a) and f(b) must have different signs".  So
    the values at step ends (calls at a tau later than any before) are kept, and a later call at
    the same tau (brentq's bracket ends) gets the kept value: the bracket then always changes
    sign, and the root lies in the step, as the step test said.
    """
    ends: dict[float, float] = {}
    last = [-math.inf]

    def g(tau, y):
        if tau in ends:
            return ends[tau]
        value = event(tau, y)
        if tau > last[0]:  # a new step end (or the start): keep it and the one before
            if len(ends) == 2:
                del ends[min(ends)]
            ends[tau], last[0] = value, tau
        return value

    g.terminal, g.direction = event.terminal, event.direction  # type: ignore[attr-defined]
    return g


class _Budgeted:
    """``rhs`` that counts its calls and raises _Stiff on the (budget + 1)-th."""

    def __init__(self, rhs, budget: int, method: str) -> None:
        self.rhs, self.budget, self.method, self.calls = rhs, budget, method, 0

    def __call__(self, t, y):
        self.calls += 1
        if self.calls > self.budget:
            raise _Stiff(self.budget, self.budget, f"{self.method} needed more than {self.budget} evaluations")
        return self.rhs(t, y)


def _finish(
    objective,
    sys_: System,
    sol,
    options,
    stop: StopRule,
    track: PathTrack,
    path_points: int,
    t0: float = 0.0,
    before: tuple = (),
    nfev0: int = 0,
    sliding: bool = False,
):
    """The record of a solved flow: the earliest stop, landed on; crossing times; the path.

    A flow integrated in pieces (:func:`_integrate_switched`) gives the time ``t0`` its last piece
    started at, the pieces ``before`` it (:class:`_Piece`, for the path), their evaluations ``nfev0``,
    and whether the last piece slid along a switching surface (its time then goes into ``t_sliding``).
    """
    found = {}  # first crossing of each event: (tau, state)
    for k, name in enumerate(sys_.names):
        if sol.t_events[k].size:
            found[name] = (float(sol.t_events[k][0]), sol.y_events[k][0])
    nfev = nfev0 + int(sol.nfev + getattr(sol, "njev", 0))
    if sol.status == 1:  # a terminal event: the earliest one (ties: in the rules' order)
        terminal = {n: found[n][0] for n in sys_.names if n in sys_.landing and n in found}
        status = str(stop.earliest(terminal)[0][()])
        tau_stop, y_end = found[status]
        try:
            tau_stop, y_end, more = _land(sys_, sol, options, *sys_.landing[status], tau_stop, y_end)
            nfev += more
        except (*_NUMERICAL, _Stiff):  # landing only refines a stop already found: keep it as found
            pass
    else:  # solve_ivp reached tau_end: the stop on the clock (or t_max when tau = t)
        status, tau_stop, y_end = sys_.end_status, float(sol.t[-1]), sol.y[:, -1]
    t_end = stop.t_max if status == "timeout" else t0 + float(y_end[sys_.t_index])
    theta = sys_.theta(y_end)
    if status in sys_.snap:  # a stop puts the state on its level up to rounding: snap it exactly
        i, value = sys_.snap[status]
        theta[i] = value

    _crossings(sys_, found, tau_stop, track, t0)
    trace = None
    if path_points:
        ts = np.linspace(0.0, t_end, path_points)
        trace = (ts, _path(ts, (*before, _Piece(t0, sol, sys_, tau_stop))))
        trace[1][-1] = theta
    _walk(objective, sys_, sol, tau_stop, track, t0)
    if sliding:
        track.slide(t_end - t0)
    return _record(objective, status, t_end, theta, nfev, trace, track)


def _crossings(sys_: System, found: dict, tau_stop: float, track: PathTrack, t0: float) -> None:
    """Record the first crossings (``t_w``, ``t_l``) that the events found up to tau_stop."""
    for name, t_x in (("w", track.t_w), ("l", track.t_l)):
        if math.isnan(t_x[0]) and name in found and found[name][0] <= tau_stop:
            t_x[0] = t0 + float(found[name][1][sys_.t_index])


@dataclass(frozen=True)
class _Piece:
    """One solve_ivp run of a flow: it started at time t0 and ends at its tau_stop."""

    t0: float
    sol: object
    sys_: System
    tau_stop: float


def _path(ts: np.ndarray, pieces) -> np.ndarray:
    """Parameters (m, d) at times ``ts`` along the pieces of a flow (each time from the last piece started by then)."""
    out = None
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        mask = (ts >= piece.t0) & (last or ts < pieces[i + 1].t0)
        if not np.any(mask):
            continue
        states = _states_at_times(piece.sol.sol, ts[mask] - piece.t0, piece.tau_stop, piece.sys_.t_index)
        part = piece.sys_.theta_path(states)
        if out is None:
            out = np.empty((len(ts), part.shape[-1]))
        out[mask] = part
    return out


def _walk(objective, sys_: System, sol, tau_stop: float, track: PathTrack, t0: float = 0.0) -> None:
    """Show ``track`` the monitors' turning points before the stop (the end is :func:`finish_rows`').

    A flow's first piece (t0 = 0) also sets the start as the chart holds it (an ulp from theta0).
    """
    pol = objective.policy
    if t0 == 0.0:
        p0 = pol.probs(np.asarray(sys_.theta(sys_.y0)))
        track.p_w0[0] = track.p_w_min[0] = p0[0]
        track.max_mass[0] = p0[0] + p0[1]
    for k, name in enumerate(sys_.names):
        if name in ("p_w_turn", "mass_turn"):
            for tau, y in zip(sol.t_events[k], sol.y_events[k], strict=True):
                if tau <= tau_stop:
                    track.visit(t0 + float(y[sys_.t_index]), pol.probs(np.asarray(sys_.theta(y)))[None])


def _land(sys_: System, sol, options: SolverOptions, g: Callable, slope: Callable, tau_e: float, y_e: np.ndarray):
    """Land on a stop that an event found: (tau, state, evaluations spent).

    Events are located on the dense output, which is an order less accurate than the steps:
    in a flow of a few long steps (a short one, say) that is most of the error of t_stop.
    So step once more, exactly from the last accepted point to the root, and correct the
    root by a Newton step on the event's residual g (its error then enters squared).
    """
    tau_p, y_p = float(sol.t[-2]), sol.y[:, -2]
    if not tau_e > tau_p:
        return tau_e, y_e, 0
    kwargs = {"jac": sys_.jac} if sys_.jac is not None else {}
    with np.errstate(all="ignore"):  # one step, normally (a longer one was accepted): LANDING_NFEV is plenty
        rhs = _Budgeted(sys_.rhs, LANDING_NFEV, options.method)
        step = solve_ivp(
            rhs,
            (tau_p, tau_e),
            y_p,
            method=options.method,
            rtol=options.rtol,
            atol=sys_.atol,
            first_step=tau_e - tau_p,
            **kwargs,
        )
    if step.status != 0:
        return tau_e, y_e, int(step.nfev)
    y = step.y[:, -1]
    f = sys_.rhs(tau_e, y)
    s = slope(y, f)
    d = -g(y) / s if s != 0 else 0.0
    return tau_e + d, y + f * d, int(step.nfev) + 1


def _states_at_times(sol: Callable[[np.ndarray], np.ndarray], ts: np.ndarray, tau_stop: float, t_index: int):
    """States (m, n) at times ``ts`` (increasing), inverting the monotone t(tau) of a dense solution."""
    lo, hi = np.zeros_like(ts), np.full_like(ts, tau_stop)
    for _ in range(64):  # bisection: t(tau) is increasing, as dt/dtau > 0
        mid = 0.5 * (lo + hi)
        below = sol(mid)[t_index] < ts
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(hi))):
            break
    return sol(0.5 * (lo + hi))


def _record(objective: Objective, status: str, t: float, theta, nfev, trace, track: PathTrack) -> FlowResult:
    """The record of a flow that stopped at parameters ``theta`` at time t."""
    pol = objective.policy
    th = np.array(theta)
    p = pol.probs(th)
    x = pol.ratios(th)
    cols = {k: v[0].item() for k, v in finish_rows(p[None], objective.h(th)[None], t, track).items()}
    return FlowResult(
        status=status,
        t_stop=float(t),
        x1_final=float(x[0]),
        x2_final=float(x[1]),
        p1_final=float(p[0]),
        p2_final=float(p[1]),
        loss_final=float(objective.value(th)),
        nfev=nfev,
        message="",
        path_t=None if trace is None else trace[0],
        path_x=None if trace is None else trace[1],
        **cols,
    )


__all__ = ["DEFAULT_ATOL", "DEFAULT_METHOD", "DEFAULT_RTOL", "METHODS", "SolverOptions", "Threshold", "integrate"]
