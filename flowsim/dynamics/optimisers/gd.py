"""Plain gradient descent: theta <- theta - lr grad L(theta).

The explicit Euler scheme of the gradient flow d theta/dt = -grad L with dt = lr, so it
approaches the flow at rate O(lr) on a fixed interval of t = lr x steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.dynamics.optimisers.base import Optimiser, State, check_lr


@dataclass(frozen=True)
class GD(Optimiser):
    """Gradient descent, theta_k = theta_{k-1} - lr g_k with g_k = grad L(theta_{k-1}).

    Parameters
    ----------
    lr : float, default 0.01
        The step size (> 0), also the flow time each step stands for.

    Examples
    --------
    >>> GD(lr=0.5).step(np.array([[1.0, 2.0]]), np.array([[2.0, -2.0]]), (), 1)[0].tolist()
    [[0.0, 3.0]]
    """

    kind: ClassVar[str] = "gd"
    lr: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", check_lr(self.lr))

    def init(self, theta: np.ndarray) -> State:
        return ()

    def step(self, theta, grad, state, k):
        return theta - self.lr * grad, state

    def torch(self, params: list) -> object:
        import torch

        return torch.optim.SGD(params, lr=self.lr)


__all__ = ["GD"]
