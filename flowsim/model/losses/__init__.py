"""Preference losses of the log-ratios h = (h_w, h_l), and their registry.

A new loss is one file in this package: a frozen dataclass subclassing :class:`Loss`,
added to :data:`LOSSES` below.  Its fields become swept keys of an experiment's ``[loss]``
table and leading columns of ``flows.csv``.

>>> make_loss("dpo", beta=0.5)
DPO(beta=0.5)
"""

from __future__ import annotations

from flowsim.model.losses.base import Loss
from flowsim.model.losses.dpo import DPO

#: Loss classes by the ``kind`` used in experiment files.
LOSSES: dict[str, type[Loss]] = {cls.kind: cls for cls in (DPO,)}


def make_loss(kind: str, **params: object) -> Loss:
    """Build a registered loss by name, e.g. ``make_loss("dpo", beta=0.1)``."""
    try:
        cls = LOSSES[kind]
    except KeyError:
        raise ValueError(f"loss kind must be one of {sorted(LOSSES)}; got {kind!r}") from None
    return cls(**params)


__all__ = ["DPO", "LOSSES", "Loss", "make_loss"]
