"""Length-normalised DPO (TRL's ``loss_type="sigmoid_norm"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``)::

    chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)
    rejected_avg_score = rejected_scores / rejected_mask.sum(dim=1).clamp(min=1.0)
    delta = chosen_avg_score - rejected_avg_score
    per_sequence_loss = -F.logsigmoid(self.beta * delta)

With one-token responses both masks sum to 1, so this is DPO's value on the same h: with
m = beta (h_w - h_l) and s = sigmoid(-m),

    L = softplus(-m),  dL/dh = beta s (-1, 1),  d2L/dh2 = beta^2 s (1 - s) [[1, -1], [-1, 1]]   (analytic)

It is kept as its own kind so that sweeps name TRL's loss; it reads no label smoothing
(TRL's does not).  Smooth, no finite minimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class SigmoidNorm(Loss):
    """-log sigmoid(beta (h_w / |y_w| - h_l / |y_l|)) with |y| = 1 token.

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.

    Examples
    --------
    >>> SigmoidNorm().grad([0.0, 0.0]).tolist()
    [-0.05, 0.05]
    """

    kind: ClassVar[str] = "sigmoid_norm"
    reads_margin_only: ClassVar[bool] = True
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w / 1 - h_l / 1), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return -log_expit(self.margin(h))

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            bs = self.beta * expit(-self.margin(h))
            return np.stack([-bs, bs], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m = self.margin(h)
            c = self.beta**2 * expit(-m) * expit(m)
            return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
