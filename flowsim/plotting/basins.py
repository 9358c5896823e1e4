"""Basins: per combination, ``basin_{TAG}``: final p1 as colour, the time to stop as contours."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.lines import Line2D

from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.canvas import draw_values, mesh_of
from flowsim.plotting.style import NEVER, TIME_UNITS, decorate, hatch_patch, save, single_axes, start_labels


def basin(sub: pd.DataFrame, title: str, cuts, path: Path) -> Path:
    """Final p1 as colour, log10 t_stop as labelled contour lines."""
    fig, ax, cax = single_axes()
    p0 = sub[["p1_0", "p2_0"]].to_numpy(float)
    cmap = colormaps["cividis"].with_extremes(bad=NEVER)
    m = draw_values(ax, p0, sub["p1_final"].to_numpy(float), cmap, mcolors.Normalize(0, 1), width_pt=280)
    t = sub["t_stop"].to_numpy(float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() >= 4 and np.ptp(np.log10(t[ok])) > 0:
        lt = np.log10(t[ok])
        levels = np.arange(np.floor(lt.min() * 2) / 2, np.ceil(lt.max() * 2) / 2 + 0.01, 0.5)
        line = {"colors": "k", "linewidths": 0.8, "negative_linestyles": "solid"}
        mesh = mesh_of(p0[:, 0], p0[:, 1])
        if mesh is not None:
            e1, e2, i1, i2 = mesh
            grid = np.full((len(e2) - 1, len(e1) - 1), np.nan)
            grid[i2, i1] = np.log10(np.where(ok, t, np.nan))
            cs = ax.contour(
                (e1[:-1] + e1[1:]) / 2, (e2[:-1] + e2[1:]) / 2, np.ma.masked_invalid(grid), levels=levels, **line
            )
        else:
            cs = ax.tricontour(p0[ok, 0], p0[ok, 1], lt, levels=levels, **line)
        ax.clabel(cs, fmt=lambda lv: f"t={10**lv:.3g}", fontsize=7, inline=True)
    decorate(ax, *cuts)
    start_labels(ax)
    ax.set_title(f"Basins: final p1 (colour), time to stop (contours)\n{title}", fontsize=11)
    cb = fig.colorbar(m, cax=cax)
    cb.set_label("p1 at the stop = π(y_w|x)", fontsize=9)
    ax.legend(
        handles=[Line2D([], [], color="k", lw=0.8, label=f"t_stop contours {TIME_UNITS}"), hatch_patch()],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """The basin picture of every combination."""
    for p in plot.panels:
        yield basin(p.rows, p.title, plot.cuts, plot.file(f"basin_{p.tag}"))


FAMILY = Family("basins", ("basin",), draw, models=POLICY_MODELS, per_combination=True)
