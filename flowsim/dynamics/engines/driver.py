"""The ``driver`` engine: one ``solve_ivp`` per start (:func:`flowsim.dynamics.driver.integrate`), the reference."""

from __future__ import annotations

import numpy as np

from flowsim.dynamics.driver import integrate
from flowsim.dynamics.engines.base import Engine, Task
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, FlowResult


class Driver(Engine):
    """Every flow by the per-start driver: any loss, any model of independent starts, any stop rule."""

    name = "driver"

    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        policy = task.model.bind(p0, ref)
        records = [_one(task, policy.row(i)) for i in range(len(p0))]
        out = {k: np.array([getattr(r, k) for r in records]) for k in (*RESULT_FIELDS, *PATH_FIELDS)}
        if task.path:
            out["path_t"] = _objects([r.path_t for r in records])
            out["path_x"] = _objects([r.path_x for r in records])
        return out


def _objects(items: list) -> np.ndarray:
    """A 1-d object array of the items (numpy would stack equal-shaped arrays into one)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _one(task: Task, policy) -> FlowResult:
    try:
        return integrate(
            task.loss,
            policy=policy,
            stop=task.stop,
            options=task.solver,
            path=task.path > 0,
            path_points=max(task.path, 2),
        )
    except Exception as exc:  # noqa: BLE001 - one bad row never stops a sweep: it is recorded as failed
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")


__all__ = ["Driver"]
