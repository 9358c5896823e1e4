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


def pairs(model_kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The covered pairs (of the given models), in a stable order."""
    models = MODELS if model_kinds is None else model_kinds
    return [(loss, model) for loss in LOSSES for model in models if shapes(loss, model)]


__all__ = ["UNVERIFIED", "pairs", "shapes", "verified"]
