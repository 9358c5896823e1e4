"""DPO-Positive (Pal et al. 2024, "Smaug", arXiv 2402.13228, eq. 3); not in TRL.

    L = -log sigmoid(beta (h_w - h_l - lambda max(0, -h_w)))

i.e. DPO's margin minus lambda times max(0, log pi_ref(y_w)/pi_theta(y_w)), the penalty for
the chosen response's probability falling below the reference's.  With
m = beta (h_w - h_l - lambda max(0, -h_w)), s = sigmoid(-m) and the slope
a = 1 + lambda [h_w < 0]:

    dL/dh    = beta s (-a, 1)
    d2L/dh2  = beta^2 s (1 - s) (a, -1)(a, -1)^T          (analytic, away from the kink)

The gradient jumps across h_w = 0 (a from 1 + lambda to 1), a switching surface reported by
:meth:`DPOP.kinks`, with each side's piece softplus(-beta (a h_w - h_l)) (:meth:`DPOP.side_grad`).
Where a model couples h_w to h_l (log-linear features with similar responses, whose DPO field
alone lowers p_w), both sides push into h_w = 0 and the flow *slides* along it (Filippov).
At h_w = 0 itself (where a flow started at the reference, p0 = ref, begins) the slope is the
right-hand one, a = 1 (torch.relu's gradient 0 at 0): in the ratio plane gradient flow raises
h_w there (dL/dh_w < 0 on both sides), into the side where a = 1.  No finite minimiser.
``dpop_lambda`` defaults to 50, the value usually quoted for the paper's runs (not checked
against its text here); beta defaults to 0.1 as DPO's in TRL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class DPOP(Loss):
    """softplus(-beta (h_w - h_l - lambda max(0, -h_w))).

    Parameters
    ----------
    beta : float, default 0.1
        Inverse temperature, > 0.
    dpop_lambda : float, default 50.0
        The penalty weight lambda, >= 0 (0 gives DPO).

    Examples
    --------
    >>> float(DPOP().margin([-1.0, -1.0]))  # 0.1 (0 - 50 * 1): h_w = h_l, yet a losing margin
    -5.0
    """

    kind: ClassVar[str] = "dpop"
    #: Its field has a switching surface (h_w = 0), along which flows slide (Filippov): the driver
    #: integrates them in pieces between events on it; the batched engine's lockstep steps would chatter.
    batched: ClassVar[tuple[tuple[str, ...], ...] | str] = (
        "its field has a switching surface (h_w = 0) along which flows slide: the driver integrates it as events"
    )
    beta: float = 0.1
    dpop_lambda: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        lam = check_interval("dpop_lambda", self.dpop_lambda, 0.0, np.inf, closed="left")
        object.__setattr__(self, "dpop_lambda", lam)

    def _margin_slope(self, h):
        h = np.asarray(h, dtype=float)
        hw = h[..., 0]
        m = self.beta * (hw - h[..., 1] - self.dpop_lambda * np.maximum(0.0, -hw))
        return m, np.where(hw < 0.0, 1.0 + self.dpop_lambda, 1.0)

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w - h_l - lambda max(0, -h_w)), shape (...)."""
        return self._margin_slope(h)[0]

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return -log_expit(self.margin(h))

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m, a = self._margin_slope(h)
            bs = self.beta * expit(-m)
            return np.stack([-bs * a, bs], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            m, a = self._margin_slope(h)
            c = self.beta**2 * expit(-m) * expit(m)
            v = np.stack([a, -np.ones_like(a)], axis=-1)
            return c[..., None, None] * v[..., :, None] * v[..., None, :]

    def kinks(self, h, log_ref=0.0):
        """h_w, shape (..., 1): the penalty max(0, -h_w) switches on where it changes sign."""
        return np.asarray(h, dtype=float)[..., :1].copy()

    def kink_normals(self, h, log_ref=0.0):
        """d h_w/dh = (1, 0), shape (..., 1, 2)."""
        out = np.zeros((*np.shape(h)[:-1], 1, 2))
        out[..., 0, 0] = 1.0
        return out

    def side_grad(self, h, side, log_ref=0.0):
        """The gradient of the piece softplus(-beta (a h_w - h_l)), a = 1 + lambda (side -1) or 1 (side +1)."""
        h = np.asarray(h, dtype=float)
        a = np.where(np.asarray(side, dtype=float)[..., 0] < 0, 1.0 + self.dpop_lambda, 1.0)
        with np.errstate(under="ignore"):
            bs = self.beta * expit(-self.beta * (a * h[..., 0] - h[..., 1]))
            return np.stack([-bs * a, bs], axis=-1)
