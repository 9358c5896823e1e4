"""WHAT flows: a preference loss composed with a policy parameterisation.

* :mod:`flowsim.model.losses` -- preference losses as functions of the two log-ratios
  h = (log pi(y_w)/ref(y_w), log pi(y_l)/ref(y_l)); one file each, a registry.
* :mod:`flowsim.model.parameterisations` -- maps from parameters theta in R^d to the
  responses' log-probabilities (the ratio plane, softmax logits, log-linear features),
  bound to a start and a reference as a :class:`~flowsim.model.parameterisations.Policy`.
* :mod:`flowsim.model.objective` -- L(theta) = loss(h(theta)), value and gradient,
  vectorised over (..., d).
"""

from flowsim.model.losses import LOSSES, Loss, make_loss
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import PARAMETERISATIONS, Parameterisation, Policy, make_parameterisation

__all__ = [
    "LOSSES",
    "PARAMETERISATIONS",
    "Loss",
    "Objective",
    "Parameterisation",
    "Policy",
    "make_loss",
    "make_parameterisation",
]
