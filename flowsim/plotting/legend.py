"""A quantity's key: the legend entries of its special colours and its colour bar.

Beside :mod:`.style` (the colours) and :mod:`.quantities` (what is drawn), importing both, so
that neither imports the other back (the layers run style <- quantities <- legend).
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from flowsim.plotting.quantities import Quantity
from flowsim.plotting.style import AT_START, NEVER, hatch_patch


def legend_extras(ax, q: Quantity, v: np.ndarray, fontsize: float = 8) -> None:
    """Legend entries for the special colours actually present, plus the hatching."""
    handles = extra_handles(q, v)
    ncol = 2 if len(handles) == 4 else min(len(handles), 3)
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
        handlelength=1.4,
        columnspacing=1.0,
    )


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
