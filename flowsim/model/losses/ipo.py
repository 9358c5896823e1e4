"""IPO (Azar et al. 2023, eq. 17; TRL's ``loss_type="ipo"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``)::

    chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_mask.sum(dim=1).clamp(min=1.0)
    ipo_delta = chosen_avg_score - rejected_avg_score
    per_sequence_loss = (ipo_delta - 1 / (2 * self.beta)) ** 2

With one-token responses the per-token averages are the log-ratios themselves (reverse KL
scores), so with d = h_w - h_l:

    L        = (d - 1/(2 beta))^2
    dL/dh    = 2 (d - 1/(2 beta)) (1, -1)
    d2L/dh2  = 2 [[1, -1], [-1, 1]]          (analytic)

Smooth; minimised (L = 0, dL/dh = 0) on the whole line h_w - h_l = 1/(2 beta) (5 at the
default beta = 0.1, TRL's ``beta`` being IPO's tau).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class IPO(Loss):
    """(h_w - h_l - 1/(2 beta))^2.

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta`` (IPO's regularisation tau), > 0.

    Examples
    --------
    >>> IPO().grad([5.0, 0.0]).tolist()
    [0.0, -0.0]
    """

    kind: ClassVar[str] = "ipo"
    reads_margin_only: ClassVar[bool] = True
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def residual(self, h: np.ndarray) -> np.ndarray:
        """(h_w - h_l) - 1/(2 beta), shape (...)."""
        h = np.asarray(h, dtype=float)
        return (h[..., 0] - h[..., 1]) - 1 / (2 * self.beta)

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return self.residual(h) ** 2

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            r = 2.0 * self.residual(h)
            return np.stack([r, -r], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return np.broadcast_to(2.0 * np.array([[1.0, -1.0], [-1.0, 1.0]]), (*np.shape(h)[:-1], 2, 2)).copy()
