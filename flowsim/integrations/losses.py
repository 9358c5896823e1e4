"""TRL's ``loss_type`` -> flowsim's loss of the same formula, for a traced run (the callback and ``flowsim trace``)."""

from __future__ import annotations

from typing import Any

#: TRL's loss_type -> flowsim's loss of the same formula in (h_w, h_l) and beta alone (TRL's "sigmoid" is
#: DPO); TRL's ipo and sigmoid_norm divide by completion lengths, and robust, exo_pair and discopop read
#: more than beta: no flowsim loss for them here.
TRL_LOSSES = {
    "sigmoid": "dpo",
    "hinge": "hinge",
    "nca_pair": "nca_pair",
    "bco_pair": "bco_pair",
    "sppo_hard": "sppo_hard",
    "apo_zero": "apo_zero",
    "apo_down": "apo_down",
}


def flowsim_loss(spec: dict[str, Any]):
    """flowsim's loss of the run's loss type and beta (a trace's spec), or None (with why) where flowsim has none."""
    from flowsim.model.losses import LOSSES

    types = list(spec.get("loss_type", ["sigmoid"]))
    if len(types) != 1:
        return None, f"a weighted mix of losses {types}"
    changed = {
        k: spec[k]
        for k, plain in (("f_divergence_type", "reverse_kl"), ("ld_alpha", None), ("use_weighting", False))
        if spec.get(k, plain) != plain
    }
    if changed:
        return None, f"the run's loss is changed by {changed}"
    kind = TRL_LOSSES.get(types[0])
    if kind not in LOSSES:
        return None, f"TRL's loss_type {types[0]!r} has no flowsim loss of the same formula"
    try:
        return LOSSES[kind](beta=float(spec["beta"])), ""
    except (TypeError, ValueError) as exc:
        return None, f"{kind} at beta {spec['beta']}: {exc}"


__all__ = ["TRL_LOSSES", "flowsim_loss"]
