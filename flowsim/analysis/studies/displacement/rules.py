"""What the displacement study's claims share: the models they speak of, a group's pairs, the
directional reading of a rank correlation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from flowsim.analysis.studies.displacement.measures import POOL, Pairs
from flowsim.analysis.verdicts import Metrics, NotApplicable

if TYPE_CHECKING:
    from flowsim.analysis.claims.group import Group
    from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds

#: The models whose rows carry the per-pair quantities (the ratio plane has no pairs to rank).
MODELS: tuple[str, ...] = ("logits", "features", "network")


def pairs_of(d: Group) -> Pairs:
    """The group's pairs (computed once per group and shared by its views); NotApplicable without any."""
    p = d.cached("displacement pairs", lambda: Pairs(d.frame, POOL))
    if not len(p.dlogpw) or not np.isfinite(p.dlogpw).any():
        raise NotApplicable("no pair with a finite outcome here")
    return p


def direction(m: Metrics, th: DisplacementThresholds, sign: int, key: str = "") -> str:
    """How a correlation ``m[key + "rho"]`` (interval ``lo``, ``hi``) reads in direction ``sign`` (+1, -1):
    "strong" (|rho| >= rho_min that way and the interval excludes 0), "weak" (the first only) or "none"."""
    rho, lo, hi = (m[key + k] for k in ("rho", "lo", "hi"))
    if np.isnan(rho) or sign * rho < th.rho_min:
        return "none"
    bound = hi if sign < 0 else lo
    return "strong" if np.isfinite(bound) and sign * bound > 0 else "weak"


def negative(m: Metrics, th: DisplacementThresholds, key: str = "") -> str:
    """:func:`direction` for a predictor claimed to lower dlogpw."""
    return direction(m, th, -1, key)


__all__ = ["MODELS", "direction", "negative", "pairs_of"]
