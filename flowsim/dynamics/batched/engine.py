"""The batched integrator: every row of a chunk advanced in lockstep, each with its own step.

See the package docstring (:mod:`flowsim.dynamics.batched`) for the method and why.
"""

from __future__ import annotations

import numpy as np

from flowsim.dynamics.batched.tableaus import (
    TABLEAUS,
    Dense,
    Tableau,
    cols,
    error_norm,
    initial_step,
    step,
    step_factor,
)
from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.events import thresholds
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, FlowResult, PathTrack, StopRule, finish_rows
from flowsim.model.objective import Objective

from .systems import BatchSystem, ParameterSystem, RatioSystem

#: What a failing evaluation raises (as the driver: the row is then computed by the driver itself).
_NUMERICAL = (ArithmeticError, ValueError, np.linalg.LinAlgError)
_EPS = np.finfo(float).eps
#: Relative tolerance on a monitor's turn: its rate is a central difference, exact to ~1e-9 only
#: (beyond that the root is noise), and the value recorded there (a minimum of p_w, a maximum
#: of p_w + p_l) is stationary, so its error is the square of this.
_MONITOR_TOL = 1e-10


def integrate_batch(loss, policy=None, stop: StopRule | None = None, options: SolverOptions | None = None):
    """Integrate the gradient flow from every start of a bound policy at once.

    Parameters
    ----------
    loss : Loss or Objective
        The loss (composed with ``policy``) or an objective whose policy is bound to n starts.
    policy : Policy, optional
        A policy bound to a batch of n starts (``Parameterisation.bind(p0, ref)`` with p0 (n, 2)).
    stop : StopRule, optional
        Stops and crossings (default ``StopRule()``).
    options : SolverOptions, optional
        Method (``RK23``, ``RK45`` or ``DOP853``; "auto" is DOP853), tolerances and chart, with the
        driver's meaning: row i gets the error control that ``integrate(loss, policy=policy.row(i),
        options=options)`` gives that start.

    Returns
    -------
    dict of numpy arrays of length n
        Every field of :data:`RESULT_FIELDS` and :data:`PATH_FIELDS`, as the driver records them
        (``nfev``: the field evaluations the row took; ``steps``: NaN), and ``engine``: "batched",
        or "driver" for a row handed to the driver (one the batch could not compute).

    Examples
    --------
    >>> from flowsim.model.losses import DPO
    >>> from flowsim.model.parameterisations import RatioPlane
    >>> pol = RatioPlane().bind([[0.3, 0.6], [0.9, 0.9]], [[1.0, 1.0], [1.0, 1.0]])
    >>> out = integrate_batch(DPO(beta=0.1), pol)
    >>> out["status"].tolist(), out["t_stop"].round(5).tolist()
    (['converged', 'capped'], [3.66166, 1.91134])
    """
    stop = StopRule() if stop is None else stop
    options = SolverOptions() if options is None else options
    if options.method not in TABLEAUS:
        raise ValueError(f"the batched engine has the explicit methods {sorted(TABLEAUS)}; got {options.method!r}")
    objective = loss if isinstance(loss, Objective) else Objective(loss, policy)
    pol = objective.policy
    theta0 = np.asarray(pol.theta0, dtype=float)
    if theta0.ndim != 2:
        raise ValueError(f"integrate_batch takes a policy bound to a batch of starts (n, 2); got {theta0.shape}")
    run = _Run(objective, stop, options, TABLEAUS[options.method])
    return run.result()


def _switching(objective: Objective, theta0: np.ndarray) -> bool:
    """Whether the loss has switching surfaces (``Loss.kinks``): its rows are then the driver's, which
    integrates a flow in pieces between events on them (:mod:`flowsim.dynamics.switching`); why the
    lockstep loop cannot is :data:`flowsim.dynamics.batched.coverage.SWITCHING`."""
    try:
        return objective.loss.kinks(objective.h(theta0), objective.policy.log_ref) is not None
    except _NUMERICAL:
        return False


class _Run:
    """One batch: the records (n rows), the live rows' state, the loop."""

    def __init__(self, objective: Objective, stop: StopRule, options: SolverOptions, tab: Tableau) -> None:
        self.objective, self.stop, self.options, self.tab = objective, stop, options, tab
        pol = objective.policy
        theta0 = np.asarray(pol.theta0, dtype=float)
        n = self.n = len(theta0)
        self.status = np.full(n, "", dtype=object)
        self.t_end, self.theta_end = np.full(n, np.nan), theta0.copy()
        self.nfev = np.zeros(n, dtype=np.int64)
        p0 = pol.probs(theta0)
        self.track = PathTrack(p0, stop)
        self.track.t_w[:], self.track.t_l[:] = np.nan, np.nan  # set where the chart finds them met (_start)
        self.driver_rows: list[int] = []
        ok = np.asarray(pol.in_domain(theta0), dtype=bool)
        if _switching(objective, theta0):  # lockstep steps would chatter across a sliding surface
            ok[:] = False
        self.driver_rows += np.flatnonzero(~ok).tolist()  # the driver says what is wrong with them
        rows = np.flatnonzero(ok)
        if rows.size:
            try:
                self._start(rows, theta0[rows], p0[rows])
            except _NUMERICAL:  # the batch cannot be set up: every row by the driver
                self.driver_rows += rows.tolist()

    # -- set-up -----------------------------------------------------------------------------

    def _start(self, rows: np.ndarray, theta0: np.ndarray, p0: np.ndarray) -> None:
        """Build the batch's system; record the rows stopped at their start; start the others."""
        objective, stop = Objective(self.objective.loss, self.objective.policy.row(rows)), self.stop
        ratio = objective.policy.kind == "ratio"
        rules = thresholds(stop, capped=objective.policy.has_cap)
        if ratio:
            x0, ref = theta0, np.asarray(objective.policy.ref, dtype=float).reshape(-1, 2)
            met = {
                r.name: (x0[:, r.response] >= r.level / ref[:, r.response])
                if r.rising
                else (x0[:, r.response] <= r.level / ref[:, r.response])
                for r in rules
            }
        else:
            met = {r.name: r.met(p0) for r in rules}
        with np.errstate(all="ignore"):
            if ratio:
                sys_: BatchSystem = RatioSystem(
                    objective, stop, rules, met, self.options, smooth=self.options.chart == "smooth"
                )
            else:
                sys_ = ParameterSystem(objective, stop, rules, met, self.options)
            local = np.arange(len(rows))
            fn_met = {
                name: d * v >= 0 for (name, d), v in zip(sys_.functions, sys_.functions_at(theta0, local), strict=True)
            }
        done = stop.status({r.name: met[r.name] for r in rules if r.terminal} | fn_met)
        for name, col in (("w", self.track.t_w), ("l", self.track.t_l)):
            if name in met:
                col[rows[met[name]]] = 0.0
        stopped = done != ""
        self.status[rows[stopped]] = done[stopped]
        self.t_end[rows[stopped]] = 0.0
        bad = ~stopped & ~np.all(np.isfinite(sys_.f0), axis=0)
        self.driver_rows += rows[bad].tolist()
        self.sys, self.rows_of = sys_, rows  # the system's own row i is the batch's rows_of[i]
        self._loop(np.flatnonzero(~stopped & ~bad))

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self, live: np.ndarray) -> None:
        """Advance every live row (indices into the system's rows) until it stops."""
        sys_, tab, rtol = self.sys, self.tab, self.options.rtol
        if not live.size:
            return
        with np.errstate(all="ignore"):
            tau = np.zeros(len(live))
            y, f = cols(sys_.y0, live), cols(sys_.f0, live)
            armed = cols(np.stack(sys_.armed), live) if sys_.events else np.zeros((0, len(live)), bool)
            direction = np.array([e.direction for e in sys_.events])[:, None]
            try:
                h = initial_step(
                    sys_.rhs, tau, y, f, live, sys_.tau_end[live], tab.error_order, rtol, cols(sys_.atol, live)
                )
                g = sys_.g(tau, y, live, f)
            except _NUMERICAL:
                self.driver_rows += self.rows_of[live].tolist()
                return
            self.nfev[self.rows_of[live]] += 2
            st = _State(live, tau, y, f, h, np.zeros(len(live), bool), g, armed)
            while st.rows.size:
                st = self._iterate(st, direction, rtol)

    def _iterate(self, st: _State, direction: np.ndarray, rtol: float) -> _State:
        """One attempted step of every live row; returns the rows still live."""
        sys_, tab = self.sys, self.tab
        rows = st.rows
        tau_end = sys_.tau_end[rows]
        min_step = 10 * np.abs(np.nextafter(st.tau, np.inf) - st.tau)
        too_small = st.rejected & (st.h < min_step)
        h = np.where(st.h < min_step, min_step, st.h)
        t_new = np.minimum(st.tau + h, tau_end)
        h = t_new - st.tau
        try:
            y_new, f_new, K = step(tab, sys_.rhs, st.tau, st.y, st.f, h, rows)
        except _NUMERICAL:
            self.driver_rows += self.rows_of[rows].tolist()
            return st.take(np.zeros(len(rows), bool))
        self.nfev[self.rows_of[rows]] += tab.n_stages
        scale = np.maximum(np.abs(st.y), np.abs(y_new))
        scale *= rtol
        scale += cols(sys_.atol, rows)
        err = error_norm(tab, K, h, scale)
        finite = np.isfinite(err) & np.all(np.isfinite(y_new), axis=0) & np.all(np.isfinite(f_new), axis=0)
        broken = ~finite & ~np.all(np.isfinite(K), axis=(0, 1))  # a non-finite field: the driver's failure
        broken |= too_small | (~finite & st.rejected & (h <= min_step))
        if self.options.max_nfev is not None:  # stiff here: the driver integrates it (and switches method)
            broken |= self.nfev[self.rows_of[rows]] > self.options.max_nfev
        accepted = finite & (err < 1) & ~broken
        factor = step_factor(tab, err, accepted, st.rejected)
        new_h = np.abs(h) * factor
        keep = ~broken
        self.driver_rows += self.rows_of[rows[broken]].tolist()
        acc = np.flatnonzero(accepted)
        done = np.zeros(len(rows), bool)
        if acc.size:
            try:
                g_new = sys_.g(t_new[acc], cols(y_new, acc), rows[acc], cols(f_new, acc))
            except _NUMERICAL:
                self.driver_rows += self.rows_of[rows[acc]].tolist()
                done[acc] = True
                g_new = None
            if g_new is not None:
                g_old = cols(st.g, acc)
                up, down = (g_old <= 0) & (g_new >= 0), (g_old >= 0) & (g_new <= 0)
                active = cols(st.armed, acc) & (
                    (up & (direction > 0)) | (down & (direction < 0)) | ((up | down) & (direction == 0))
                )
                at_end = t_new[acc] >= tau_end[acc]
                special = np.flatnonzero(active.any(axis=0) | at_end)
                if special.size:
                    j = acc[special]
                    done[j] = self._events(
                        j,
                        st,
                        t_new[j],
                        cols(y_new, j),
                        h[j],
                        cols(K, j),
                        cols(g_new, special),
                        cols(active, special),
                        at_end[special],
                    )
                st.tau[acc], st.g[:, acc] = t_new[acc], g_new
                st.y[:, acc], st.f[:, acc] = cols(y_new, acc), cols(f_new, acc)
        st.h = new_h
        st.rejected = ~accepted
        return st.take(keep & ~done)

    # -- events ---------------------------------------------------------------------------------

    def _events(self, j, st: _State, t_new, y_new, h, K, g_new, active, at_end) -> np.ndarray:
        """Rows j (positions in the live state) whose accepted step met an event or the end.

        Locates the roots on the dense output (as ``solve_ivp``), records crossings and monitor
        turns up to the earliest terminal one, lands on that stop (one step from the last point
        and a Newton step, as the driver) and records it.  Returns which of them stopped.
        """
        sys_, rows = self.sys, st.rows[j]
        tau_old = st.tau[j]
        has = np.flatnonzero(active.any(axis=0))
        roots = np.full(active.shape, np.inf)  # (E, len(j))
        dense = None
        if has.size:
            dense = Dense(
                self.tab, sys_.rhs, tau_old[has], cols(st.y, j[has]), cols(y_new, has), h[has], cols(K, has), rows[has]
            )
            self.nfev[self.rows_of[rows[has]]] += self.tab.dense_evals
            self._locate(roots, j, has, st, dense, tau_old, t_new, g_new, active)
        terminal = np.array([ev.terminal for ev in sys_.events], bool)
        term_roots = np.where(terminal[:, None], roots, np.inf)
        if len(roots):
            first = np.argmin(term_roots, axis=0)
            t_first = term_roots[first, np.arange(len(j))]
        else:
            first, t_first = np.zeros(len(j), int), np.full(len(j), np.inf)
        stops = np.isfinite(t_first)
        cut = np.where(stops, t_first, t_new)
        dpos = np.full(len(j), -1)
        dpos[has] = np.arange(len(has))
        if has.size:
            self._crossings(j, st, roots, cut, dpos, dense)
        end = np.flatnonzero(at_end & ~stops)
        if end.size:
            self._finish(self.rows_of[rows[end]], sys_.end_status[rows[end]], cols(y_new, end))
        land = np.flatnonzero(stops)
        if land.size:
            self._land(j[land], st, first[land], t_first[land], dense(t_first[land], dpos[land]))
        return stops | at_end

    def _locate(self, roots, j, has, st: _State, dense: Dense, tau_old, t_new, g_new, active) -> None:
        """Fill ``roots`` (E, len(j)) with every active event's root in its step: one root finding for all.

        Events on the clock have a known root; the others are solved together, each (event,
        row) pair a bracket of one vectorised Chandrupatla iteration on the dense output.
        """
        sys_ = self.sys
        pairs_e, pairs_w = [], []
        for e in np.flatnonzero(active[:, has].any(axis=1)):
            w = np.flatnonzero(active[e, has])  # positions in the dense subset
            known = sys_.root_known(int(e), st.rows[j[has[w]]])
            if known is not None:  # an event on the clock: its root is a known tau
                roots[e, has[w]] = known
            else:
                pairs_e.append(np.full(len(w), e))
                pairs_w.append(w)
        if not pairs_e:
            return
        pe, pw = np.concatenate(pairs_e), np.concatenate(pairs_w)
        sub, r_p = dense.rows(pw), st.rows[j[has[pw]]]
        groups = [(int(e), k, r_p[k]) for e in np.unique(pe) for k in [np.flatnonzero(pe == e)]]

        def fun(tau: np.ndarray) -> np.ndarray:
            y, out = sub(tau), np.empty(len(tau))
            for e, k, r in groups:
                out[k] = sys_.g_one(e, tau[k], cols(y, k), r)
            return out

        tol = np.where(np.array([ev.kind == "monitor" for ev in sys_.events])[pe], _MONITOR_TOL, 4 * _EPS)
        at = j[has[pw]]
        roots[pe, has[pw]] = _root(fun, tau_old[has[pw]], t_new[has[pw]], st.g[pe, at], g_new[pe, has[pw]], tol)

    def _crossings(self, j, st: _State, roots, cut, dpos, dense: Dense) -> None:
        """Record the crossings (first ones) and the monitors' turns met up to each row's cut."""
        sys_ = self.sys
        for e, ev in enumerate(sys_.events):
            if ev.kind == "stop":
                continue
            hit = np.flatnonzero(np.isfinite(roots[e]) & (roots[e] <= cut))
            if not hit.size:
                continue
            y_at = dense(roots[e, hit], dpos[hit])
            r, t_at = self.rows_of[st.rows[j[hit]]], y_at[-1]
            if ev.kind == "crossing":
                (self.track.t_w if ev.name == "w" else self.track.t_l)[r] = t_at
                st.armed[e, j[hit]] = False
                continue
            self.track.visit(t_at, sys_.probs(y_at, st.rows[j[hit]]), r)

    def _land(self, j, st: _State, which: np.ndarray, tau_e: np.ndarray, y_e: np.ndarray) -> None:
        """Land rows j on their terminal event ``which``, found at (tau_e, y_e) on the dense output.

        As the driver: one step of the method from the last accepted point exactly to tau_e,
        then a Newton step on the event's residual along the field (its error enters squared).
        Where that cannot be computed, the stop is kept as found.
        """
        sys_, rows = self.sys, st.rows[j]
        y_end = y_e.copy()
        go = np.flatnonzero(tau_e > st.tau[j])
        if go.size:
            try:
                y_l, f_l, _ = step(
                    self.tab,
                    sys_.rhs,
                    st.tau[j[go]],
                    cols(st.y, j[go]),
                    cols(st.f, j[go]),
                    tau_e[go] - st.tau[j[go]],
                    rows[go],
                )
                self.nfev[self.rows_of[rows[go]]] += self.tab.n_stages
                for e in np.unique(which[go]):
                    sel = np.flatnonzero(which[go] == e)
                    k = go[sel]
                    y_k, f_k = cols(y_l, sel), cols(f_l, sel)
                    gv = sys_.g_one(int(e), tau_e[k], y_k, rows[k])
                    s = sys_.slope(int(e), y_k, f_k, rows[k])
                    d = np.where(s != 0, -gv / np.where(s != 0, s, 1.0), 0.0)
                    ok = np.isfinite(d) & np.all(np.isfinite(y_k), axis=0)
                    y_end[:, k] = np.where(ok, y_k + f_k * d, cols(y_e, k))
            except _NUMERICAL:  # landing only refines a stop already found: keep it as found
                pass
        names = np.array([ev.name for ev in sys_.events], dtype=object)[which]
        self._finish(self.rows_of[rows], names, y_end)

    # -- records ----------------------------------------------------------------------------------

    def _finish(self, r: np.ndarray, status: np.ndarray, y_end: np.ndarray) -> None:
        """Record rows r (batch indices) stopped with ``status`` at state ``y_end`` (m, len(r))."""
        sys_ = self.sys
        self.status[r] = status
        self.t_end[r] = np.where(status == "timeout", self.stop.t_max, y_end[-1])
        theta = sys_.theta(y_end)
        local = np.searchsorted(self.rows_of, r)
        for name, (i, value) in sys_.snaps.items():
            hit = status == name
            theta[hit, i] = value[local[hit]]
        self.theta_end[r] = theta

    def result(self) -> dict[str, np.ndarray]:
        """Every field of RESULT_FIELDS and PATH_FIELDS, by row."""
        n, pol = self.n, self.objective.policy
        done = np.flatnonzero(self.status != "")
        out = {k: np.full(n, np.nan) for k in (*RESULT_FIELDS, *PATH_FIELDS)}
        out["status"], out["message"] = self.status.copy(), np.full(n, "", dtype=object)
        out["nfev"] = self.nfev.copy()
        if done.size:
            th = self.theta_end[done]
            sub = Objective(self.objective.loss, pol.row(done))
            with np.errstate(all="ignore"):
                p, x, value, h = sub.policy.probs(th), sub.policy.ratios(th), sub.value(th), sub.h(th)
            t = self.t_end[done]
            cols = {
                "t_stop": t,
                "x1_final": x[:, 0],
                "x2_final": x[:, 1],
                "p1_final": p[:, 0],
                "p2_final": p[:, 1],
                "loss_final": value,
                **finish_rows(p, h, t, self.track, done),
            }
            displaced = cols.pop("displaced")
            for k, v in cols.items():
                out[k][done] = v
        else:
            displaced = np.zeros(0, bool)
        by_driver = sorted(set(self.driver_rows))
        out["engine"] = np.full(n, "batched", dtype=object)
        if not by_driver:
            out["displaced"] = np.zeros(n, bool)
            out["displaced"][done] = displaced
            return out
        out["engine"][by_driver] = "driver"
        out["displaced"] = np.full(n, np.nan, dtype=object)
        out["displaced"][done] = displaced
        for i in by_driver:  # rows the batch could not compute: the reference computes them
            rec = _driver_row(self.objective, i, self.stop, self.options).as_dict()
            for k in (*RESULT_FIELDS, *PATH_FIELDS):
                out[k][i] = rec[k]
        return out


def _driver_row(objective: Objective, i: int, stop: StopRule, options: SolverOptions) -> FlowResult:
    """Row i by the per-start driver, a failure recorded as the sweep records it."""
    try:
        return integrate(objective.loss, policy=objective.policy.row(i), stop=stop, options=options)
    except Exception as exc:  # noqa: BLE001 - one bad row never stops a batch: it is recorded as failed
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")


class _State:
    """The live rows: their indices into the system, clocks, states, fields, steps, event values."""

    def __init__(self, rows, tau, y, f, h, rejected, g, armed) -> None:
        self.rows, self.tau, self.y, self.f, self.h = rows, tau, y, f, h
        self.rejected, self.g, self.armed = rejected, g, armed

    def take(self, keep: np.ndarray) -> _State:
        if keep.all():
            return self
        k = np.flatnonzero(keep)
        return _State(
            self.rows[k],
            self.tau[k],
            cols(self.y, k),
            cols(self.f, k),
            self.h[k],
            self.rejected[k],
            cols(self.g, k),
            cols(self.armed, k),
        )


def _root(fun, lo, hi, glo, ghi, tol: float | np.ndarray = 4 * _EPS, maxiter: int = 100) -> np.ndarray:
    """A root of fun(tau) in each bracket [lo, hi], vectorised (fun evaluates every bracket at once).

    g(lo) and g(hi) have opposite signs or one is 0 (an endpoint that is 0 is the root, as
    brentq has it).  Chandrupatla's method (inverse quadratic interpolation where it is safe,
    else bisection; the method of ``scipy.optimize.elementwise.find_root``, whose per-call
    overhead is milliseconds), to |error| <= tol (1 + |tau|); the default 4 eps is the brentq of
    ``solve_ivp`` (xtol = rtol = 4 eps).  Brackets that have converged are carried along unchanged.
    """
    out = np.where(glo == 0, lo, np.where(ghi == 0, hi, np.nan))
    todo = np.isnan(out)
    b, a, fb, fa = lo.copy(), hi.copy(), glo.copy(), ghi.copy()
    c, fc = a.copy(), fa.copy()
    t = np.full(len(lo), 0.5)
    for _ in range(maxiter):
        if not todo.any():
            break
        xt = a + t * (b - a)
        ft = np.where(todo, fun(xt), fa)
        same = np.sign(ft) == np.sign(fa)
        c, fc = np.where(same, a, b), np.where(same, fa, fb)
        b, fb = np.where(same, b, a), np.where(same, fb, fa)
        a, fa = xt, ft
        small = np.abs(fa) < np.abs(fb)
        xm, fm = np.where(small, a, b), np.where(small, fa, fb)
        with np.errstate(all="ignore"):
            tlim = tol * (1.0 + np.abs(xm)) / np.abs(b - c)
            xi, phi = (a - b) / (c - b), (fa - fb) / (fc - fb)
            iqi = (phi * phi < xi) & ((1 - phi) ** 2 < 1 - xi)
            t = np.where(
                iqi, fa / (fb - fa) * fc / (fb - fc) + (c - a) / (b - a) * fa / (fc - fa) * fb / (fc - fb), 0.5
            )
        t[np.isnan(t)] = 0.5
        t = np.clip(t, tlim, 1 - tlim)
        done = todo & ((fm == 0) | ~(tlim <= 0.5) | ~np.isfinite(fm))
        out[done] = xm[done]
        todo &= ~done
    out[todo] = 0.5 * (a + b)[todo]
    return out


__all__ = ["integrate_batch"]
