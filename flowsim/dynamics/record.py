"""What one flow records, and the rule that stops it: each defined once, here.

Every engine (:mod:`flowsim.dynamics.engines`: the driver, the batched integrator, the closed
forms, the discrete optimisers, the network's training) takes a :class:`StopRule` and returns
the fields in :data:`RESULT_FIELDS` and :data:`PATH_FIELDS`, so any two can be compared column
by column and any of them can feed a sweep.  What they share is written here once:

* which stops a rule sets (:data:`OPTIONAL_STOPS`, :meth:`StopRule.optional`), their tests
  (:meth:`StopRule.functions_met`) and their precedence (:data:`STOP_ORDER`,
  :meth:`StopRule.status`, :meth:`StopRule.earliest`);
* what a path records on the way (:class:`PathTrack`: the lowest p_w, the largest p_w + p_l,
  the crossing times) and the columns of a finished row (:func:`finish_rows`: p_w_min,
  displaced, max_mass, margin_final, rest_final, top_other, p_top_other).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from flowsim._validation import ParamError, check_int, check_interval, check_positive, check_real

#: Why a flow stopped.  ``converged``: p2 <= p2_floor (the dispreferred response is
#: unlearned); ``capped``: p1 >= 1 (the preferred response has all the probability; the ratio
#: plane only); ``reached_loss``: L <= loss_target; ``reached_margin``: h_w - h_l >=
#: margin_target; ``stationary``: |grad_theta L| <= stationary_tol (the flow has stopped
#: moving); ``timeout``: t reached t_max (or a discrete run its max_steps) first; ``diverged``:
#: a discrete step left the model's domain (see ``message``), or on the ratio plane p1 fell to
#: p2_floor (the floor is a stop, not a proof that p1 reaches 0 in finite time: a flow that only
#: decays towards p1 = 0 ends there too, and is also leaving the losses' domain); ``failed``: the
#: solver failed.
STATUSES: tuple[str, ...] = (
    "converged",
    "capped",
    "reached_loss",
    "reached_margin",
    "stationary",
    "timeout",
    "diverged",
    "failed",
)

#: The fields of one flow's record, in the order they appear in results tables.
RESULT_FIELDS: tuple[str, ...] = (
    "status",
    "t_stop",
    "x1_final",
    "x2_final",
    "p1_final",
    "p2_final",
    "loss_final",
    "t_w",
    "t_l",
    "nfev",
    "message",
)

#: What a row records about the path beyond its end point (NaN / empty where it does not apply).
#: ``p_w_min`` and ``t_p_w_min``: the lowest p_w along the path and when; ``displaced``: p_w fell
#: below p_w0 at some t > 0 (by more than 1e-12 relative); ``max_mass``: the largest p_w + p_l
#: along the path (> 1: the ratio plane left the simplex); ``margin_final``: h_w - h_l at the
#: stop; ``rest_final``: 1 - p_w - p_l (normalised models); ``top_other`` / ``p_top_other``: which
#: other response (2..K-1) holds most probability at the stop, and how much; ``steps``: the
#: number of discrete steps taken (discrete optimisers only); ``t_sliding``: the time the flow spent
#: sliding along a switching surface of the loss (a Filippov sliding mode, where its field is
#: non-smooth and both sides push into the surface: ``Loss.kinks``); 0 where it never slid;
#: ``top_other_gain``: the probability at the stop minus at the start of the other response that
#: was the most likely at the start (Ren & Sutherland's squeezing; a network's is its predictors').
PATH_FIELDS: tuple[str, ...] = (
    "p_w_min",
    "t_p_w_min",
    "displaced",
    "max_mass",
    "margin_final",
    "rest_final",
    "top_other",
    "p_top_other",
    "steps",
    "t_sliding",
    "top_other_gain",
)

#: The stops a rule may set or leave off (the thresholds and t_max are always on); a stop rule's
#: *shape* is the set of these it sets (:meth:`StopRule.optional`), which is what an engine declares.
OPTIONAL_STOPS: tuple[str, ...] = ("loss_target", "margin_target", "stationary_tol")
#: The statuses of the stops, in order of precedence: where several are met at the same point
#: (or time) the first listed is the row's status.  The ratio plane's floor on p_w is ``diverged``.
STOP_ORDER: tuple[str, ...] = (
    "converged",
    "capped",
    "diverged",
    "reached_loss",
    "reached_margin",
    "stationary",
    "timeout",
)
#: The function stops (of theta, not of one probability), by the StopRule key that sets each.
FUNCTION_STOPS: dict[str, str] = {
    "loss_target": "reached_loss",
    "margin_target": "reached_margin",
    "stationary_tol": "stationary",
}
#: p_w must fall below p_w0 by this much, relatively, for the path to count as ``displaced``.
DISPLACED_RTOL = 1e-12


@dataclass(frozen=True)
class StopRule:
    """When a flow stops, and which crossing times it records on the way.

    Parameters
    ----------
    p2_floor : float, default 1e-6
        Stop as ``converged`` once p2 = pi(y_l|x) <= p2_floor.  In (0, 1).
    p1_target : float, default 0.9
        Record ``t_w``, the first time p1 >= p1_target.  In (0, 1].
    p2_target : float, default 0.1
        Record ``t_l``, the first time p2 <= p2_target.  In [p2_floor, 1).
    t_max : float, default 1e4
        Stop as ``timeout`` at t = t_max.  The flow's time is gradient-flow time: with
        plain gradient descent at learning rate eta, t is about eta times the step count.
    loss_target : float, optional
        Stop as ``reached_loss`` once L <= loss_target (off by default), so that models can
        be compared at the same loss.
    margin_target : float, optional
        Stop as ``reached_margin`` once h_w - h_l >= margin_target (off by default), so that
        losses of different scales can be compared at the same implicit reward margin.
    stationary_tol : float, default 1e-10
        Stop as ``stationary`` once |grad_theta L| <= stationary_tol: a flow that has stopped
        moving (a loss with a finite minimiser).  0 turns it off.
    max_steps : int, default 100000
        Bound on the steps of a discrete optimiser (``timeout``).
    """

    p2_floor: float = 1e-6
    p1_target: float = 0.9
    p2_target: float = 0.1
    t_max: float = 1e4
    loss_target: float | None = None
    margin_target: float | None = None
    stationary_tol: float = 1e-10
    max_steps: int = 100_000

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "p2_floor", check_interval("p2_floor", self.p2_floor, 0.0, 1.0, closed="neither"))
        set_(self, "p1_target", check_interval("p1_target", self.p1_target, 0.0, 1.0))
        set_(self, "p2_target", check_interval("p2_target", self.p2_target, self.p2_floor, 1.0, closed="left"))
        set_(self, "t_max", check_positive("t_max", self.t_max))
        if self.loss_target is not None:
            set_(self, "loss_target", check_real("loss_target", self.loss_target))
        if self.margin_target is not None:
            set_(self, "margin_target", check_real("margin_target", self.margin_target))
        tol = check_real("stationary_tol", self.stationary_tol)
        if tol < 0:
            raise ParamError("stationary_tol", "must be a finite number >= 0", tol)
        set_(self, "stationary_tol", tol)
        set_(self, "max_steps", check_int("max_steps", self.max_steps, 1))

    def as_dict(self) -> dict[str, float]:
        """The rule's fields, the ones that are off (None) left out (as an experiment file has them)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def optional(self) -> frozenset[str]:
        """The rule's shape: the keys of :data:`OPTIONAL_STOPS` it sets (stationary_tol: when > 0).

        >>> sorted(StopRule(margin_target=4.0).optional())
        ['margin_target', 'stationary_tol']
        """
        return frozenset(
            k
            for k in OPTIONAL_STOPS
            if getattr(self, k) is not None and not (k == "stationary_tol" and self.stationary_tol == 0)
        )

    def functions(self, *, may_stall: bool = True) -> tuple[str, ...]:
        """The statuses of the function stops that are on, in order of precedence.

        ``may_stall`` False: the flow's gradient never vanishes (a chart says so), so the
        stationary stop is left off.
        """
        on = [FUNCTION_STOPS[k] for k in OPTIONAL_STOPS if k in self.optional()]
        return tuple(n for n in on if may_stall or n != "stationary")

    def functions_met(self, loss, margin, grad_norm=None, *, may_stall: bool = True) -> dict[str, np.ndarray]:
        """Which function stops a point meets: L <= loss_target, h_w - h_l >= margin_target, |grad L| <= tol.

        Parameters
        ----------
        loss, margin : array_like, shape (...)
            The loss and the margin h_w - h_l at the points.
        grad_norm : array_like or None
            |grad_theta L| there; None when it is not known (the stationary stop is then not tested).
        may_stall : bool
            As in :meth:`functions`.

        Returns
        -------
        dict
            Status -> boolean array (...), for each function stop that is on (in precedence order).
        """
        tests = {
            "reached_loss": lambda: np.asarray(loss) <= self.loss_target,
            "reached_margin": lambda: np.asarray(margin) >= self.margin_target,
            "stationary": lambda: np.asarray(grad_norm) <= self.stationary_tol,
        }
        names = [n for n in self.functions(may_stall=may_stall) if n != "stationary" or grad_norm is not None]
        return {n: tests[n]() for n in names}

    @staticmethod
    def status(met: Mapping[str, object]) -> np.ndarray:
        """The status of points that meet the stops ``met`` (status -> boolean array): the first in
        :data:`STOP_ORDER` that is met, '' where none is.  Names that are not stops (crossings) are ignored.

        >>> StopRule.status({"stationary": [True, False], "converged": [True, False]}).tolist()
        ['converged', '']
        """
        shape = np.broadcast_shapes(*(np.shape(v) for v in met.values())) if met else ()
        out = np.full(shape, "", dtype=object)
        for name in reversed(STOP_ORDER):
            if name in met:
                out[np.broadcast_to(np.asarray(met[name], dtype=bool), shape)] = name
        return out

    @staticmethod
    def earliest(when: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
        """The stop met first, given when (on any increasing clock) each stop is met: (status, clock).

        Ties go to the first in :data:`STOP_ORDER`.  Every array broadcasts to one shape (...).
        """
        names = [n for n in STOP_ORDER if n in when]
        shape = np.broadcast_shapes(*(np.shape(when[n]) for n in names))
        stacked = np.stack([np.broadcast_to(np.asarray(when[n], dtype=float), shape) for n in names])
        first = np.argmin(stacked, axis=0)
        status = np.empty(shape, dtype=object)
        status[...] = np.array(names, dtype=object)[first]
        return status, np.take_along_axis(stacked, first[None], 0)[0]


class PathTrack:
    """What a path has done so far, for rows (n,): the lowest p_w and when, the largest p_w + p_l,
    the first times p_w >= p1_target (``t_w``) and p_l <= p2_target (``t_l``), and the time spent
    sliding along a switching surface (``t_sliding``).

    Built at the starts (probabilities p0 (n, K)); an engine shows it the points it passes:
    :meth:`visit` for the extremes (every point, or the turning points a monitor finds),
    :meth:`cross` for the crossing times (an engine that finds them as events sets them itself),
    :meth:`slide` for each stretch of time it integrated a sliding mode.
    """

    def __init__(self, p0: np.ndarray, stop: StopRule) -> None:
        p0 = np.asarray(p0)
        self.p1_target, self.p2_target = stop.p1_target, stop.p2_target
        self.p_w0 = p0[..., 0].copy()
        self.p_w_min, self.t_p_w_min = self.p_w0.copy(), np.zeros(self.p_w0.shape)
        self.max_mass = p0[..., 0] + p0[..., 1]
        self.t_w = np.where(p0[..., 0] >= stop.p1_target, 0.0, math.nan)
        self.t_l = np.where(p0[..., 1] <= stop.p2_target, 0.0, math.nan)
        self.t_sliding = np.zeros(self.p_w0.shape)
        # the other response most likely at the start (K > 2), whose gain finish_rows records
        others = p0[..., 2:] if p0.shape[-1] > 2 else np.full((*self.p_w0.shape, 1), math.nan)
        self.top0 = np.argmax(others, axis=-1)
        self.p_top0 = np.take_along_axis(others, self.top0[..., None], -1)[..., 0]

    def visit(self, t, p: np.ndarray, rows=...) -> None:
        """Take points at times t (scalar or per row) with probabilities p (m, K) of ``rows`` into account."""
        p = np.asarray(p)
        lower = p[..., 0] < self.p_w_min[rows]
        if np.any(lower):  # most steps of most rows: no new minimum (a discrete run visits every step)
            self.p_w_min[rows] = np.where(lower, p[..., 0], self.p_w_min[rows])
            self.t_p_w_min[rows] = np.where(lower, t, self.t_p_w_min[rows])
        self.max_mass[rows] = np.maximum(self.max_mass[rows], p[..., 0] + p[..., 1])

    def cross(self, t, p: np.ndarray, rows=...) -> None:
        """Record the first crossings met at points (time t, probabilities p (m, K)) of ``rows``."""
        p = np.asarray(p)
        for hit, t_x in ((p[..., 0] >= self.p1_target, self.t_w), (p[..., 1] <= self.p2_target, self.t_l)):
            if np.any(hit):
                t_x[rows] = np.where(hit & np.isnan(t_x[rows]), t, t_x[rows])

    def slide(self, dt, rows=slice(None)) -> None:
        """Add a stretch of time dt (scalar or per row) that ``rows`` spent sliding along a switching surface."""
        self.t_sliding[rows] = self.t_sliding[rows] + dt

    def take(self, keep: np.ndarray) -> PathTrack:
        """The track of the rows ``keep`` (an index array)."""
        out = object.__new__(PathTrack)
        out.p1_target, out.p2_target = self.p1_target, self.p2_target
        for k in ("p_w0", "p_w_min", "t_p_w_min", "max_mass", "t_w", "t_l", "t_sliding", "top0", "p_top0"):
            setattr(out, k, getattr(self, k)[keep])
        return out


def finish_rows(
    p: np.ndarray, h: np.ndarray, t_stop, track: PathTrack, rows=..., *, rest: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The path's columns of rows that stopped at time t_stop with probabilities p (m, K), log-ratios h (m, 2).

    The stopping point is a point of the path (it enters p_w_min and max_mass).  The columns:
    ``p_w_min``, ``t_p_w_min``, ``displaced`` (p_w_min < p_w0 (1 - :data:`DISPLACED_RTOL`)),
    ``max_mass``, ``t_w``, ``t_l``, ``t_sliding`` from ``track`` (its ``rows``); ``margin_final`` = h_w - h_l;
    for K > 2 ``rest_final`` = the other responses' total probability, summed (1 - p_w - p_l
    would lose it to cancellation when p_w + p_l is near 1), ``top_other`` (index 2..K-1, as a
    float), ``p_top_other`` and ``top_other_gain`` (the start's top other's probability now minus
    then); NaN for K = 2.  A model whose other responses are not listed one
    by one (a network's every other sequence) gives their total as ``rest`` (m,) instead.
    """
    p, h = np.asarray(p), np.asarray(h)
    p_w_min, t_min, mass = track.p_w_min[rows], track.t_p_w_min[rows], track.max_mass[rows]
    lower = p[..., 0] < p_w_min
    p_w_min = np.where(lower, p[..., 0], p_w_min)
    out = {
        "p_w_min": p_w_min,
        "t_p_w_min": np.where(lower, t_stop, t_min),
        "displaced": p_w_min < track.p_w0[rows] * (1.0 - DISPLACED_RTOL),
        "max_mass": np.maximum(mass, p[..., 0] + p[..., 1]),
        "t_w": track.t_w[rows],
        "t_l": track.t_l[rows],
        "margin_final": h[..., 0] - h[..., 1],
        "t_sliding": track.t_sliding[rows],
    }
    nan = np.full(p.shape[:-1], math.nan)
    if p.shape[-1] <= 2:
        rest = nan if rest is None else rest
        return out | {"rest_final": rest, "top_other": nan, "p_top_other": nan, "top_other_gain": nan}
    others = p[..., 2:]
    top = np.argmax(others, axis=-1)
    top0 = np.broadcast_to(track.top0[rows], top.shape)
    return out | {
        "rest_final": np.sum(others, axis=-1),
        "top_other": top + 2.0,
        "p_top_other": np.take_along_axis(others, top[..., None], -1)[..., 0],
        "top_other_gain": np.take_along_axis(others, top0[..., None], -1)[..., 0] - track.p_top0[rows],
    }


@dataclass(frozen=True)
class FlowResult:
    """The record of one flow.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`.
    t_stop : float
        Time at which the flow stopped (t_max for ``timeout``; 0 where the initial
        condition already meets a stop criterion).
    x1_final, x2_final, p1_final, p2_final : float
        The stopping point in ratios and in probabilities.
    loss_final : float
        The loss there.
    t_w, t_l : float
        First time p1 >= p1_target and first time p2 <= p2_target: 0 where the initial
        condition already satisfies it, NaN where it is not reached before the stop.
    nfev : int
        Right-hand-side evaluations (0 for the closed form).
    message : str
        The solver's message when ``failed``; "stiff: ..." when the flow was integrated again
        with LSODA (:class:`~flowsim.dynamics.driver.SolverOptions` ``max_nfev``); else ''.
    p_w_min, t_p_w_min, displaced, max_mass, margin_final, rest_final, top_other, p_top_other, steps
        What the path did (see :data:`PATH_FIELDS`); NaN where it does not apply.
    t_sliding, top_other_gain
        What the path did (see :data:`PATH_FIELDS`); NaN where it does not apply.
    path_t, path_x : numpy.ndarray or None
        On request, times (n,) and parameters (n, d) along the path, for plots.
    """

    status: str
    t_stop: float
    x1_final: float
    x2_final: float
    p1_final: float
    p2_final: float
    loss_final: float
    t_w: float
    t_l: float
    nfev: int
    message: str = ""
    p_w_min: float = math.nan
    t_p_w_min: float = math.nan
    displaced: object = math.nan
    max_mass: float = math.nan
    margin_final: float = math.nan
    rest_final: float = math.nan
    top_other: float = math.nan
    p_top_other: float = math.nan
    steps: float = math.nan
    t_sliding: float = math.nan
    top_other_gain: float = math.nan
    path_t: np.ndarray | None = field(default=None, repr=False, compare=False)
    path_x: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        """The fields of :data:`RESULT_FIELDS` and :data:`PATH_FIELDS` by name (no path)."""
        d = asdict(self)
        return {k: d[k] for k in (*RESULT_FIELDS, *PATH_FIELDS)}

    @classmethod
    def failed(cls, message: str, nfev: int = 0) -> FlowResult:
        """A record for a flow that could not be computed."""
        nan = math.nan
        return cls("failed", nan, nan, nan, nan, nan, nan, nan, nan, nfev, message)
