"""Where the batched engine is the default: the (loss, parameterisation) pairs it is verified on, declared.

The engine is general (any loss and parameterisation, through the objective), but a sweep
with ``[solver] engine = "auto"`` (the default) uses it only for a pair registered here,
and only with the optional stops registered for that pair; anything else is integrated by
the per-start driver, the reference.  Every entry is checked by
``tests/unit/test_batched.py::test_every_registered_pair_gives_the_drivers_rows``: starts
over the model's domain, references fixed and the start itself, each registered stop rule,
row by row against the driver (statuses equal, t_stop and the end point within tight
tolerances).  A pair is added here only together with a passing run of that test.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Every loss of :data:`flowsim.model.losses.LOSSES` (by kind) whose rows the test checks.
LOSS_KINDS = ("dpo", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down",
              "discopop", "sigmoid_norm", "rpo", "simpo", "dpop", "orpo")  # fmt: skip
#: Pairs left to the driver: DPOP on features (with the SFT model as reference every start sits on
#: DPOP's kink, and the driver's own rows take minutes, so the agreement test cannot afford them).
UNVERIFIED = frozenset({("dpop", "features")})

#: (loss kind, parameterisation kind) -> the stop-rule shapes verified (:meth:`StopRule.optional`: which
#: of :data:`~flowsim.dynamics.record.OPTIONAL_STOPS` a rule sets; the stationary stop is on by default).
#: The shipped experiments' shapes: margin_target for every loss
#: (losses*.toml), none and loss_target for DPO (paper, features, optimisers*.toml).  Without a margin
#: target most other losses run to a finite minimiser, where the flow is stiff and the driver's LSODA
#: takes over (seconds a flow): those shapes are not verified, so they stay the driver's.
_STATIONARY = "stationary_tol"
VERIFIED: dict[tuple[str, str], frozenset[frozenset[str]]] = {
    **{(loss, model): frozenset({frozenset({"margin_target", _STATIONARY})}) for loss in LOSS_KINDS
       for model in ("ratio", "logits", "features") if (loss, model) not in UNVERIFIED},
    **{("dpo", model): frozenset({frozenset({_STATIONARY}), frozenset({"margin_target", _STATIONARY}),
                                  frozenset({"loss_target", _STATIONARY})})
       for model in ("ratio", "logits", "features")},
}  # fmt: skip


def verified(loss_kind: str, model_kind: str, stop) -> bool:
    """Is the batched engine verified for this pair with a stop rule of this shape?"""
    return stop.optional() in VERIFIED.get((loss_kind, model_kind), frozenset())


def pairs(model_kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The registered pairs (of the given parameterisations), in a stable order."""
    return [p for p in VERIFIED if model_kinds is None or p[1] in set(model_kinds)]


__all__ = ["VERIFIED", "pairs", "verified"]
