"""The :class:`Engine` interface: one way of computing the rows of a chunk of starts.

An engine is registered in :data:`flowsim.dynamics.engines.ENGINES` by its ``name`` (as scipy's
``solve_ivp`` has its ``METHODS``), and an experiment names it as ``[solver] engine`` ("auto",
the default, picks by the engines' declared coverage: :func:`flowsim.dynamics.engines.choose`).

Every engine implements one contract:

1. ``name``: its registry key, as written in experiment files.
2. Its declarations, which say what it covers: ``flow`` (True: it runs the gradient flow;
   False: the discrete optimisers), ``models`` (the model kinds it runs; None: every model
   that binds to a :class:`~flowsim.model.parameterisations.base.Policy` of independent starts),
   ``stops`` (the optional stops of :data:`~flowsim.dynamics.record.OPTIONAL_STOPS` it
   implements) and ``auto`` (whether "auto" may choose it).
3. ``why_not(task)``: why it cannot run a :class:`Task`, in words that complete "engine = NAME
   ...", or None if it can.  Experiments are checked with it before anything runs.
4. ``verified(task)``: whether "auto" may choose it for a task it can run (default: yes).
5. ``run(task, p0, ref)``: given the task (a model, a loss, the dynamics, a stop rule and the
   solver options) and the starts p0 (n, 2) with their references ref (n, 2), return a dict of
   numpy arrays: every field of :data:`~flowsim.dynamics.record.RESULT_FIELDS` and
   :data:`~flowsim.dynamics.record.PATH_FIELDS` per row, the columns finished by
   :func:`~flowsim.dynamics.record.finish_rows` and the stops decided by
   :meth:`~flowsim.dynamics.record.StopRule.status`.  It may add ``engine`` (per row, where a
   row was handed to another engine), ``start`` (the start each row belongs to, for a model
   with several rows per start) and the start columns it knows better than the grid (p1_0,
   p2_0, x1_0, x2_0, ref_w, ref_l, loss_0), and a model's own columns.
6. A row never raises: one that cannot be computed is recorded (``failed``, ``diverged``)
   with a message saying why.
7. With ``task.path`` > 0, each row's path of about that many points: ``path_t`` and ``path_x``,
   object arrays (n,) of times (m,) and parameters (m, d) from the start to the stop, as
   :func:`~flowsim.dynamics.driver.integrate` records them (an engine that cannot record paths
   says so in ``why_not``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from flowsim.dynamics.driver import SolverOptions
from flowsim.dynamics.record import OPTIONAL_STOPS, StopRule


@dataclass(frozen=True)
class Task:
    """What a chunk computes, but its starts: the model, the loss, the dynamics, the stop rule, the solver.

    Attributes
    ----------
    loss : Loss
    model : object
        The model's hyperparameters (a Parameterisation, or another registered model).
    optimiser : Optimiser or None
        The discrete optimiser; None for the gradient flow.
    stop : StopRule
    solver : SolverOptions
        The integrators' options (method, tolerances, chart, budget).
    reference : str
        The reference mode ("fixed", "initial", "none"); ``ref`` holds the references of the starts.
    path : int
        Points to record along each row's path (see the contract, item 7); 0: none.
    """

    loss: Any
    model: Any
    optimiser: Any = None
    stop: StopRule = field(default_factory=StopRule)
    solver: SolverOptions = field(default_factory=SolverOptions)
    reference: str = "fixed"
    path: int = 0

    @property
    def model_kind(self) -> str:
        return self.model.kind


class Engine(ABC):
    """One way of computing rows; see the module docstring for the contract."""

    name: ClassVar[str]
    #: Whether it runs the gradient flow (else the discrete optimisers).
    flow: ClassVar[bool] = True
    #: The model kinds it runs (None: every model that binds to a Policy of independent starts).
    models: ClassVar[frozenset[str] | None] = None
    #: The optional stops it implements.
    stops: ClassVar[frozenset[str]] = frozenset(OPTIONAL_STOPS)
    #: Whether "auto" may choose it.
    auto: ClassVar[bool] = True

    def runs_dynamics(self, task: Task) -> bool:
        """Whether the task's dynamics is of the kind this engine runs (the flow or an optimiser)."""
        return self.flow == (task.optimiser is None)

    def why_not(self, task: Task) -> str | None:
        """Why this engine cannot run ``task`` (None if it can): the declarations, then :meth:`refuses`."""
        if not self.runs_dynamics(task):
            return "runs the gradient flow only" if self.flow else "runs the discrete optimisers only"
        if self.models is not None and task.model_kind not in self.models:
            return f"runs the models {sorted(self.models)} only; got {task.model_kind!r}"
        if self.models is None and not getattr(task.model, "policy_of_starts", True):
            return f"runs models of independent starts; {task.model_kind!r} is not one"
        missing = sorted(task.stop.optional() - self.stops)
        if missing:
            return f"does not implement the stop rule's {', '.join(missing)}"
        return self.refuses(task)

    def refuses(self, task: Task) -> str | None:
        """An engine's own reason not to run a task its declarations cover (None: it runs it)."""
        return None

    def verified(self, task: Task) -> bool:
        """Whether "auto" may choose this engine for ``task`` (one it can run)."""
        return self.auto

    @abstractmethod
    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        """The rows of starts p0 (n, 2) with references ref (n, 2); see the contract, items 5-7."""


__all__ = ["Engine", "Task"]
