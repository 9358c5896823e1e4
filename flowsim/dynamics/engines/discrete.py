"""The ``discrete`` engine: an optimiser from every start at once (:func:`flowsim.dynamics.optimisers.run_discrete`)."""

from __future__ import annotations

import numpy as np

from flowsim.dynamics.engines.base import Engine, Task
from flowsim.dynamics.optimisers import run_discrete


class Discrete(Engine):
    """Gradient descent, momentum, Adam, AdamW (:data:`~flowsim.dynamics.optimisers.OPTIMISERS`), vectorised."""

    name = "discrete"
    flow = False

    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        policy = task.model.bind(p0, ref)
        return run_discrete(task.loss, policy, task.optimiser, task.stop, path=task.path > 0, path_points=task.path)


__all__ = ["Discrete"]
