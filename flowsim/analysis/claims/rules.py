"""Verdict rules more than one claim uses: ``rule(metrics, thresholds) -> (verdict, threshold_text)``.

A rule is a small pure function fixed in code before any data is read; a NaN metric meets
no bound.  Rules only one claim uses live in that claim's file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowsim.analysis.verdicts import NOT, PARTLY, SUPPORTED, Metrics, at_least, at_most
from flowsim.model.parameterisations import MODELS, PARAMETERISATIONS

if TYPE_CHECKING:
    from flowsim.analysis.studies.thresholds import ClaimThresholds

#: The models a claim about every model speaks of, and those of independent starts (a claim that needs
#: starts over a grid and the field from any start): derived from the model registry.
EVERY_MODEL: tuple[str, ...] = tuple(MODELS)
POLICY_MODELS: tuple[str, ...] = tuple(PARAMETERISATIONS)
#: The thresholds each rule here reads (a claim using it declares them).
IDENTITY_THRESHOLDS = ("rtol_supported", "rtol_partly")
SHARE_THRESHOLDS = ("share_supported", "share_partly")
CORNER_THRESHOLDS = ("share_supported", "share_partly", "dominance", "speed_factor")


def rule_identity(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C1, C2: ``m["worst"]``, the worst relative deviation of an identity."""
    text = f"supported if worst <= {th.rtol_supported:g}; partly if <= {th.rtol_partly:g}"
    if at_most(m["worst"], th.rtol_supported):
        return SUPPORTED, text
    return (PARTLY if at_most(m["worst"], th.rtol_partly) else NOT), text


def rule_share(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C3, C8: ``m["share"]``, the share of cases where the claim's statement holds."""
    text = f"supported if share >= {th.share_supported:g}; partly if >= {th.share_partly:g}"
    if at_least(m["share"], th.share_supported):
        return SUPPORTED, text
    return (PARTLY if at_least(m["share"], th.share_partly) else NOT), text


def rule_corner(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C5a, C5c: ``m["share_dominant"]`` and ``m["speed_ratio"]`` (corner median / rest median)."""
    text = (
        f"supported if share with the other moving <= 1/{th.dominance:g} as much >= {th.share_supported:g} and "
        f"speed ratio >= {th.speed_factor:g}; partly if share >= {th.share_partly:g}"
    )
    share = m["share_dominant"]
    if at_least(share, th.share_supported) and at_least(m["speed_ratio"], th.speed_factor):
        return SUPPORTED, text
    return (PARTLY if at_least(share, th.share_partly) else NOT), text
