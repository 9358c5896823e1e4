"""Pairwise BCO (Jung et al. 2024; TRL's ``loss_type="bco_pair"``).

Source: trl/trainer/dpo_trainer.py at v0.28.0 (``dpo_loss``)::

    chosen_rewards = self.beta * chosen_logratios
    rejected_rewards = self.beta * rejected_logratios
    rewards = torch.cat((chosen_rewards, rejected_rewards), 0).mean().detach()
    self.running.update(rewards)
    delta = self.running.mean
    losses = -F.logsigmoid((self.beta * chosen_logratios) - delta) - F.logsigmoid(
        -(self.beta * rejected_logratios - delta)
    )

TRL v1.9.0 (``_compute_loss``) dropped the running mean:
``per_sequence_loss = -F.logsigmoid(chosen_rewards) - F.logsigmoid(-rejected_rewards)``.
Here ``delta`` is a fixed parameter (default 0, which is v1.9.0's loss): TRL's delta is a
detached running mean of the batch rewards, state of the training run that a loss of one
pair cannot carry.  With r = beta h - delta:

    L        = softplus(-r_w) + softplus(r_l)
    dL/dh    = beta (-sigmoid(-r_w), sigmoid(r_l))
    d2L/dh2  = beta^2 diag(sigmoid(r_w) sigmoid(-r_w), sigmoid(r_l) sigmoid(-r_l))   (analytic)

Smooth, no finite minimiser (h_w -> +infinity, h_l -> -infinity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_real
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class BCOPair(Loss):
    """-log sigmoid(beta h_w - delta) - log sigmoid(-(beta h_l - delta)).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.
    delta : float, default 0.0
        TRL's reward shift (there a running mean of beta h over the batches), held fixed; any finite number.

    Examples
    --------
    >>> BCOPair().grad([0.0, 0.0]).tolist()
    [-0.05, 0.05]
    """

    kind: ClassVar[str] = "bco_pair"
    beta: float = 0.1
    delta: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        object.__setattr__(self, "delta", check_real("delta", self.delta))

    def _shifted(self, h):
        h = np.asarray(h, dtype=float)
        return self.beta * h[..., 0] - self.delta, self.beta * h[..., 1] - self.delta

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._shifted(h)
            return -log_expit(rw) - log_expit(-rl)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._shifted(h)
            return self.beta * np.stack([-expit(-rw), expit(rl)], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            rw, rl = self._shifted(h)
            H = np.zeros((*np.shape(rw), 2, 2))
            H[..., 0, 0] = self.beta**2 * expit(rw) * expit(-rw)
            H[..., 1, 1] = self.beta**2 * expit(rl) * expit(-rl)
            return H
