"""Preference losses of the log-ratios h = (h_w, h_l), and their registry.

A new loss is one file in this package: a frozen dataclass subclassing :class:`Loss`,
added to :data:`LOSSES` below.  Its fields become swept keys of an experiment's ``[loss]``
table and leading columns of ``flows.csv``.

>>> make_loss("dpo", beta=0.5)
DPO(beta=0.5, f_divergence='reverse_kl', alpha=0.5, label_smoothing=0.0)
"""

from __future__ import annotations

from flowsim.model.losses.apo_down import APODown
from flowsim.model.losses.apo_zero import APOZero
from flowsim.model.losses.base import Loss
from flowsim.model.losses.bco_pair import BCOPair
from flowsim.model.losses.discopop import DiscoPOP
from flowsim.model.losses.dpo import DPO
from flowsim.model.losses.dpop import DPOP
from flowsim.model.losses.exo_pair import ExoPair
from flowsim.model.losses.hinge import Hinge
from flowsim.model.losses.ipo import IPO
from flowsim.model.losses.nca_pair import NCAPair
from flowsim.model.losses.orpo import ORPO
from flowsim.model.losses.robust import Robust
from flowsim.model.losses.rpo import RPO
from flowsim.model.losses.sigmoid_norm import SigmoidNorm
from flowsim.model.losses.simpo import SimPO
from flowsim.model.losses.sppo_hard import SPPOHard

#: Loss classes by the ``kind`` used in experiment files.
LOSSES: dict[str, type[Loss]] = {
    cls.kind: cls
    for cls in (
        DPO,
        Hinge,
        IPO,
        ExoPair,
        NCAPair,
        Robust,
        BCOPair,
        SPPOHard,
        APOZero,
        APODown,
        DiscoPOP,
        SigmoidNorm,
        RPO,
        SimPO,
        DPOP,
        ORPO,
    )
}


def make_loss(kind: str, **params: object) -> Loss:
    """Build a registered loss by name, e.g. ``make_loss("dpo", beta=0.1)``."""
    try:
        cls = LOSSES[kind]
    except KeyError:
        raise ValueError(f"loss kind must be one of {sorted(LOSSES)}; got {kind!r}") from None
    return cls(**params)


__all__ = [
    "DPO",
    "DPOP",
    "IPO",
    "LOSSES",
    "ORPO",
    "RPO",
    "APODown",
    "APOZero",
    "BCOPair",
    "DiscoPOP",
    "ExoPair",
    "Hinge",
    "Loss",
    "NCAPair",
    "Robust",
    "SPPOHard",
    "SigmoidNorm",
    "SimPO",
    "make_loss",
]
