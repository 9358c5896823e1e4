"""DiscoPOP, the log-ratio modulated loss (Chan et al. 2024, eq. 5; TRL's ``loss_type="discopop"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; the same in v0.28.0)::

    logits = delta_score * self.beta
    log_ratio_modulation = torch.sigmoid(logits / self.args.discopop_tau)
    logistic_component = -F.logsigmoid(logits)
    exp_component = torch.exp(-logits)
    per_sequence_loss = logistic_component * (1 - log_ratio_modulation) + exp_component * log_ratio_modulation

With m = beta (h_w - h_l), w = sigmoid(m / tau), A = softplus(-m), E = exp(-m) w:

    L        = A (1 - w) + E
    dL/dm    = -sigmoid(-m) (1 - w) - E + (E - A w) (1 - w) / tau
    dL/dh    = beta dL/dm (1, -1)

E is computed as exp(-m + log sigmoid(m / tau)), whose exponent is <= 0 for tau <= 1, so
nothing overflows at any margin (TRL's exp(-logits) alone would, for m < -709); hence
``discopop_tau`` in (0, 1] (the paper's value 0.05 is TRL's default).  The Hessian is the
base class's central difference of the gradient.

Smooth but not monotone: for tau up to about 0.1 the switch from the logistic (log 2 at
m = 0) to the exponential (1 at m = 0) component makes L rise across m = 0.  At tau = 0.05 it
has a local minimum at m = -0.118570 (h_w - h_l = -1.18570 at beta = 0.1) and a local maximum
at m = 0.072006 (h_w - h_l = 0.72006); dL/dm > 0 at m = 0, so a flow from the reference
(h = 0) settles at the local minimum, with the rejected response ahead.  Beyond the maximum
L decreases to 0 as m -> infinity.  For tau >= 0.11 dL/dm < 0 everywhere (no finite
minimiser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class DiscoPOP(Loss):
    """softplus(-m) (1 - sigmoid(m/tau)) + exp(-m) sigmoid(m/tau), m = beta (h_w - h_l).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.
    discopop_tau : float, default 0.05
        TRL's ``discopop_tau``, the modulation's temperature, in (0, 1].

    Examples
    --------
    >>> float(DiscoPOP().value([0.0, 0.0]))  # (log 2 + 1) / 2
    0.8465735902799727
    """

    kind: ClassVar[str] = "discopop"
    reads_margin_only: ClassVar[bool] = True
    #: Narrower than other losses': below 0.01 the integrator gives up near the local minimum
    #: (m = -1.186 sits at h_w - h_l = -1.186 / beta; measured; docs: Accuracy, "The range of β").
    beta_range: ClassVar[tuple[float, float]] = (0.01, 10.0)
    beta: float = 0.1
    discopop_tau: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        object.__setattr__(self, "discopop_tau", check_interval("discopop_tau", self.discopop_tau, 0.0, 1.0))

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w - h_l), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def _parts(self, m):
        tau = self.discopop_tau
        with np.errstate(under="ignore"):
            return -log_expit(m), expit(m / tau), expit(-m / tau), np.exp(-m + log_expit(m / tau))

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            a, _, one_minus_w, e = self._parts(self.margin(h))
            return a * one_minus_w + e

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m = self.margin(h)
            a, w, one_minus_w, e = self._parts(m)
            dm = -expit(-m) * one_minus_w - e + (e - a * w) * one_minus_w / self.discopop_tau
            g = self.beta * dm
            return np.stack([g, -g], axis=-1)
