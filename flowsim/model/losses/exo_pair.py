"""Pairwise EXO (Ji et al. 2024, eq. 16; TRL's ``loss_type="exo_pair"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``)::

    epsilon = torch.tensor(self.label_smoothing, device=device)
    qw = torch.sigmoid(self.beta * delta_score)
    log_qw = F.logsigmoid(self.beta * delta_score)
    log_pw = torch.log1p(-epsilon)
    ql = torch.sigmoid(-self.beta * delta_score)
    log_ql = F.logsigmoid(-self.beta * delta_score)
    log_pl = torch.log(epsilon)
    per_sequence_loss = qw * (log_qw - log_pw) + ql * (log_ql - log_pl)

i.e. KL(q || p) between q = (sigmoid(m), sigmoid(-m)), m = beta (h_w - h_l), and the
smoothed labels p = (1 - eps, eps).  Since log q_w - log q_l = m, with c = log((1 - eps)/eps):

    L        = q_w (log q_w - log(1 - eps)) + q_l (log q_l - log eps)
    dL/dm    = q_w q_l (m - c)
    d2L/dm2  = q_w q_l ((q_l - q_w)(m - c) + 1)
    dL/dh    = beta dL/dm (1, -1),  d2L/dh2 = beta^2 d2L/dm2 [[1, -1], [-1, 1]]   (analytic)

Smooth, minimised (L = 0) on the line m = c, i.e. h_w - h_l = log((1 - eps)/eps) / beta
(log(999)/0.1 = 69.07... at the defaults).

``label_smoothing`` must be > 0: TRL >= 0.29 raises "Label smoothing must be greater than
0.0 when using 'exo_pair' loss. The EXO paper recommends a value of 1e-3", and TRL < 0.29
silently replaced 0 by 1e-3.  So the default here is 1e-3, not DPOConfig's 0.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class ExoPair(Loss):
    """KL((sigmoid(m), sigmoid(-m)) || (1 - eps, eps)) at m = beta (h_w - h_l).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta``, > 0.
    label_smoothing : float, default 1e-3
        EXO's eps, in (0, 0.5) (TRL needs it > 0; the paper recommends 1e-3).

    Examples
    --------
    >>> loss = ExoPair()
    >>> bool(abs(loss.grad([loss.optimal_margin() / loss.beta, 0.0])[0]) < 1e-16)
    True
    """

    kind: ClassVar[str] = "exo_pair"
    reads_margin_only: ClassVar[bool] = True
    beta: float = 0.1
    label_smoothing: float = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        eps = check_interval("label_smoothing", self.label_smoothing, 0.0, 0.5, closed="neither")
        object.__setattr__(self, "label_smoothing", eps)

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w - h_l), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def optimal_margin(self) -> float:
        """c = log((1 - eps)/eps), the margin m where the loss vanishes."""
        return math.log1p(-self.label_smoothing) - math.log(self.label_smoothing)

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m, eps = self.margin(h), self.label_smoothing
            return expit(m) * (log_expit(m) - math.log1p(-eps)) + expit(-m) * (log_expit(-m) - math.log(eps))

    def _dm(self, m):
        return expit(m) * expit(-m) * (m - self.optimal_margin())

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            g = self.beta * self._dm(self.margin(h))
            return np.stack([g, -g], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m = self.margin(h)
            qw, ql = expit(m), expit(-m)
            c = self.beta**2 * qw * ql * ((ql - qw) * (m - self.optimal_margin()) + 1.0)
            return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
