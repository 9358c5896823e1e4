"""Engines: the ways rows are computed, in one registry (as ``solve_ivp``'s ``METHODS``).

>>> list(ENGINES)
['discrete', 'network', 'batched', 'driver', 'exact']

An experiment names one as ``[solver] engine``, or "auto" (the default): for each combination,
the first engine in :data:`ENGINES`' order that runs the combination's dynamics, can run it
(:meth:`~.base.Engine.why_not`) and is verified for it (:meth:`~.base.Engine.verified`) --
so the discrete optimisers go to ``discrete`` (``network`` for the network model), and the flow
to ``batched`` where it is verified, else to ``driver``, the reference.  ``exact`` is chosen by
name only.  A named engine computes the combinations whose dynamics it runs (the flow, or the
optimisers); the others are chosen as by "auto".  A new engine is one module here, implementing
the contract of :class:`~.base.Engine`, and one line in :data:`ENGINES`.
"""

from __future__ import annotations

from flowsim._validation import ParamError
from flowsim.dynamics.engines.base import Engine, Task
from flowsim.dynamics.engines.batched import Batched
from flowsim.dynamics.engines.discrete import Discrete
from flowsim.dynamics.engines.driver import Driver
from flowsim.dynamics.engines.exact import Exact
from flowsim.dynamics.engines.network import Network

#: Engines by name, in the order "auto" tries them.
ENGINES: dict[str, Engine] = {e.name: e for e in (Discrete(), Network(), Batched(), Driver(), Exact())}
#: The engine setting that picks by coverage.
AUTO = "auto"


def choose(name: str, task: Task) -> Engine:
    """The engine that computes ``task`` under the setting ``name`` ("auto" or a registered engine).

    Raises
    ------
    ParamError
        Keyed "engine": ``name`` is not registered, or cannot run the task (the rule says why),
        or no engine can (with "auto").
    """
    if name != AUTO:
        if name not in ENGINES:
            raise ParamError("engine", f"must be one of {[AUTO, *ENGINES]}", name)
        engine = ENGINES[name]
        if engine.runs_dynamics(task):
            why = engine.why_not(task)
            if why is not None:
                raise ParamError("engine", why, name)
            return engine
    for engine in ENGINES.values():
        if engine.auto and engine.why_not(task) is None and engine.verified(task):
            return engine
    whys = "; ".join(f"{e.name} {e.why_not(task)}" for e in ENGINES.values() if e.why_not(task))
    raise ParamError("engine", f"has no engine for this combination ({whys})", name)


__all__ = ["AUTO", "ENGINES", "Engine", "Task", "choose"]
