"""APO-zero (D'Oosterlinck et al. 2024, eq. 7; TRL's ``loss_type="apo_zero"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; the same in v0.28.0)::

    losses_chosen = 1 - torch.sigmoid(self.beta * chosen_logratios)
    losses_rejected = torch.sigmoid(self.beta * rejected_logratios)
    per_sequence_loss = losses_chosen + losses_rejected

With x = beta h (computing 1 - sigmoid(x_w) as sigmoid(-x_w), the same number without
TRL's cancellation) and k(x) = d/dx[sigmoid(x) sigmoid(-x)] = sigmoid(x) sigmoid(-x) (sigmoid(-x) - sigmoid(x)):

    L        = sigmoid(-x_w) + sigmoid(x_l)
    dL/dh    = beta (-sigmoid(x_w) sigmoid(-x_w), sigmoid(x_l) sigmoid(-x_l))
    d2L/dh2  = beta^2 diag(-k(x_w), k(x_l))       (analytic)

Smooth, bounded (0 < L < 2), no finite minimiser (h_w -> +infinity, h_l -> -infinity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


def _bump(x):
    """sigmoid(x) sigmoid(-x) and its derivative sigmoid(x) sigmoid(-x) (sigmoid(-x) - sigmoid(x))."""
    with np.errstate(under="ignore"):
        p, q = expit(x), expit(-x)
        b = p * q
        return b, b * (q - p)


@dataclass(frozen=True)
class APOZero(Loss):
    """1 - sigmoid(beta h_w) + sigmoid(beta h_l).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.

    Examples
    --------
    >>> APOZero().grad([0.0, 0.0]).tolist()
    [-0.025, 0.025]
    """

    kind: ClassVar[str] = "apo_zero"
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            h = np.asarray(h, dtype=float)
            return expit(-self.beta * h[..., 0]) + expit(self.beta * h[..., 1])

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            h = np.asarray(h, dtype=float)
            bw, _ = _bump(self.beta * h[..., 0])
            bl, _ = _bump(self.beta * h[..., 1])
            return self.beta * np.stack([-bw, bl], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            h = np.asarray(h, dtype=float)
            _, kw = _bump(self.beta * h[..., 0])
            _, kl = _bump(self.beta * h[..., 1])
            H = np.zeros((*np.shape(kw), 2, 2))
            H[..., 0, 0] = -(self.beta**2) * kw
            H[..., 1, 1] = self.beta**2 * kl
            return H
