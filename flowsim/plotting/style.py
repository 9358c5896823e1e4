"""The look every figure shares: formats, colours (colour-blind safe), hatching, regions, legends.

Colour maps are viridis, cividis and PuOr; the statuses and the paths take Okabe-Ito
colours.  Two special colours mark what a map cannot show: :data:`NEVER` (a target never
reached, or a failed flow) and :data:`AT_START` (a target met at t = 0); white is where
there is no start.  The infeasible triangle p1 + p2 > 1 is hatched mid-grey
(:func:`hatch_patch` is its legend entry).  Figures are drawn on
:class:`matplotlib.figure.Figure` objects with a fixed layout (no layout engine, no pyplot).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.patheffects as pe
import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import FuncFormatter

from flowsim.experiment.regions import REGIONS

if TYPE_CHECKING:
    from flowsim.plotting.quantities import Quantity

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")


DPI = 130


#: Okabe-Ito colours for the statuses (converged, capped, timeout, failed).
STATUS_COLOURS: dict[str, str] = {
    "converged": "#0072B2", "capped": "#E69F00", "reached_loss": "#009E73", "reached_margin": "#56B4E9",
    "stationary": "#F0E442", "timeout": "#CC79A7", "diverged": "#D55E00", "failed": "#000000",
}  # fmt: skip


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
            ax.text(xs[k % 3], ys[k // 3], name, ha="center", va="center", fontsize=fontsize, color="k",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def start_labels(ax, fontsize: float = 9.5) -> None:
    ax.set_xlabel("p1_0 = π(y_w|x) at the start", fontsize=fontsize)
    ax.set_ylabel("p2_0 = π(y_l|x) at the start", fontsize=fontsize)


def legend_extras(ax, q: Quantity, v: np.ndarray, fontsize: float = 8) -> None:
    """Legend entries for the special colours actually present, plus the hatching."""
    handles = extra_handles(q, v)
    ncol = 2 if len(handles) == 4 else min(len(handles), 3)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol,
              fontsize=fontsize, frameon=False, handlelength=1.4, columnspacing=1.0)  # fmt: skip


def extra_handles(q: Quantity, v: np.ndarray) -> list[Patch]:
    """The hatching, and the special colours (at t = 0, never, only one target) present in ``v``."""
    handles = [hatch_patch()]
    if q.scale == "status":
        handles = [Patch(fc=c, label=s) for i, (s, c) in enumerate(q.colours) if np.any(v == i)] + handles
    elif q.scale == "log":
        if np.any(v == 0):
            what = "stopped at t = 0" if q.name == "t_stop" else "at the target at t = 0"
            handles.append(Patch(fc=AT_START, ec="0.3", lw=0.5, label=what))
        if np.any(np.isnan(v)):
            handles.append(Patch(fc=NEVER, label="failed" if q.name in ("t_stop", "p2_final") else "never reached"))
    elif q.scale == "ratio":
        cmap = colormaps[q.cmap]
        if np.any(v == 0):
            handles.append(Patch(fc=cmap(0.0), label="only p2 reaches its target"))
        if np.any(np.isposinf(v)):
            handles.append(Patch(fc=cmap(1.0), label="only p1 reaches its target"))
        if np.any(np.isnan(v)):
            handles.append(Patch(fc=NEVER, label="neither reached (or both at t = 0)"))
    return handles


def colorbar(fig, mappable, cax, q: Quantity, fontsize: float = 9) -> None:
    extend = {"log": "min", "ratio": "both"}.get(q.scale, "neither")
    cb = fig.colorbar(mappable, cax=cax, extend=extend)
    if q.scale in ("log", "ratio"):
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # no mathtext: faster, plainer
    cb.set_label(q.label, fontsize=fontsize)
    cb.ax.tick_params(labelsize=fontsize - 1)


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
