r"""Discrete optimisers from many starts at once: :func:`run_discrete`.

All live rows advance together, one vectorised step per iteration (arrays (m, d) for the m
rows still running); a row that meets a stop is recorded at once, and the arrays are
compacted to the live rows whenever a quarter of them has stopped (:data:`COMPACT_AT`), so
later steps work on (nearly) the live rows only.  Every row's arithmetic is its own: on the
registered parameterisations a row gets bitwise the same record run alone as in any batch
(see :mod:`.kernels`).  The record has the fields of the flow's
:class:`~flowsim.dynamics.record.FlowResult` (:data:`RESULT_FIELDS` and :data:`PATH_FIELDS`),
with the same meanings, so a discrete run and a flow compare column by column.

Time
----
Step k stands for flow time t = lr k (gradient descent is the Euler scheme of the flow with
dt = lr).  The run times out after ``stop.max_steps`` steps, or at the first k with
lr k >= t_max (up to a relative 1e-12, so that lr = t_max / N times out after exactly N
steps however lr / t_max rounds).

Stops
-----
After each step, at the new point, in the flow's order of precedence where several are met
at the same step (:meth:`~flowsim.dynamics.record.StopRule.status`): ``converged``
(p_l <= p2_floor), ``capped`` (p_w >= 1; models with ``has_cap`` only), ``reached_loss``
(L <= loss_target), ``reached_margin`` (h_w - h_l >= margin_target), ``stationary``
(|grad_theta L| <= stationary_tol, when that is > 0), ``timeout``.  A start that already
meets one stops there with t_stop = 0 and steps = 0.

A step that leaves the model's domain (``policy.in_domain`` false), or where the loss or its
gradient is not finite, ends its row as ``diverged``: the record keeps the last valid point
(after k - 1 steps, t_stop = lr (k - 1)) and ``message`` says which step and which
coordinate.  The one exception is the cap: on the ratio plane, a step that carries p_w past
1 (x1 > 1/ref_w, outside the box) with everything else valid stops as ``capped``, its point
put exactly on x1 = 1/ref_w, as the flow's record snaps a stop onto its level.

Crossings t_w, t_l: the t of the first step (0 for the start) with p_w >= p1_target, resp.
p_l <= p2_target, up to and including the stopping step; NaN if none.

Path fields: ``p_w_min`` / ``t_p_w_min`` over the start and every step (the first t at the
minimum), the rest as every engine records them (:func:`~flowsim.dynamics.record.finish_rows`);
``steps`` the steps taken (= ``nfev``, the gradient evaluations that moved the row).
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.dynamics.events import thresholds
from flowsim.dynamics.optimisers.base import Optimiser
from flowsim.dynamics.optimisers.kernels import Evaluator, evaluator_for
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, PathTrack, StopRule, finish_rows
from flowsim.model.losses.base import Loss
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.base import Policy

#: Stopped rows ride along (stepped, never read) until this fraction of the arrays has stopped; then
#: the arrays are compacted to the live rows.  Measured by experiments/bench_optimisers.py
#: (1000 logits rows, K = 10, Adam, stops spread over ~250 steps, on a shared 2-core machine): 0.1-0.5
#: were fastest, compacting at every stop ~5% and never compacting (masks only) ~5-15% slower, the
#: differences near the noise; the gap grows when few rows remain live for long.
COMPACT_AT = 0.25
#: Slack on lr k >= t_max, relative (so t_max / lr rounding up by an ulp does not add a step).
TIME_RTOL = 1e-12

_FLOAT_FIELDS = (
    "t_stop",
    "x1_final",
    "x2_final",
    "p1_final",
    "p2_final",
    "loss_final",
    "t_w",
    "t_l",
    "p_w_min",
    "t_p_w_min",
    "max_mass",
    "margin_final",
    "rest_final",
    "top_other",
    "p_top_other",
    "t_sliding",
    "top_other_gain",
)


def step_limit(stop: StopRule, lr: float) -> int:
    """The step at which a run times out: max_steps, or the first k with lr k >= t_max (1e-12 relative)."""
    q = stop.t_max / lr
    if not math.isfinite(q) or q >= stop.max_steps:
        return stop.max_steps
    return min(stop.max_steps, max(1, math.ceil(q * (1.0 - TIME_RTOL))))


def _norm(g: np.ndarray) -> np.ndarray:
    """|g| of each row (for the stationary test and the finiteness of g)."""
    return np.sqrt(np.einsum("ij,ij->i", g, g))


def run_discrete(
    loss: Loss | Objective,
    policy: Policy | None,
    optimiser: Optimiser,
    stop: StopRule | None = None,
    *,
    path: bool = False,
    path_points: int = 400,
) -> dict[str, np.ndarray]:
    """Run ``optimiser`` on L = loss(policy) from every start of ``policy`` until each stops.

    Parameters
    ----------
    loss : Loss or Objective
        The loss, composed with ``policy`` (or an objective, whose policy is used when
        ``policy`` is None).
    policy : Policy
        A policy bound to n starts (batch shape (n,)); every row starts at its ``theta0``.
        Its ``row`` must accept an integer index array (every registered one does): rows
        that stop are dropped by ``policy.row(live_rows)``.
    optimiser : Optimiser
        The update rule (:data:`~flowsim.dynamics.optimisers.OPTIMISERS`).
    stop : StopRule, optional
        Stops and crossings (default ``StopRule()``); see the module docstring.
    path : bool, default False
        Also return each row's path, as :func:`~flowsim.dynamics.driver.integrate` does: ``path_t``
        and ``path_x``, object arrays (n,) of times (m,) and parameters (m, d), from the start to
        the stop.  The points are the steps k with k % s == 0 for one stride s that doubles
        whenever more than 2 ``path_points`` steps are held (so a path has at least about
        ``path_points`` of them, fewer for a row that stops early), and the row's last step.

    Returns
    -------
    dict of numpy arrays of shape (n,), one per field of :data:`RESULT_FIELDS` and
    :data:`PATH_FIELDS`: ``status`` and ``message`` of dtype object (str), ``nfev`` and
    ``steps`` int64, ``displaced`` bool, the rest float.  A row never raises: a step that
    breaks it makes it ``diverged``.

    Examples
    --------
    >>> from flowsim.model.losses import DPO
    >>> from flowsim.model.parameterisations import RatioPlane
    >>> from flowsim.dynamics.optimisers import GD
    >>> pol = RatioPlane().bind([[0.5, 0.5]], [[1.0, 1.0]])
    >>> out = run_discrete(DPO(beta=0.1), pol, GD(lr=0.1), StopRule(t_max=1.0))
    >>> str(out["status"][0]), int(out["steps"][0]), round(float(out["t_stop"][0]), 12)
    ('timeout', 10, 1.0)
    """
    if isinstance(loss, Objective):
        policy = loss.policy if policy is None else policy
        loss = loss.loss
    if policy is None:
        raise ValueError("run_discrete needs a policy bound to its starts")
    if not isinstance(optimiser, Optimiser):
        raise TypeError(f"optimiser must be an Optimiser; got {type(optimiser).__name__}")
    stop = StopRule() if stop is None else stop
    theta0 = np.array(policy.theta0, dtype=float)
    if theta0.ndim != 2:
        raise ValueError(
            f"run_discrete takes a policy bound to n starts (parameters of shape (n, d)); "
            f"got parameters of shape {theta0.shape}"
        )
    return _Run(loss, policy, optimiser, stop, theta0, _Trace(path_points) if path else None).run()


class _Run:
    """One call of :func:`run_discrete`: the output arrays and the live rows' arrays."""

    def __init__(
        self,
        loss: Loss,
        policy: Policy,
        opt: Optimiser,
        stop: StopRule,
        theta0: np.ndarray,
        trace: _Trace | None = None,
    ) -> None:
        self.trace = trace
        self.policy, self.opt, self.stop, self.lr = policy, opt, stop, opt.lr
        self.n = n = theta0.shape[0]
        self.theta0 = theta0
        self.k_max = step_limit(stop, opt.lr)
        rules = thresholds(stop, capped=policy.has_cap)
        self.rules = tuple(r for r in rules if r.terminal)  # the thresholds that stop; the rest are the rule's
        self.capped = any(r.name == "capped" for r in self.rules)
        self.out: dict[str, np.ndarray] = {f: np.full(n, math.nan) for f in _FLOAT_FIELDS}
        self.out["status"] = np.full(n, "", dtype=object)
        self.out["message"] = np.full(n, "", dtype=object)
        self.out["nfev"] = np.zeros(n, dtype=np.int64)
        self.out["steps"] = np.zeros(n, dtype=np.int64)
        self.out["displaced"] = np.zeros(n, dtype=bool)
        self.model: Evaluator = evaluator_for(loss, policy)

    # -- the live rows -------------------------------------------------------------------------

    @staticmethod
    def _evaluate(model: Evaluator, theta: np.ndarray):
        h, p, g = model(theta)
        return h, p, g, model.value(h), _norm(g)

    def run(self) -> dict[str, np.ndarray]:
        with np.errstate(all="ignore"):
            self._start()
            for k in range(1, self.k_max + 1):
                if not self.n_live:
                    break
                self._step(k)
                if self.idx.size - self.n_live >= max(1, COMPACT_AT * self.idx.size):
                    self._compact(self.alive)
        out = self.out
        paths = {} if self.trace is None else self.trace.paths(out["steps"], self.lr)
        return {f: out[f] for f in (*RESULT_FIELDS, *PATH_FIELDS)} | paths

    def _start(self) -> None:
        model, theta = self.model, self.theta0
        h, p, g, L, gn = self._evaluate(model, theta)
        self.idx = np.arange(self.n)
        self.alive, self.n_live = np.ones(self.n, dtype=bool), self.n
        self.theta, self.h, self.p, self.g, self.L, self.gn = theta, h, p, g, L, gn
        self.state = self.opt.init(theta)
        self.track = PathTrack(p, self.stop)
        ok = model.in_domain(theta) & np.isfinite(L) & np.all(np.isfinite(g), axis=-1)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            msgs = [self._broken(0, int(self.idx[r]), theta[r], theta[r], L[r], g[r]) for r in bad]
            self._retire(bad, "diverged", 0, theta[bad], h[bad], p[bad], L[bad], msgs)
            self._drop(bad)
        if self.n_live:
            self._stop_rows(self._flags(None), 0, timeout=False)
        if self.trace is not None:
            self.trace.keep(0, self.idx, self.theta)

    def _step(self, k: int) -> None:
        model = self.model
        before = self.theta, self.h, self.p, self.L
        theta, state = self.opt.step(self.theta, self.g, self.state, k)
        h, p, g, L, gn = self._evaluate(model, theta)
        ok = model.in_domain(theta) & np.isfinite(L) & np.isfinite(gn)
        if self.n_live < ok.size:  # rows already stopped are never broken
            ok |= ~self.alive
        self.theta, self.state, self.h, self.p, self.g, self.L, self.gn = theta, state, h, p, g, L, gn
        forced = None
        if not ok.all():
            # |g| overflows for a finite gradient beyond ~1e154: such a row is fine
            big = np.flatnonzero(~ok & np.isinf(gn))
            if big.size:
                # (the domain of the model's own rows: a ratio plane's bounds are per row)
                fine = model.in_domain(theta)[big] & np.isfinite(L[big]) & np.all(np.isfinite(g[big]), axis=-1)
                ok[big[fine]] = True
            if self.capped:  # a step past the cap stops on it (see the module docstring)
                forced = self._snap(np.flatnonzero(~ok & (p[:, 0] >= 1.0)), ok)
            if not ok.all():
                bad = np.flatnonzero(~ok)
                th0, h0, p0, L0 = before
                msgs = [self._broken(k, int(self.idx[r]), th0[r], theta[r], L[r], g[r]) for r in bad]
                self._retire(bad, "diverged", k - 1, th0[bad], h0[bad], p0[bad], L0[bad], msgs)
                self._drop(bad)
                if not self.n_live:
                    return
        t = k * self.lr
        self.track.visit(t, p)  # the path so far (stopped rows ride along, never read)
        self.track.cross(t, p)
        if self.trace is not None:
            self.trace.keep(k, self.idx, self.theta)
        self._stop_rows(self._flags(forced), k, timeout=k == self.k_max)

    def _flags(self, forced: np.ndarray | None) -> dict[str, np.ndarray] | None:
        """Each stop's test on the live rows (with the forced caps), or None where no row meets any."""
        p, h = self.p, self.h
        met = {r.name: r.met(p) for r in self.rules} | self.stop.functions_met(self.L, h[:, 0] - h[:, 1], self.gn)
        if forced is not None:
            met["capped"] = met["capped"] | forced
        if not met:
            return None
        anyf = np.logical_or.reduce(list(met.values()))
        if self.n_live < anyf.size:
            anyf = anyf & self.alive
            if anyf.any():
                return {k: f & self.alive for k, f in met.items()}
        return met if anyf.any() else None

    def _stop_rows(self, met: dict[str, np.ndarray] | None, k: int, *, timeout: bool) -> None:
        """Retire the rows that meet a stop at step k (every remaining row if ``timeout``)."""
        if met is None and not timeout:
            return
        met = dict(met or {})
        if timeout:
            met["timeout"] = self.alive
        status = self.stop.status(met)
        done = status != ""
        rows = np.flatnonzero(done)
        if not rows.size:
            return
        self._retire(rows, status[rows], k, self.theta[rows], self.h[rows], self.p[rows], self.L[rows], None)
        self._drop(rows)

    def _drop(self, rows: np.ndarray) -> None:
        """Mark rows stopped: they ride along (their values unused) until the next compaction."""
        self.alive[rows] = False
        self.n_live = int(np.count_nonzero(self.alive))

    def _compact(self, keep: np.ndarray) -> None:
        """Drop the rows not in ``keep`` from every live array and from the evaluator."""
        self.idx = self.idx[keep]
        self.alive, self.n_live = np.ones(self.idx.size, dtype=bool), self.idx.size
        self.theta, self.h, self.p, self.g = self.theta[keep], self.h[keep], self.p[keep], self.g[keep]
        self.L, self.gn = self.L[keep], self.gn[keep]
        self.state = tuple(s[keep] for s in self.state)
        self.track = self.track.take(np.flatnonzero(keep))
        if self.idx.size:
            self.model = self.model.take(np.flatnonzero(keep))

    def _snap(self, rows: np.ndarray, ok: np.ndarray) -> np.ndarray | None:
        """Put rows that stepped past the cap on it (in place); mark them ok and return them as forced caps."""
        if not rows.size:
            return None
        snapped = self.model.snap_to_cap(self.theta[rows], rows)
        if snapped is None:
            return None
        sub = self.model.take(rows)
        hc, pc, gc, Lc, gnc = self._evaluate(sub, snapped)
        good = sub.in_domain(snapped) & np.isfinite(Lc) & np.all(np.isfinite(gc), axis=-1)
        if not good.any():
            return None
        r = rows[good]
        self.theta[r], self.h[r], self.p[r], self.g[r] = snapped[good], hc[good], pc[good], gc[good]
        self.L[r], self.gn[r] = Lc[good], gnc[good]
        ok[r] = True
        forced = np.zeros(ok.shape, dtype=bool)
        forced[r] = True
        return forced

    # -- records -------------------------------------------------------------------------------

    def _retire(self, rows, status, steps: int, theta, h, p, L, messages) -> None:
        """Write the records of local rows ``rows`` stopping at the given point after ``steps`` steps."""
        out, orig = self.out, self.idx[rows]
        out["status"][orig] = status
        if self.trace is not None:
            self.trace.finals.update(zip(orig.tolist(), np.array(theta, dtype=float), strict=True))
        out["t_stop"][orig] = steps * self.lr
        x = self.model.take(rows).ratios(theta, h)
        out["x1_final"][orig], out["x2_final"][orig] = x[:, 0], x[:, 1]
        out["p1_final"][orig], out["p2_final"][orig] = p[:, 0], p[:, 1]
        out["loss_final"][orig] = L
        out["nfev"][orig] = steps
        out["steps"][orig] = steps
        if messages is not None:
            out["message"][orig] = messages
        for key, value in finish_rows(p, h, steps * self.lr, self.track, rows).items():
            out[key][orig] = value

    def _broken(self, k: int, i: int, before: np.ndarray, after: np.ndarray, L: float, g: np.ndarray) -> str:
        """Why step k of row i (original index) is not valid: which coordinate, where."""
        pol = self.policy.row(i)
        where = "the start" if k == 0 else f"step {k}"
        if not bool(pol.in_domain(after)):
            bad = np.flatnonzero(~np.isfinite(after))
            j = int(bad[0]) if bad.size else None
            if j is None:
                for c in range(after.size):  # the first coordinate that alone takes `before` out
                    probe = before.copy()
                    probe[c] = after[c]
                    if not bool(pol.in_domain(probe)):
                        j = c
                        break
            what = f"theta = {after.tolist()}" if j is None else f"theta[{j}] = {after[j]:.6g}"
            verb = "is outside" if k == 0 else "left"
            return f"{where}: {what} {verb} the domain ({pol.describe_domain()})"
        if not math.isfinite(float(L)):
            return f"{where}: the loss is {float(L)} at theta = {after.tolist()}"
        bad = np.flatnonzero(~np.isfinite(g))
        j = int(bad[0]) if bad.size else 0
        return f"{where}: the gradient is not finite (dL/dtheta[{j}] = {g[j]}) at theta = {after.tolist()}"


class _Trace:
    """The points of the rows' paths a run keeps (``run_discrete(path=True)``): every stride-th step."""

    def __init__(self, points: int) -> None:
        self.points, self.stride = max(1, points), 1
        self.kept: list[tuple[int, np.ndarray, np.ndarray]] = []  # (step, rows (original index), theta)
        self.finals: dict[int, np.ndarray] = {}

    def keep(self, k: int, idx: np.ndarray, theta: np.ndarray) -> None:
        if k % self.stride:
            return
        self.kept.append((k, idx.copy(), np.array(theta, dtype=float)))
        if len(self.kept) > 2 * self.points:  # halve what is held
            self.stride *= 2
            self.kept = [e for e in self.kept if e[0] % self.stride == 0]

    def paths(self, steps: np.ndarray, lr: float) -> dict[str, np.ndarray]:
        """path_t, path_x of every row: its kept points up to its last step, then its final point."""
        n = len(steps)
        ts, xs = [[] for _ in range(n)], [[] for _ in range(n)]
        for k, idx, theta in self.kept:
            for j, i in enumerate(idx.tolist()):
                if k < steps[i]:
                    ts[i].append(k * lr)
                    xs[i].append(theta[j])
        path_t, path_x = np.empty(n, dtype=object), np.empty(n, dtype=object)
        for i in range(n):
            path_t[i] = np.array([*ts[i], steps[i] * lr])
            path_x[i] = np.array([*xs[i], self.finals[i]])
        return {"path_t": path_t, "path_x": path_x}


__all__ = ["COMPACT_AT", "TIME_RTOL", "run_discrete", "step_limit"]
