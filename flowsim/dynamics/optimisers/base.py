"""The :class:`Optimiser` interface: one discrete update rule, vectorised over rows of parameters.

An optimiser is a frozen dataclass of hyperparameters (``lr`` first, as every one has a step
size), validated in ``__post_init__`` with :mod:`flowsim._validation` (a bad value raises
:class:`~flowsim._validation.ParamError` naming the key, the rule and the value), with

1. ``kind``: its registry name (:data:`flowsim.dynamics.optimisers.OPTIMISERS`);
2. ``init(theta)``: the state for parameters ``theta`` of shape (n, d): a tuple of arrays
   whose first axis follows theta's rows (so a runner can drop rows with ``s[keep]``);
3. ``step(theta, grad, state, k)``: one update of every row at once, from the gradient
   ``grad`` (n, d) of the objective at ``theta``; ``k`` is the 1-based step count, common to
   all rows.  Returns ``(theta_new, state_new)`` as new arrays (the inputs are not modified);
4. ``torch(params)``: its ``torch.optim`` twin over a network's parameters, the same update
   rule (what the ``network`` engine trains with); an optimiser without one raises
   NotImplementedError, and the network runs without it.

Time: a step of size ``lr`` advances the flow's clock by ``lr`` (gradient descent is the
Euler scheme of d theta/dt = -grad L with dt = lr), so the runner's t is lr x steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import ClassVar

import numpy as np

from flowsim._validation import ParamError, check_interval, check_positive, check_real

#: The state of an optimiser: arrays whose first axis is the rows of theta.
State = tuple[np.ndarray, ...]


def check_lr(value: object) -> float:
    """A learning rate: a finite number > 0."""
    return check_positive("lr", value)


def check_unit(name: str, value: object) -> float:
    """A decay rate in [0, 1) (betas, momentum)."""
    return check_interval(name, value, 0.0, 1.0, closed="left")


def check_nonnegative(name: str, value: object) -> float:
    """A finite number >= 0 (weight decay)."""
    value = check_real(name, value)
    if value < 0:
        raise ParamError(name, "must be a finite number >= 0", value)
    return value


class Optimiser(ABC):
    """A discrete update rule theta <- step(theta, grad L(theta), state, k); see the module docstring."""

    #: Registry name, as written in experiment files (``kind = "adam"``).
    kind: ClassVar[str]
    #: The step size; t = lr x steps on the flow's clock.
    lr: float

    @abstractmethod
    def init(self, theta: np.ndarray) -> State:
        """The state before the first step, for parameters theta (n, d)."""

    @abstractmethod
    def step(self, theta: np.ndarray, grad: np.ndarray, state: State, k: int) -> tuple[np.ndarray, State]:
        """Step ``k`` (1-based) from theta (n, d) with gradient grad (n, d): (theta_new, state_new)."""

    def torch(self, params: list) -> object:
        """The ``torch.optim`` optimiser with the same update rule over ``params`` (torch tensors)."""
        raise NotImplementedError(f"optimiser {self.kind!r} has no torch.optim twin")

    def params(self) -> dict[str, object]:
        """The hyperparameters by name, as they go into a results table."""
        return asdict(self)  # type: ignore[call-overload]


__all__ = ["Optimiser", "State", "check_lr", "check_nonnegative", "check_unit"]
