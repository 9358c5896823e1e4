"""Where the batched engine is the default: the (loss, model) pairs and stop-rule shapes it is verified on.

The engine is general (any loss and model of independent starts, through the objective), but a
sweep with ``[solver] engine = "auto"`` (the default) uses it only for the shapes a loss declares
(``Loss.batched``), on every model of independent starts, but the pairs of :data:`UNVERIFIED`;
anything else is integrated by the per-start driver, the reference.  Every covered pair and
shape is checked by ``tests/unit/test_batched.py::test_every_registered_pair_gives_the_drivers_rows``:
starts over the model's domain, references fixed and the start itself, row by row against the
driver (statuses equal, t_stop and the end point within tight tolerances).  A loss whose rows
fail it declares why instead (``batched = "..."``), and the driver computes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowsim.model.losses import LOSSES
from flowsim.model.parameterisations import MODELS

#: Why the batched engine hands a loss with switching surfaces (``Loss.kinks``: DPOP, the hinge) to the
#: driver, on every model, rather than integrating its rows in lockstep (read off the engine's code):
SWITCHING = (
    "a flow of a loss with switching surfaces is integrated in modes (a side of every surface, or "
    "sliding along one with Filippov's field), in pieces that end at switches "
    "(flowsim.dynamics.switching). The lockstep loop has one field for every row of a batch (the "
    "objective's gradient), no per-row mode; a fixed set of events, each a stop that retires its row; "
    "and no way for a row to continue after an event: a switch must land the row (a step and a Newton "
    "step), decide its next mode from the one-sided fields, and restart it as a new initial-value "
    "problem (the driver's next solve_ivp: a fresh initial step, the mode's switch events, its "
    "evaluations, time and sliding time carried on). Until the loop can re-enter a row in a new mode "
    "(per-row modes, a vectorised sliding field and mode-dependent switch residuals), the engine "
    "hands these rows to the driver, which computes them as events"
)

#: Pairs left to the driver beyond the losses' own declarations (none: a loss whose field has
#: switching surfaces, DPOP and the hinge, declares why in its ``batched``, and the batched engine
#: hands any loss with switching surfaces to the driver, which integrates them as events).
UNVERIFIED: frozenset[tuple[str, str]] = frozenset()

#: The stationary stop, on by default: every verified shape has it.
_STATIONARY = "stationary_tol"


def shapes(loss_kind: str, model_kind: str) -> frozenset[frozenset[str]]:
    """The stop-rule shapes (:meth:`StopRule.optional`) the batched engine is verified on for the pair."""
    loss, model = LOSSES.get(loss_kind), MODELS.get(model_kind)
    if loss is None or model is None or not model.policy_of_starts or isinstance(loss.batched, str):
        return frozenset()
    if (loss_kind, model_kind) in UNVERIFIED:
        return frozenset()
    return frozenset(frozenset({*shape, _STATIONARY}) for shape in loss.batched)


def verified(loss_kind: str, model_kind: str, stop) -> bool:
    """Is the batched engine verified for this pair with a stop rule of this shape?"""
    return stop.optional() in shapes(loss_kind, model_kind)


def reason(loss_kind: str, model_kind: str) -> str | None:
    """Why the batched engine is not verified for a pair (None where it is, for some stop-rule shape).

    A loss's own declaration (``Loss.batched`` as a string), with :data:`SWITCHING` for a loss with
    switching surfaces; a model of dependent starts; or the pair's place in :data:`UNVERIFIED`.
    """
    loss, model = LOSSES.get(loss_kind), MODELS.get(model_kind)
    if loss is None or model is None:
        return f"not registered: loss {loss_kind!r} or model {model_kind!r}"
    if not model.policy_of_starts:
        return f"the model {model_kind!r} does not give independent starts (it is trained, not integrated)"
    if isinstance(loss.batched, str):
        kinked = loss().kinks([0.0, 0.0]) is not None
        return f"{loss.batched}; the batched engine cannot: {SWITCHING}" if kinked else loss.batched
    if (loss_kind, model_kind) in UNVERIFIED:
        return "left to the driver (coverage.UNVERIFIED)"
    return None


def pairs(model_kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The covered pairs (of the given models), in a stable order."""
    models = MODELS if model_kinds is None else model_kinds
    return [(loss, model) for loss in LOSSES for model in models if shapes(loss, model)]


__all__ = ["SWITCHING", "UNVERIFIED", "pairs", "reason", "shapes", "verified"]
