"""What one flow records, and the rule that stops it.

The integrator (:mod:`flowsim.dynamics.driver`), the closed forms
(:mod:`flowsim.dynamics.closed_forms`) and the discrete optimisers
(:mod:`flowsim.dynamics.optimisers`) all take a :class:`StopRule` and return the fields in
:data:`RESULT_FIELDS` and :data:`PATH_FIELDS`, so any two can be compared column by column
and any of them can feed a sweep.
"""

from __future__ import annotations

import math
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
    "converged", "capped", "reached_loss", "reached_margin", "stationary", "timeout", "diverged", "failed",
)  # fmt: skip

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
#: number of discrete steps taken (discrete optimisers only).
PATH_FIELDS: tuple[str, ...] = (
    "p_w_min", "t_p_w_min", "displaced", "max_mass", "margin_final", "rest_final", "top_other", "p_top_other",
    "steps",
)  # fmt: skip


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
