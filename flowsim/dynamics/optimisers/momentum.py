r"""Heavy-ball momentum with torch.optim.SGD's conventions (no dampening, no Nesterov).

torch.optim.SGD's documented algorithm with momentum mu, dampening 0, nesterov off and no
weight decay is, for t = 1, 2, ...:

    g_t = grad L(theta_{t-1})
    b_t = g_t                      (t = 1)
    b_t = mu b_{t-1} + g_t         (t > 1)
    theta_t = theta_{t-1} - lr b_t

(the "buffer" b accumulates gradients; lr multiplies it, unlike Sutskever et al.'s form
v = mu v + lr g, theta -= v: the two agree for a constant lr).  For a constant gradient the
step tends to lr g / (1 - mu), so on the flow's clock t = lr x steps the scheme runs about
1 / (1 - mu) times faster than the flow once the buffer has built up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.dynamics.optimisers.base import Optimiser, State, check_lr, check_unit


@dataclass(frozen=True)
class Momentum(Optimiser):
    """Heavy-ball momentum (torch.optim.SGD with ``momentum``; no dampening or Nesterov).

    Parameters
    ----------
    lr : float, default 0.01
        The step size (> 0).
    momentum : float, default 0.9
        The buffer's decay mu, in [0, 1); 0 is plain gradient descent.

    Examples
    --------
    >>> opt = Momentum(lr=0.1, momentum=0.5)
    >>> th, st = opt.step(np.zeros((1, 1)), np.ones((1, 1)), opt.init(np.zeros((1, 1))), 1)
    >>> th, st = opt.step(th, np.ones((1, 1)), st, 2)  # b = 0.5 * 1 + 1
    >>> th.tolist(), st[0].tolist()
    ([[-0.25]], [[1.5]])
    """

    kind: ClassVar[str] = "momentum"
    lr: float = 0.01
    momentum: float = 0.9

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", check_lr(self.lr))
        object.__setattr__(self, "momentum", check_unit("momentum", self.momentum))

    def init(self, theta: np.ndarray) -> State:
        return (np.zeros_like(np.asarray(theta, dtype=float)),)

    def step(self, theta, grad, state, k):
        b = grad if k == 1 else self.momentum * state[0] + grad
        return theta - self.lr * b, (b,)

    def torch(self, params: list) -> object:
        import torch

        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, dampening=0.0)


__all__ = ["Momentum"]
