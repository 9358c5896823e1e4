"""Discrete optimisers as dynamics: gradient descent, heavy-ball momentum, Adam and AdamW.

Each optimiser is a frozen dataclass of hyperparameters (one file each; :mod:`.base` gives
the contract), registered in :data:`OPTIMISERS` by its ``kind``.  :func:`run_discrete`
runs one from every start of a bound policy at once and returns the same record fields as
the flow's :class:`~flowsim.dynamics.record.FlowResult`, with t = lr x steps.

>>> sorted(OPTIMISERS)
['adam', 'adamw', 'gd', 'momentum']
>>> make_optimiser("adam", lr=0.01)
Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.0)
"""

from __future__ import annotations

from flowsim.dynamics.optimisers.adam import Adam, AdamW
from flowsim.dynamics.optimisers.base import Optimiser, State
from flowsim.dynamics.optimisers.gd import GD
from flowsim.dynamics.optimisers.momentum import Momentum
from flowsim.dynamics.optimisers.runner import run_discrete, step_limit

#: Optimiser classes by the ``kind`` used in experiment files.
OPTIMISERS: dict[str, type[Optimiser]] = {cls.kind: cls for cls in (GD, Momentum, Adam, AdamW)}


def make_optimiser(kind: str, **params: object) -> Optimiser:
    """Build a registered optimiser by name, e.g. ``make_optimiser("gd", lr=0.1)``."""
    try:
        cls = OPTIMISERS[kind]
    except KeyError:
        raise ValueError(f"optimiser kind must be one of {sorted(OPTIMISERS)}; got {kind!r}") from None
    return cls(**params)


__all__ = [
    "GD",
    "OPTIMISERS",
    "Adam",
    "AdamW",
    "Momentum",
    "Optimiser",
    "State",
    "make_optimiser",
    "run_discrete",
    "step_limit",
]
