"""What a chart hands the driver: one flow as an initial-value problem with events.

A chart chooses the coordinates y (the last one always the flow's time t) and the
independent variable tau (t itself, or a *clock*: a coordinate that runs at unit speed)
in which one flow is smooth, and turns the stop rule's thresholds into the tests
``solve_ivp`` can find.  Contract, in order:

1. ``y0`` is the start and ``rhs(tau, y)`` the field dy/dtau.  Where the field is not finite
   ``rhs`` returns NaN, so that the solver rejects the step and shrinks it (a stage that
   overshoots the domain), and names the place in ``nonfinite["where"]`` (the driver's message
   if the solver then gives up).
2. A terminal threshold on the clock is reached at a known tau: it sets ``tau_end`` and
   ``end_status``.  Every other threshold is a ``solve_ivp`` event in ``events`` (with its
   name at the same index of ``names``); a terminal one also has a ``landing`` entry:
   the residual g(y) whose root it is and a function of (y, dy/dtau) giving dg/dtau, used
   for the Newton step that lands on it.
3. ``theta(y)`` maps a state back to the parameters, ``time(y)`` to t, and ``snap[name]``
   gives (index, value) of a parameter a stop puts exactly on its level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class System:
    """One flow, ready for the driver (see the module's contract)."""

    y0: np.ndarray
    rhs: Callable[[float, np.ndarray], np.ndarray]
    atol: list[float]
    tau_end: float
    end_status: str
    theta: Callable[[np.ndarray], list[float]]
    #: states (m, n) -> parameters (n, d), for paths
    theta_path: Callable[[np.ndarray], np.ndarray] = lambda states: states[:-1].T
    events: list = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    landing: dict[str, tuple[Callable, Callable]] = field(default_factory=dict)
    snap: dict[str, tuple[int, float]] = field(default_factory=dict)
    jac: Callable | None = None
    #: the index of t in the state
    t_index: int = -1
    #: names of crossings already met at the start (their time is 0)
    met_at_start: frozenset[str] = frozenset()
    #: "where": the last place the field was not finite (see the contract)
    nonfinite: dict[str, str] = field(default_factory=dict)

    def add_event(self, name: str, g: Callable, direction: float, terminal: bool) -> None:
        """Register a solve_ivp event g(tau, y) under ``name``."""
        g.terminal, g.direction = terminal, direction  # type: ignore[attr-defined]
        self.events.append(g)
        self.names.append(name)
