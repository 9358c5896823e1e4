"""The ``batched`` engine: every start of a chunk in lockstep Runge-Kutta steps (:mod:`flowsim.dynamics.batched`).

It runs any loss and model of independent starts with an explicit method; "auto" chooses it
only where it is verified row by row against the driver (:mod:`flowsim.dynamics.batched.coverage`).
"""

from __future__ import annotations

import numpy as np

from flowsim.dynamics.batched import integrate_batch
from flowsim.dynamics.batched.coverage import verified
from flowsim.dynamics.batched.tableaus import TABLEAUS
from flowsim.dynamics.engines.base import Engine, Task


class Batched(Engine):
    """Lockstep steps of an explicit Runge-Kutta pair, a step size per row; rows it cannot compute: the driver."""

    name = "batched"

    def refuses(self, task: Task) -> str | None:
        if task.solver.method not in TABLEAUS:
            return f"has the explicit methods {sorted(TABLEAUS)} only; got method = {task.solver.method!r}"
        if task.path:
            return "records no paths (use the driver)"
        return None

    def verified(self, task: Task) -> bool:
        return verified(task.loss.kind, task.model_kind, task.stop)

    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        return integrate_batch(task.loss, task.model.bind(p0, ref), task.stop, task.solver)


__all__ = ["Batched"]
