"""The quantities the maps draw: how each column is read, titled, scaled and coloured.

:func:`quantities` lists them in the order files are written; :func:`values` reads one
from a flows table, :func:`norm_of` gives the colour map and norm every panel of it shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib import colormaps

from flowsim.dynamics.record import STATUSES, StopRule
from flowsim.plotting.style import AT_START, DISPLACED_COLOURS, NEVER, STATUS_COLOURS, TIME_UNITS


def status_colours(colours: Mapping[str, str] = STATUS_COLOURS) -> tuple[tuple[str, str], ...]:
    """Each status of :data:`~flowsim.dynamics.record.STATUSES` with its colour, in the order of the
    codes :func:`values` gives; ValueError naming a status without a colour, or a colour for no status."""
    missing = [s for s in STATUSES if s not in colours]
    unknown = sorted(set(colours) - set(STATUSES))
    if missing or unknown:
        raise ValueError(
            f"status colours must give one colour to each status of STATUSES; "
            f"without a colour: {missing}, not a status: {unknown}"
        )
    return tuple((s, colours[s]) for s in STATUSES)


@dataclass(frozen=True)
class Quantity:
    """How one column is drawn: name in files, title, colour bar label, scale and colour map."""

    name: str
    title: str
    label: str
    scale: str  # "log", "linear", "ratio" or "status" (categories)
    cmap: str = "viridis"
    #: for scale "status": the category names and colours, in the order of their codes
    colours: tuple[tuple[str, str], ...] = status_colours()


def quantities(stop: StopRule) -> tuple[Quantity, ...]:
    """The heatmap quantities, in the order files are written."""
    return (
        Quantity("t_stop", "Time to stop", f"t_stop {TIME_UNITS}", "log"),
        Quantity("p1_final", "Final p1 = π(y_w|x)", "p1 at the stop", "linear", "cividis"),
        Quantity("p2_final", "Final p2 = π(y_l|x)", "p2 at the stop (log scale)", "log", "cividis"),
        Quantity("t_w", f"t_w: p1 first ≥ {stop.p1_target:g}", f"t_w {TIME_UNITS}", "log"),
        Quantity("t_l", f"t_l: p2 first ≤ {stop.p2_target:g}", f"t_l {TIME_UNITS}", "log"),
        Quantity(
            "t_l_over_t_w",
            "Which target first: t_l / t_w",
            "t_l / t_w  (< 1: p2 reaches its target first)",
            "ratio",
            "PuOr_r",
        ),
        Quantity("status", "Why the flow stopped", "status", "status"),
        Quantity(
            "p_w_min_rel", "Lowest p1 along the path / p1_0", "min_t p1(t) / p1_0  (1: never fell)", "linear", "cividis"
        ),
        Quantity(
            "displaced",
            "Likelihood displacement (p1 fell below p1_0)",
            "displaced",
            "status",
            colours=tuple(DISPLACED_COLOURS.items()),
        ),
    )


#: The quantities' names, in the order of :func:`quantities` (the figure kinds of the maps).
NAMES: tuple[str, ...] = (
    "t_stop",
    "p1_final",
    "p2_final",
    "t_w",
    "t_l",
    "t_l_over_t_w",
    "status",
    "p_w_min_rel",
    "displaced",
)

#: Quantities drawn only when the table has the columns they need (tables made before them lack them).
NEEDS: dict[str, str] = {"p_w_min_rel": "p_w_min", "displaced": "displaced"}


def values(flows: pd.DataFrame, name: str) -> np.ndarray:
    """The values drawn for a quantity; ``t_l_over_t_w`` counts a NaN time as never (+inf).

    t_l / t_w is 0 where only p2 reaches its target (or p2 is there at t = 0), +inf where
    only p1 does, NaN where neither does or both are there at t = 0; statuses become
    their index in :data:`flowsim.dynamics.record.STATUSES`.
    """
    if name == "status":
        return flows["status"].map({s: float(i) for i, s in enumerate(STATUSES)}).to_numpy(float)
    if name == "displaced":
        d = flows["displaced"].astype(str).str.lower()
        return np.where(d == "true", 1.0, np.where(d == "false", 0.0, np.nan))
    if name == "p_w_min_rel":
        return flows["p_w_min"].to_numpy(float) / flows["p1_0"].to_numpy(float)
    if name != "t_l_over_t_w":
        return flows[name].to_numpy(float)
    tl = np.nan_to_num(flows["t_l"].to_numpy(float), nan=np.inf)
    tw = np.nan_to_num(flows["t_w"].to_numpy(float), nan=np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = tl / tw
    return np.where((tl == tw) & np.isin(tl, (0.0, np.inf)), np.nan, r)


def norm_of(q: Quantity, v: np.ndarray) -> tuple[mcolors.Colormap, mcolors.Normalize]:
    """Colour map (with its bad/under/over colours) and a norm shared by every panel."""
    if q.scale == "status":
        cmap = mcolors.ListedColormap([c for _, c in q.colours]).with_extremes(bad=NEVER)
        return cmap, mcolors.BoundaryNorm(np.arange(len(q.colours) + 1) - 0.5, len(q.colours))
    base = colormaps[q.cmap]
    pos = v[np.isfinite(v) & (v > 0)]
    if q.scale == "linear":
        return base.with_extremes(bad=NEVER), mcolors.Normalize(0.0, 1.0)
    if q.scale == "ratio":
        m = max(0.5, float(np.abs(np.log10(pos)).max())) if pos.size else 1.0
        return base.with_extremes(bad=NEVER, under=base(0.0), over=base(1.0)), mcolors.LogNorm(10**-m, 10**m)
    lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1e-3, 1.0)
    hi = hi if hi > lo else lo * 10
    return base.with_extremes(bad=NEVER, under=AT_START), mcolors.LogNorm(lo, hi)


def prepare(q: Quantity, v: np.ndarray, norm: mcolors.Normalize) -> np.ndarray:
    """Map 0 and +inf below / above a log norm, so that they show as its under / over colours."""
    if not isinstance(norm, mcolors.LogNorm):
        return v
    v = np.where(v == 0, norm.vmin / 10, v)
    return np.where(np.isposinf(v), norm.vmax * 10, v)
