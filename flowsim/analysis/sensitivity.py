"""The fixed family of alternatives under which every verdict is re-evaluated.

Written here, before any data is read, and the same for every claim, model and loss:

* **region cuts** -- the 3 x 3 regions relabelled with cuts (c, 1 - c) on both axes, for c
  in :data:`CUT_ALTERNATIVES` = 0.2, 0.25 and 1/3 (the default thirds are one of them, so a
  run read with other cuts is also checked against the thirds);
* **thresholds** -- each threshold of the study's thresholds dataclass halved and doubled
  (:data:`THRESHOLD_FACTORS`).  A threshold that is a *share* (named in the dataclass's
  ``ODDS_FIELDS``) is halved and doubled on its odds s / (1 - s), so that it stays a share
  (0.9 -> 0.818 and 0.947; 0.5 -> 0.333 and 0.667).  An alternative the dataclass rejects
  (e.g. a "supported" bound that would fall below the "partly" one) is left out and named.

A verdict that is the same under every alternative is ``robust``; otherwise it is
``fragile (flips under ...)``, naming each alternative and the verdict it gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The alternative regions' cuts (c, 1 - c), the same on both axes.
CUT_ALTERNATIVES: tuple[tuple[float, float], ...] = ((0.2, 0.8), (0.25, 0.75), (1 / 3, 2 / 3))
#: Each threshold is multiplied by these (shares: their odds).
THRESHOLD_FACTORS: tuple[float, ...] = (0.5, 2.0)
ROBUST = "robust"


@dataclass(frozen=True)
class Variant:
    """One alternative: a name, the region cuts (None: the flows' own regions) and thresholds."""

    name: str
    cuts: tuple[float, float] | None
    thresholds: Any


def _scaled(name: str, value: float, factor: float, odds: bool) -> float:
    if not odds:
        return value * factor
    if value >= 1.0:
        return value if factor > 1 else 1.0 / (1.0 + 1.0 / factor)  # odds infinite: only halving moves it
    o = value / (1.0 - value) * factor
    return o / (1.0 + o)


def family(
    thresholds: Any, cuts_family: tuple[tuple[float, float], ...] = CUT_ALTERNATIVES
) -> tuple[list[Variant], list[str]]:
    """The alternatives for a thresholds dataclass: (variants, names of those left out as invalid).

    ``cuts_family``: the region cuts (c, 1 - c) to relabel with (a study's own, by default
    :data:`CUT_ALTERNATIVES`).
    """
    out: list[Variant] = []
    for cuts in cuts_family:
        out.append(Variant(f"cuts {cuts[0]:.3g}", cuts, thresholds))
    odds = set(getattr(thresholds, "ODDS_FIELDS", ()))
    skipped = []
    for f in dataclasses.fields(thresholds):
        value = getattr(thresholds, f.name)
        for factor in THRESHOLD_FACTORS:
            new = _scaled(f.name, value, factor, f.name in odds)
            name = f"{f.name} {'x' if f.name not in odds else 'odds x'}{factor:g}"
            try:
                th = dataclasses.replace(thresholds, **{f.name: new})
            except (ValueError, TypeError):
                skipped.append(name)
                continue
            out.append(Variant(name, None, th))
    return out, skipped


def robustness(base: str, alternatives: Mapping[str, str]) -> str:
    """``robust`` when every alternative gives ``base``, else ``fragile (flips under a: v; ...)``."""
    flips = [f"{name}: {v}" for name, v in alternatives.items() if v != base]
    return ROBUST if not flips else "fragile (flips under " + "; ".join(flips) + ")"
