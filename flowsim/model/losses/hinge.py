"""SLiC's hinge loss on the DPO margin (TRL's ``loss_type="hinge"``).

Source: trl/trainer/dpo_trainer.py (TRL v1.9.0, ``_compute_loss``; the same expression in
``dpo_loss`` of v0.28.0)::

    per_sequence_loss = torch.relu(1 - self.beta * delta_score)

with delta_score = h_w - h_l (reverse KL, TRL's default ``f_divergence_type``).  With
m = beta (h_w - h_l):

    L        = max(0, 1 - m)
    dL/dh    = beta [m < 1] (-1, +1)        (torch's relu has gradient 0 at 0: so at m = 1 too)
    d2L/dh2  = 0                             (analytic, away from the kink)

The gradient jumps on the line m = 1, reported by :meth:`Hinge.kinks` as 1 - m.  Every
point with m >= 1, i.e. h_w - h_l >= 1/beta (10 at the default beta), is a minimiser (L = 0,
dL/dh = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim._validation import check_beta
from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class Hinge(Loss):
    """relu(1 - beta (h_w - h_l)).

    Parameters
    ----------
    beta : float, default 0.1
        TRL's ``beta`` (> 0): the margin target is h_w - h_l = 1/beta.

    Examples
    --------
    >>> Hinge().grad([0.0, 0.0]).tolist()
    [-0.1, 0.1]
    """

    kind: ClassVar[str] = "hinge"
    #: Its field has a switching surface (margin = 1), along which a flow stops or slides (Filippov): the driver
    #: integrates them in pieces between events on it; the batched engine's lockstep steps would chatter.
    batched: ClassVar[tuple[tuple[str, ...], ...] | str] = (
        "its field has a switching surface (margin = 1) where flows stop or slide: the driver integrates it as events"
    )
    reads_margin_only: ClassVar[bool] = True
    beta: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))

    def margin(self, h: np.ndarray) -> np.ndarray:
        """beta (h_w - h_l), shape (...)."""
        h = np.asarray(h, dtype=float)
        return self.beta * (h[..., 0] - h[..., 1])

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return np.maximum(0.0, 1.0 - self.margin(h))

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            b = np.where(1.0 - self.margin(h) > 0.0, self.beta, 0.0)
            return np.stack([-b, b], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return np.zeros((*np.shape(h)[:-1], 2, 2))

    def kinks(self, h, log_ref=0.0):
        """1 - m, shape (..., 1): the gradient jumps where it changes sign."""
        return (1.0 - self.margin(h))[..., None]

    def kink_normals(self, h, log_ref=0.0):
        """d(1 - m)/dh = beta (-1, 1), shape (..., 1, 2)."""
        out = np.zeros((*np.shape(h)[:-1], 1, 2))
        out[..., 0, :] = (-self.beta, self.beta)
        return out

    def side_grad(self, h, side, log_ref=0.0):
        """beta (-1, 1) on the side m < 1 (side +1), 0 on the side m > 1."""
        b = np.where(np.asarray(side, dtype=float)[..., 0] > 0, self.beta, 0.0) + np.zeros(np.shape(h)[:-1])
        return np.stack([-b, b], axis=-1)
