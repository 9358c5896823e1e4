"""The ``exact`` engine: the closed form registered for the (loss, model) pair (:mod:`flowsim.dynamics.closed_forms`).

Chosen by name only (``auto`` is False): it is the oracle the integrators are checked against,
and its rows differ from theirs at the integrators' tolerance.
"""

from __future__ import annotations

import numpy as np

from flowsim.dynamics.closed_forms import closed_form
from flowsim.dynamics.engines.base import Engine, Task


class Exact(Engine):
    """Closed-form flows, where one is registered, derived for the hyperparameters and the stops."""

    name = "exact"
    auto = False

    def refuses(self, task: Task) -> str | None:
        form = closed_form(task.loss.kind, task.model_kind)
        where = f"for loss {task.loss.kind!r} on model {task.model_kind!r}"
        if form is None:
            return f"has no closed form {where}"
        if form.unhandled(task.stop):
            what = ", ".join(f"stop.{k}" for k in form.unhandled(task.stop))
            return f'has no closed form with {what} {where}; integrate instead (engine = "auto")'
        if not form.applies(task.loss):
            return f"{form.rule} ({task.loss!r})"
        if task.path:
            return "records no paths (use the driver)"
        return None

    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        form = closed_form(task.loss.kind, task.model_kind)
        return form.flows(task.loss, task.model.bind(p0, ref), task.stop)  # type: ignore[union-attr]


__all__ = ["Exact"]
