"""Pairwise NCA (Chen et al. 2024; TRL's ``loss_type="nca_pair"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; the same in v0.28.0)::

    chosen_rewards = self.beta * chosen_scores
    rejected_rewards = self.beta * rejected_scores
    per_sequence_loss = (
        -F.logsigmoid(chosen_rewards)
        - 0.5 * F.logsigmoid(-chosen_rewards)
        - 0.5 * F.logsigmoid(-rejected_rewards)
    )

With r = beta h (reverse-KL scores are the log-ratios):

    L        = softplus(-r_w) + softplus(r_w)/2 + softplus(r_l)/2
    dL/dh    = beta (sigmoid(r_w)/2 - sigmoid(-r_w), sigmoid(r_l)/2)
    d2L/dh2  = beta^2 diag(3/2 sigmoid(r_w) sigmoid(-r_w), 1/2 sigmoid(r_l) sigmoid(-r_l))   (analytic)

Smooth, no finite minimiser: dL/dh_w vanishes at r_w = log 2 (h_w = log(2)/beta), but
dL/dh_l > 0 everywhere, so h_l decreases without bound (L -> softplus(-log 2) + softplus(log 2)/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class NCAPair(Loss):
    """-log sigmoid(beta h_w) - log sigmoid(-beta h_w)/2 - log sigmoid(-beta h_l)/2.

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.

    Examples
    --------
    >>> NCAPair().grad([0.0, 0.0]).tolist()
    [-0.025, 0.025]
    """

    kind: ClassVar[str] = "nca_pair"
    #: Narrower than other losses': from beta = 3 some ratio-plane flows (reference = start) are
    #: stiff and LSODA's event location fails on them (measured; docs: Accuracy, "The range of β").
    beta_range: ClassVar[tuple[float, float]] = (1e-6, 2.0)
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def _rewards(self, h):
        h = np.asarray(h, dtype=float)
        return self.beta * h[..., 0], self.beta * h[..., 1]

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._rewards(h)
            return -log_expit(rw) - 0.5 * log_expit(-rw) - 0.5 * log_expit(-rl)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._rewards(h)
            return self.beta * np.stack([0.5 * expit(rw) - expit(-rw), 0.5 * expit(rl)], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._rewards(h)
            H = np.zeros((*np.shape(rw), 2, 2))
            H[..., 0, 0] = self.beta**2 * 1.5 * expit(rw) * expit(-rw)
            H[..., 1, 1] = self.beta**2 * 0.5 * expit(rl) * expit(-rl)
            return H
