"""DPO (the seed paper's equation 1; TRL's ``loss_type="sigmoid"``).

With the margin m = beta (h_w - h_l) and s = sigmoid(-m):

    L        = -log sigmoid(m) = softplus(-m)
    dL/dh    = beta s (-1, +1)
    d2L/dh2  = beta^2 s (1 - s) [[1, -1], [-1, 1]]

In the paper's ratio plane (h = log x) this is L = -log(x1^b / (x1^b + x2^b)) with
dL/dx1 = -b s / x1 and dL/dx2 = b s / x2 (its Theorem 1).  Everything goes through the
margin (``np.logaddexp``, ``scipy.special.expit``), so every h gives finite values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from flowsim._validation import check_positive
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class DPO(Loss):
    """The DPO loss softplus(-beta (h_w - h_l)).

    Parameters
    ----------
    beta : float, default 0.1
        Inverse temperature, > 0.  The paper's footnote 3 gives 0.1-0.5 as usual.

    Examples
    --------
    >>> loss = DPO(beta=0.1)
    >>> float(loss.value([0.0, 0.0]))  # log 2 where h_w = h_l
    0.6931471805599453
    >>> loss.grad([0.0, 0.0]).tolist()
    [-0.05, 0.05]
    """

    kind: ClassVar[str] = "dpo"
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_positive("beta", self.beta))

    def margin(self, h: np.ndarray) -> np.ndarray:
        """The DPO margin beta (h_w - h_l), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def value(self, h, log_ref=0.0):
        return np.logaddexp(0.0, -self.margin(h))

    def grad(self, h, log_ref=0.0):
        bs = self.beta * expit(-self.margin(h))
        return np.stack([-bs, bs], axis=-1)

    def hessian(self, h, log_ref=0.0):
        m = self.margin(h)
        c = self.beta**2 * expit(-m) * expit(m)  # s (1 - s), each factor without cancellation
        return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])

    def log_hessian(self, h, log_ref=0.0):
        """H - diag(dL/dh) without cancellation (plain DPO): with s = sigmoid(-m), b = beta,

        [0, 0] = b s (1 + b (1 - s)),  [0, 1] = -b^2 s (1 - s),  [1, 1] = b s (b (1 - s) - 1),
        the last bracket from whichever of s and 1 - s is small (it cancels near x2 = 0).
        """
        b, m = self.beta, self.margin(h)
        s, sbar = expit(-m), expit(m)  # s and 1 - s, each without cancellation
        bs = b * s
        d00 = bs * (1.0 + b * sbar)
        d01 = -bs * (b * sbar)
        d11 = bs * np.where(s < 0.5, (b - 1.0) - b * s, b * sbar - 1.0)
        return np.stack([np.stack([d00, d01], -1), np.stack([d01, d11], -1)], -2)
