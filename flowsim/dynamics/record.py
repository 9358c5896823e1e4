"""What one flow records, and the rule that stops it.

Both the integrator (:mod:`flowsim.dynamics.driver`) and the closed forms (:mod:`flowsim.dynamics.closed_forms`) take a
:class:`StopRule` and return the fields in :data:`RESULT_FIELDS`, so the two can be
compared column by column and either can feed a sweep.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from flowsim._validation import check_interval, check_positive

#: Why a flow stopped.  ``converged``: p2 <= p2_floor (the dispreferred response is
#: unlearned); ``capped``: p1 >= 1 (the preferred response has all the probability);
#: ``timeout``: t reached t_max first; ``failed``: the solver failed (see ``message``).
STATUSES: tuple[str, ...] = ("converged", "capped", "timeout", "failed")

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
    """

    p2_floor: float = 1e-6
    p1_target: float = 0.9
    p2_target: float = 0.1
    t_max: float = 1e4

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "p2_floor", check_interval("p2_floor", self.p2_floor, 0.0, 1.0, closed="neither"))
        set_(self, "p1_target", check_interval("p1_target", self.p1_target, 0.0, 1.0))
        set_(self, "p2_target", check_interval("p2_target", self.p2_target, self.p2_floor, 1.0, closed="left"))
        set_(self, "t_max", check_positive("t_max", self.t_max))


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
        The solver's message ('' unless ``failed``).
    path_t, path_x : numpy.ndarray or None
        On request, times (n,) and points (n, 2) along the path, for plots.
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
    path_t: np.ndarray | None = field(default=None, repr=False, compare=False)
    path_x: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, object]:
        """The fields of :data:`RESULT_FIELDS` by name (no path)."""
        d = asdict(self)
        return {k: d[k] for k in RESULT_FIELDS}

    @classmethod
    def failed(cls, message: str, nfev: int = 0) -> FlowResult:
        """A record for a flow that could not be computed."""
        nan = math.nan
        return cls("failed", nan, nan, nan, nan, nan, nan, nan, nan, nfev, message)
