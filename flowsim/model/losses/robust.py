"""Robust DPO (Chowdhury et al. 2024; TRL's ``loss_type="robust"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``)::

    clean_loss_term = -(1 - self.label_smoothing) * F.logsigmoid(self.beta * delta_score)
    flipped_loss_term = -self.label_smoothing * F.logsigmoid(-self.beta * delta_score)
    per_sequence_loss = (clean_loss_term - flipped_loss_term) / (1 - 2 * self.label_smoothing)

(v0.28.0 ``dpo_loss`` writes the same expression in one line.)  With m = beta (h_w - h_l)
and flip probability eps:

    L        = ((1 - eps) softplus(-m) - eps softplus(m)) / (1 - 2 eps)
    dL/dm    = -((1 - eps) sigmoid(-m) + eps sigmoid(m)) / (1 - 2 eps)
    d2L/dm2  = sigmoid(m) sigmoid(-m)                     (the eps-terms cancel)
    dL/dh    = beta dL/dm (1, -1),  d2L/dh2 = beta^2 d2L/dm2 [[1, -1], [-1, 1]]   (analytic)

dL/dm lies strictly between -(1 - eps)/(1 - 2 eps) and -eps/(1 - 2 eps) < 0: the loss has no
finite minimiser, and for eps > 0 it is unbounded below (L ~ -eps m / (1 - 2 eps) as
m -> infinity), the margin's drift never dying out.  At eps = 0 it is DPO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class Robust(Loss):
    """((1 - eps) softplus(-m) - eps softplus(m)) / (1 - 2 eps), m = beta (h_w - h_l).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.
    label_smoothing : float, default 0.0
        The label-flip probability eps, in [0, 0.5) (TRL's rule; the paper suggests 0.1).

    Examples
    --------
    >>> Robust(label_smoothing=0.1).grad([0.0, 0.0]).tolist()
    [-0.0625, 0.0625]
    """

    kind: ClassVar[str] = "robust"
    reads_margin_only: ClassVar[bool] = True
    beta: float = 0.1
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        eps = check_interval("label_smoothing", self.label_smoothing, 0.0, 0.5, closed="left")
        object.__setattr__(self, "label_smoothing", eps)

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w - h_l), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m, eps = self.margin(h), self.label_smoothing
            return (-(1 - eps) * log_expit(m) + eps * log_expit(-m)) / (1 - 2 * eps)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m, eps = self.margin(h), self.label_smoothing
            g = -self.beta * ((1 - eps) * expit(-m) + eps * expit(m)) / (1 - 2 * eps)
            return np.stack([g, -g], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m = self.margin(h)
            c = self.beta**2 * expit(m) * expit(-m)
            return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
