"""DPO in the paper's ratio coordinates (equation 1 and Theorem 1 of the seed paper).

With the margin m = beta * (log x1 - log x2) and s = sigmoid(-m) = x2^b / (x1^b + x2^b):

    L(x)      = -log sigmoid(m) = softplus(-m)
    dL/dx1    = -beta * s / x1                       (Theorem 1, first formula)
    dL/dx2    = +beta * s / x2                       (Theorem 1, second formula)
    d2L/dx1^2 =  beta * s * (1 + beta (1 - s)) / x1^2
    d2L/dx1dx2 = -beta^2 * s (1 - s) / (x1 x2)
    d2L/dx2^2 =  beta * s * (beta (1 - s) - 1) / x2^2

Everything is evaluated through the margin (``np.logaddexp`` and ``scipy.special.expit``),
never through x^beta, so x2 down to 1e-300 and beta from 0.01 to 10 give finite values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from flowsim._validation import check_interval, check_positive
from flowsim.losses.base import Loss


@dataclass(frozen=True)
class DPO(Loss):
    """The DPO loss -log(x1^beta / (x1^beta + x2^beta)).

    Parameters
    ----------
    beta : float, default 0.1
        Inverse temperature, > 0.  The paper's footnote 3 gives 0.1-0.5 as usual.
    ref_w, ref_l : float, default 1.0
        Reference probabilities pi_ref(y_w|x) and pi_ref(y_l|x), each in (0, 1].  The
        defaults are the paper's Figure 1 setting (its footnote 4: no reference model).

    Examples
    --------
    >>> loss = DPO(beta=0.1)
    >>> float(loss.value([1.0, 1.0]))  # log 2 where x1 = x2
    0.6931471805599453
    >>> loss.grad([1.0, 1.0]).tolist()
    [-0.05, 0.05]
    """

    kind: ClassVar[str] = "dpo"
    beta: float = 0.1
    ref_w: float = 1.0
    ref_l: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_positive("beta", self.beta))
        object.__setattr__(self, "ref_w", check_interval("ref_w", self.ref_w, 0.0, 1.0))
        object.__setattr__(self, "ref_l", check_interval("ref_l", self.ref_l, 0.0, 1.0))

    def margin(self, x: np.ndarray) -> np.ndarray:
        """The DPO margin beta * (log x1 - log x2), shape (...)."""
        logx = np.log(np.asarray(x, dtype=float))
        return self.beta * (logx[..., 0] - logx[..., 1])

    def sigma(self, x: np.ndarray) -> np.ndarray:
        """s = sigmoid(-margin) = x2^beta / (x1^beta + x2^beta), in (0, 1)."""
        return expit(-self.margin(x))

    def value(self, x: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, -self.margin(x))

    def grad(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        bs = self.beta * self.sigma(x)
        return np.stack([-bs / x[..., 0], bs / x[..., 1]], axis=-1)

    def grad_at(self, x1: float, x2: float) -> tuple[float, float]:
        m = self.beta * (math.log(x1) - math.log(x2))
        # sigmoid(-m) without overflow for either sign of m
        s = 1.0 / (1.0 + math.exp(m)) if m <= 0 else (e := math.exp(-m)) / (1.0 + e)
        bs = self.beta * s
        return -bs / x1, bs / x2

    def hessian(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        b, m = self.beta, self.margin(x)
        s, sbar = expit(-m), expit(m)  # s and 1 - s, each without cancellation
        x1, x2 = x[..., 0], x[..., 1]
        # Divide by x_i one factor at a time: x2**2 underflows long before the result does.
        g1, g2 = b * s / x1, b * s / x2
        h11 = g1 * (1.0 + b * sbar) / x1
        h12 = -g1 * (b * sbar) / x2
        # beta (1 - s) - 1, from whichever of s and 1 - s is small
        h22 = g2 * np.where(s < 0.5, (b - 1.0) - b * s, b * sbar - 1.0) / x2
        return np.stack([np.stack([h11, h12], -1), np.stack([h12, h22], -1)], -2)

    def chart_exponents(self) -> tuple[float, float]:
        """(2, 0): z1 = x1^2 and z2 = log x2, integrated with log x2 as the clock.

        In t the flow is singular at its end: for beta < 2 it reaches x2 = 0 in finite time
        with speed |dx2/dt| ~ x2^(beta - 1), and no power chart of x2 makes it smooth (the
        time left behaves like x2^(2 - beta) plus x2^2 terms).  With the clock
        tau = log(x2_0 / x2) (:meth:`clock_coordinate`) and s = x2^b / (x1^b + x2^b),

            dz1/dtau = 2 x2^2,   dz2/dtau = -1,   dt/dtau = x2^2 / (beta s) = (x2^2 + x1^b x2^(2-b)) / beta,

        sums of exponentials in tau, smooth all the way to the floor (and for every beta:
        for beta >= 2, t grows without bound and the flow times out).
        """
        return (2.0, 0.0)

    def clock_coordinate(self) -> int:
        """1: log x2, which decreases at the rate beta s / x2^2 > 0 everywhere in the box."""
        return 1

    def chart_field_at(self, z1: float, z2: float) -> tuple[float, float, float]:
        """The field of :meth:`chart_exponents` in closed form: three exponentials, no cancellation."""
        b = self.beta
        u = math.exp(2.0 * z2)  # x2^2
        return 2.0 * u, -1.0, (u + abs(z1) ** (0.5 * b) * math.exp((2.0 - b) * z2)) / b
