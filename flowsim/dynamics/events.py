"""Stops and crossings as small objects: what a flow watches for, independent of how it moves.

A :class:`Threshold` is a level of one response's probability: reaching it either stops
the flow (``terminal``: the row's status is the threshold's name) or records the first
time it is met (a *crossing*: ``t_<name>``).  Every integrator (a chart of
:mod:`flowsim.dynamics.charts`, a closed form, a discrete optimiser) turns the same
thresholds into its own test, so the statuses mean the same thing everywhere; which status wins
where several are met at once is the stop rule's (:meth:`StopRule.status`), whose order
:func:`thresholds` follows.

>>> [t.name for t in thresholds(StopRule(), capped=True)]
['converged', 'capped', 'diverged', 'w', 'l']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsim.dynamics.record import StopRule


@dataclass(frozen=True)
class Threshold:
    """p_response >= level (``rising``) or p_response <= level (falling).

    Attributes
    ----------
    name : str
        The status it gives when ``terminal``; else the crossing's suffix (``t_w``, ``t_l``).
    response : int
        0 for y_w, 1 for y_l.
    level : float
        A probability.
    rising : bool
        Met when p >= level (True) or p <= level (False).
    terminal : bool
        Whether meeting it stops the flow.
    """

    name: str
    response: int
    level: float
    rising: bool
    terminal: bool

    def met(self, p: np.ndarray) -> np.ndarray:
        """Whether probabilities p (..., K) meet the threshold (boolean, shape (...))."""
        q = np.asarray(p)[..., self.response]
        return q >= self.level if self.rising else q <= self.level


def thresholds(stop: StopRule, *, capped: bool) -> tuple[Threshold, ...]:
    """The stop rule's thresholds: the floor on p_l, the cap p_w = 1 and the floor on p_w (if ``capped``), the targets.

    ``capped`` is the model's to say: only a model that does not normalise (the ratio plane)
    can reach p_w = 1, or p_w = 0, in finite time.
    """
    out = [Threshold("converged", 1, stop.p2_floor, False, True)]
    if capped:
        # and, as it does not normalise, p_w can fall to 0 in finite time (APO-down from a small
        # p_w with x_l > 1: dx_w/dt ~ -x_w^(beta - 1)); the flow leaves the model there: stop at the floor
        out += [Threshold("capped", 0, 1.0, True, True), Threshold("diverged", 0, stop.p2_floor, False, True)]
    out += [Threshold("w", 0, stop.p1_target, True, False), Threshold("l", 1, stop.p2_target, False, False)]
    return tuple(out)


__all__ = ["Threshold", "thresholds"]
