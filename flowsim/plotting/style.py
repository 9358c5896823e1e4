"""The look every figure shares: formats, colours (colour-blind safe), hatching, regions, legends.

Colour maps are viridis, cividis and PuOr; the statuses and the paths take Okabe-Ito
colours.  Two special colours mark what a map cannot show: :data:`NEVER` (a target never
reached, or a failed flow) and :data:`AT_START` (a target met at t = 0); white is where
there is no start.  The infeasible triangle p1 + p2 > 1 is hatched mid-grey
(:func:`hatch_patch` is its legend entry; a quantity's legend and colour bar are in
:mod:`flowsim.plotting.legend`).  Figures are drawn on
:class:`matplotlib.figure.Figure` objects with a fixed layout (no layout engine, no pyplot).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.patheffects as pe
import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon

from flowsim.experiment.regions import REGIONS

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


DPI = 130


#: Okabe-Ito colours, keyed by status: one for each of :data:`flowsim.dynamics.record.STATUSES`
#: (checked by :func:`flowsim.plotting.quantities.status_colours`); the order here does not matter.
STATUS_COLOURS: dict[str, str] = {
    "converged": "#0072B2",
    "capped": "#E69F00",
    "reached_loss": "#009E73",
    "reached_margin": "#56B4E9",
    "stationary": "#F0E442",
    "timeout": "#CC79A7",
    "diverged": "#D55E00",
    "failed": "#000000",
}


#: The two classes of the ``displaced`` map (Okabe-Ito blue and vermillion).
DISPLACED_COLOURS: dict[str, str] = {"not displaced": "#0072B2", "displaced (p1 < p1_0)": "#D55E00"}


#: Okabe-Ito colours for paths.
PATH_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#999999")


#: Colours for "never reached" (NaN) and "reached at t = 0"; not white, which is where there is no start
NEVER, AT_START = "0.6", "#fbb4ae"


TIME_UNITS = "(gradient-flow time units)"


def hatch_patch(label: str = "p1 + p2 > 1 (infeasible)") -> Patch:
    """The legend entry of the hatched infeasible triangle."""
    return Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label=label)


def decorate(ax, p1_cuts, p2_cuts, fontsize: float = 7.5, names: bool = True) -> None:
    """Region lines and names, the hatched infeasible triangle, axes labels and limits."""
    # mid-grey hatching shows on the dark and on the light ends of the colour maps
    with rc_context({"hatch.linewidth": 0.6, "hatch.color": "0.5"}):
        ax.add_patch(Polygon([(0, 1), (1, 1), (1, 0)], closed=True, fill=False, hatch="///", lw=0, alpha=0.9))
    halo = [pe.withStroke(linewidth=2.2, foreground="white")]
    ax.plot([0, 1], [1, 0], color="k", lw=0.8, path_effects=halo)
    for c in p1_cuts:
        ax.axvline(c, color="k", lw=0.9, ls="--", path_effects=halo)
    for c in p2_cuts:
        ax.axhline(c, color="k", lw=0.9, ls="--", path_effects=halo)
    if names:
        xs = np.diff([0, *p1_cuts, 1]) / 2 + np.array([0, *p1_cuts])
        ys = (np.diff([0, *p2_cuts, 1]) / 2 + np.array([0, *p2_cuts]))[::-1]
        for k, name in enumerate(REGIONS):
            ax.text(
                xs[k % 3],
                ys[k // 3],
                name,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="k",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def start_labels(ax, fontsize: float = 9.5) -> None:
    ax.set_xlabel("p1_0 = π(y_w|x) at the start", fontsize=fontsize)
    ax.set_ylabel("p2_0 = π(y_l|x) at the start", fontsize=fontsize)


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def single_axes(width: float = 6.0, height: float = 5.7, colorbar: bool = True, bottom: float = 1.1):
    """A figure with one square map axes (fixed layout: no layout engine, which would double the cost)."""
    fig = Figure(figsize=(width, height))
    side = 3.9  # inches
    left = 0.75
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.3) / width, (bottom + 0.2) / height, 0.18 / width, (side - 0.4) / height))
    cax.set_visible(colorbar)
    return fig, ax, cax
