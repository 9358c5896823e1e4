"""SPPO with hard labels (Wu et al. 2024; TRL's ``loss_type="sppo_hard"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; the same in v0.28.0
``dpo_loss`` with a = chosen_logps - ref_chosen_logps, b = rejected_logps - ref_rejected_logps)::

    winner_margin_error = (chosen_scores - 0.5 / self.beta) ** 2
    loser_margin_error = (rejected_scores + 0.5 / self.beta) ** 2
    per_sequence_loss = winner_margin_error + loser_margin_error

With reverse-KL scores (the log-ratios):

    L        = (h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2
    dL/dh    = 2 (h_w - 1/(2 beta), h_l + 1/(2 beta))
    d2L/dh2  = 2 I                            (analytic)

Smooth, with the unique minimiser h = (1/(2 beta), -1/(2 beta)) = (5, -5) at beta = 0.1,
i.e. margin h_w - h_l = 1/beta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class SPPOHard(Loss):
    """(h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2.

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0: the targets are h_w = 1/(2 beta), h_l = -1/(2 beta).

    Examples
    --------
    >>> SPPOHard().grad([5.0, -5.0]).tolist()
    [0.0, 0.0]
    """

    kind: ClassVar[str] = "sppo_hard"
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def _errors(self, h):
        h = np.asarray(h, dtype=float)
        return h[..., 0] - 0.5 / self.beta, h[..., 1] + 0.5 / self.beta

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            ew, el = self._errors(h)
            return ew**2 + el**2

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            ew, el = self._errors(h)
            return np.stack([2.0 * ew, 2.0 * el], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return np.broadcast_to(2.0 * np.eye(2), (*np.shape(h)[:-1], 2, 2)).copy()
