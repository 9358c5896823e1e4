"""Preference losses as fields over the ratio plane, and their registry.

>>> from flowsim.losses import make_loss
>>> make_loss("dpo", beta=0.5)
DPO(beta=0.5, ref_w=1.0, ref_l=1.0)
"""

from __future__ import annotations

from flowsim.losses.base import Loss
from flowsim.losses.dpo import DPO

#: Loss classes by the ``kind`` used in experiment files.
LOSSES: dict[str, type[Loss]] = {cls.kind: cls for cls in (DPO,)}


def make_loss(kind: str, **params: float) -> Loss:
    """Build a registered loss by name, e.g. ``make_loss("dpo", beta=0.1)``."""
    try:
        cls = LOSSES[kind]
    except KeyError:
        raise ValueError(f"loss kind must be one of {sorted(LOSSES)}; got {kind!r}") from None
    return cls(**params)


__all__ = ["DPO", "LOSSES", "Loss", "make_loss"]
