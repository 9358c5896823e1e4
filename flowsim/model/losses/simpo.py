"""SimPO (Meng et al. 2024; TRL's ``CPOTrainer`` with ``loss_type="simpo"``), reference-free.

Source: trl/trainer/cpo_trainer.py (TRL v0.25.1; trl/experimental/cpo/cpo_trainer.py from
v0.26 on, the same code), ``cpo_loss`` with ``alpha = 0`` (no AlphaPO reward transform)::

    logits = (policy_chosen_logps - policy_rejected_logps)
    gamma_logratios = self.simpo_gamma / self.beta
    logits = logits - gamma_logratios
    losses = (
        -F.logsigmoid(self.beta * logits) * (1 - self.label_smoothing)
        - F.logsigmoid(-self.beta * logits) * self.label_smoothing
    )

and ``get_batch_loss_metrics``: ``loss = losses.mean() + self.cpo_alpha * policy_nll_loss``.
The log-probabilities are per-token averages (``average_log_prob`` for "simpo"), i.e. for
one-token responses log pi_theta(y) = h + log_ref, and the NLL is -log pi_theta(y_w).  With
z = beta (log pi_theta(y_w) - log pi_theta(y_l)) - gamma and eps = label_smoothing:

    L        = (1 - eps) softplus(-z) + eps softplus(z) - cpo_alpha log pi_theta(y_w)
    dL/dh    = beta (eps sigmoid(z) - (1 - eps) sigmoid(-z)) (1, -1) + (-cpo_alpha, 0)
    d2L/dh2  = beta^2 sigmoid(z) sigmoid(-z) [[1, -1], [-1, 1]]        (analytic)

Defaults are CPOConfig's (beta = 0.1, simpo_gamma = 0.5, label_smoothing = 0), except
``cpo_alpha``: CPOConfig's 1.0 makes "CPO-SimPO"; SimPO proper (and TRL's ``loss_type="alphapo"``
sugar, which sets it) has cpo_alpha = 0, the default here.  Smooth.  With eps > 0 and
cpo_alpha = 0 it is minimised on the line z = log((1 - eps)/eps); with eps = 0 it has no finite
minimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class SimPO(Loss):
    """-log sigmoid(beta (log pi(y_w) - log pi(y_l)) - gamma), cDPO-smoothed, plus cpo_alpha * NLL(y_w).

    Parameters
    ----------
    beta : float, default 0.1
        CPOConfig's ``beta``, > 0.
    simpo_gamma : float, default 0.5
        CPOConfig's ``simpo_gamma``, the target reward margin, >= 0.
    label_smoothing : float, default 0.0
        CPOConfig's ``label_smoothing``, in [0, 0.5).
    cpo_alpha : float, default 0.0
        CPOConfig's ``cpo_alpha`` (NLL weight; TRL's default 1.0 is CPO-SimPO), >= 0.

    Examples
    --------
    >>> float(SimPO().value([0.0, 0.0], [-1.0, -1.0]))  # softplus(0.5)
    0.9740769841801067
    """

    kind: ClassVar[str] = "simpo"
    uses_log_probs: ClassVar[bool] = True
    beta: float = 0.1
    simpo_gamma: float = 0.5
    label_smoothing: float = 0.0
    cpo_alpha: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        gamma = check_interval("simpo_gamma", self.simpo_gamma, 0.0, np.inf, closed="left")
        object.__setattr__(self, "simpo_gamma", gamma)
        eps = check_interval("label_smoothing", self.label_smoothing, 0.0, 0.5, closed="left")
        object.__setattr__(self, "label_smoothing", eps)
        object.__setattr__(self, "cpo_alpha", check_interval("cpo_alpha", self.cpo_alpha, 0.0, np.inf, closed="left"))

    def margin_only(self) -> bool:
        """The margin of log-probabilities alone, unless CPO's NLL term on y_w is added."""
        return self.cpo_alpha == 0.0

    def _z(self, h, log_ref):
        lp = np.asarray(h, dtype=float) + log_ref
        return self.beta * (lp[..., 0] - lp[..., 1]) - self.simpo_gamma, lp[..., 0]

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            z, lpw = self._z(h, log_ref)
            eps = self.label_smoothing
            return -(1 - eps) * log_expit(z) - eps * log_expit(-z) - self.cpo_alpha * lpw

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            z, _ = self._z(h, log_ref)
            eps = self.label_smoothing
            g = self.beta * (eps * expit(z) - (1 - eps) * expit(-z))
            return np.stack([g - self.cpo_alpha, -g], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            z, _ = self._z(h, log_ref)
            c = self.beta**2 * expit(z) * expit(-z)
            return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
