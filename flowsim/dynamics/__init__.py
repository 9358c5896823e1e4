"""HOW it moves: stop rules and events, the result record, the solve_ivp driver, charts
and closed forms declared per (loss, parameterisation) pair, discrete optimisers, and the
engines that compute rows with them (:mod:`flowsim.dynamics.engines`).
"""

from flowsim.dynamics.closed_forms import CLOSED_FORMS, closed_form
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.events import Threshold, thresholds
from flowsim.dynamics.record import RESULT_FIELDS, STATUSES, FlowResult, StopRule

__all__ = [
    "CLOSED_FORMS",
    "RESULT_FIELDS",
    "STATUSES",
    "FlowResult",
    "SolverOptions",
    "StopRule",
    "Threshold",
    "closed_form",
    "exact_dpo",
    "integrate",
    "thresholds",
]
