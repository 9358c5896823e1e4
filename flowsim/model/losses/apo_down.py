"""APO-down (D'Oosterlinck et al. 2024, eq. 8; TRL's ``loss_type="apo_down"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; v0.28.0 writes
``chosen_logratios - rejected_logratios`` for ``delta_score``)::

    losses_chosen = torch.sigmoid(self.beta * chosen_logratios)
    losses_rejected = 1 - torch.sigmoid(self.beta * delta_score)
    per_sequence_loss = losses_chosen + losses_rejected

With x_w = beta h_w, m = beta (h_w - h_l) (computing 1 - sigmoid(m) as sigmoid(-m)),
b(x) = sigmoid(x) sigmoid(-x) and k(x) = b'(x) = b(x) (sigmoid(-x) - sigmoid(x)):

    L        = sigmoid(x_w) + sigmoid(-m)
    dL/dh    = beta (b(x_w) - b(m), b(m))
    d2L/dh2  = beta^2 [[k(x_w) - k(m), k(m)], [k(m), -k(m)]]      (analytic)

Smooth, bounded (0 < L < 2), no finite minimiser: dL/dh_l = beta b(m) > 0 everywhere, so
h_l decreases without bound (and h_w with it, more slowly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from flowsim._validation import check_beta
from flowsim.model.losses.apo_zero import _bump
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class APODown(Loss):
    """sigmoid(beta h_w) + 1 - sigmoid(beta (h_w - h_l)).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.

    Examples
    --------
    >>> APODown().grad([0.0, 0.0]).tolist()
    [0.0, 0.025]
    """

    kind: ClassVar[str] = "apo_down"
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def _args(self, h):
        h = np.asarray(h, dtype=float)
        return self.beta * h[..., 0], self.beta * (h[..., 0] - h[..., 1])

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            xw, m = self._args(h)
            return expit(xw) + expit(-m)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            xw, m = self._args(h)
            bw, _ = _bump(xw)
            bm, _ = _bump(m)
            return self.beta * np.stack([bw - bm, bm], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            xw, m = self._args(h)
            _, kw = _bump(xw)
            _, km = _bump(m)
            b2 = self.beta**2
            H = np.empty((*np.shape(m), 2, 2))
            H[..., 0, 0] = b2 * (kw - km)
            H[..., 0, 1] = H[..., 1, 0] = b2 * km
            H[..., 1, 1] = -b2 * km
            return H
