"""The losses compared: ``loss_comparison``, for a table of several losses (any model).

Left, per loss, the share of flows displaced (p_w fell below its start) and the share in which
p_l reached its target before p_w reached its own (t_l < t_w); right, the median final p_w of
the starts in each region (a loss per row, the regions in the plane's layout order).  The
numbers are :func:`flowsim.analysis.tables.loss_comparison`'s, written by ``flowsim analyze``
as loss_comparison.csv.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from flowsim.analysis.tables import loss_comparison
from flowsim.experiment.regions import REGIONS
from flowsim.plotting.base import Family, Plot
from flowsim.plotting.settings import MODEL_TEXT
from flowsim.plotting.style import NEVER, PATH_COLOURS, save


def _bars(ax, y: np.ndarray, v: np.ndarray, colour: str, title: str, labels: bool, notes=None) -> None:
    ax.barh(y, np.nan_to_num(v), color=colour, height=0.7)
    notes = [""] * len(v) if notes is None else notes
    for yi, vi, note in zip(y, v, notes, strict=True):
        text = "n/a" if np.isnan(vi) else f"{vi:.2f}{note}"
        ax.text(min(np.nan_to_num(vi), 1) + 0.02, yi, text, va="center", fontsize=7)
    ax.set_xlim(0, 1.18)
    ax.set_xticks([0, 0.5, 1])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7.5, labelleft=labels)
    ax.grid(axis="x", alpha=0.3, lw=0.5)


def comparison_figure(table: pd.DataFrame, model: str, path: Path) -> Path:
    """The three panels of the module docstring for one model's rows of :func:`loss_comparison`."""
    n = len(table)
    row_h, top, bottom, left = 0.28, 0.95, 0.75, 1.25
    bar_w, gap, map_w, cbar = 2.6, 0.35, 4.6, 0.9
    width = left + 2 * bar_w + 2 * gap + map_w + cbar
    height = bottom + n * row_h + top
    fig = Figure(figsize=(width, height))
    y = np.arange(n)[::-1]
    axes = []
    for k in range(3):
        x0 = left + k * (bar_w + gap)
        w = map_w if k == 2 else bar_w
        axes.append(fig.add_axes((x0 / width, bottom / height, w / width, n * row_h / height)))
    impossible = table["displacement_impossible"] if "displacement_impossible" in table else [False] * n
    notes = [" impossible by construction" if i else "" for i in impossible]
    _bars(
        axes[0],
        y,
        table["share_displaced"].to_numpy(float),
        PATH_COLOURS[5],
        "share displaced\n(p_w fell below p_w0)",
        True,
        notes,
    )
    _bars(
        axes[1],
        y,
        table["share_l_before_w"].to_numpy(float),
        PATH_COLOURS[4],
        "share with t_l < t_w\n(p_l reached its target first)",
        False,
    )
    for ax in axes[:2]:
        ax.set_yticks(y, table["loss"].tolist())
        ax.set_ylim(-0.5, n - 0.5)
    grid = table[[f"p_w_final_{r}" for r in REGIONS]].to_numpy(float)
    cmap = colormaps["cividis"].with_extremes(bad=NEVER)
    m = axes[2].imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        norm=Normalize(0, 1),
        aspect="auto",
        extent=(-0.5, len(REGIONS) - 0.5, -0.5, n - 0.5),
    )
    for i, j in np.ndindex(grid.shape):
        if np.isfinite(grid[i, j]):
            axes[2].text(
                j,
                n - 1 - i,
                f"{grid[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="k" if grid[i, j] > 0.55 else "w",
            )
    axes[2].set_xticks(range(len(REGIONS)), REGIONS, rotation=40, ha="right", fontsize=7)
    axes[2].set_yticks([])
    axes[2].set_title("median final p_w, by the start's region\n(grey: no start there)", fontsize=9)
    cax = fig.add_axes(((width - cbar + 0.2) / width, bottom / height, 0.14 / width, n * row_h / height))
    cb = fig.colorbar(m, cax=cax)
    cb.set_label("final p_w = π(y_w|x)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    where = MODEL_TEXT.get(model, model)
    fig.suptitle(
        f"The losses compared on {where} ({int(table['n'].sum()):,} flows that did not fail)",
        fontsize=11,
        y=1 - 0.2 / height,
    )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """One figure per model of a table of several losses (nothing for one loss)."""
    table = loss_comparison(plot.flows, plot.experiment)
    if table is None:
        return
    models = list(pd.unique(table["model"]))
    for model in models:
        stem = "loss_comparison" if len(models) == 1 else f"loss_comparison_{model}"
        yield comparison_figure(table[table["model"] == model].reset_index(drop=True), model, plot.file(stem))


FAMILY = Family("losses", ("loss_comparison",), draw)
