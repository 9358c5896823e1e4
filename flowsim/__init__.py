"""flowsim: what preference-optimisation losses do under gradient flow, measured.

>>> from flowsim import DPO, integrate, exact_dpo
>>> r = integrate(DPO(beta=0.1), [0.5, 0.5])
>>> r.status
'converged'
"""

from flowsim.exact import exact_dpo, exact_flow
from flowsim.flow import SolverOptions, integrate
from flowsim.losses import DPO, LOSSES, Loss, make_loss
from flowsim.records import FlowResult, StopRule

__version__ = "0.1.0"
__all__ = ["DPO", "LOSSES", "FlowResult", "Loss", "SolverOptions", "StopRule", "exact_dpo", "exact_flow",
           "integrate", "make_loss"]  # fmt: skip
