"""Heatmaps: one figure per quantity and parameter combination, ``{quantity}_{TAG}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable

from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.canvas import draw_values
from flowsim.plotting.legend import colorbar, legend_extras
from flowsim.plotting.quantities import NAMES, Quantity, norm_of, prepare, values
from flowsim.plotting.style import decorate, save, single_axes, start_labels


class _Heatmaps:
    """One figure per quantity, reused for every combination: only the data and the title change.

    Axes, ticks, colour bar and legend are built once, which roughly halves the time per file.
    """

    def __init__(self, q: Quantity, norm_cmap, cuts, v_all: np.ndarray) -> None:
        self.q, (self.cmap, self.norm) = q, norm_cmap
        self.fig, self.ax, cax = single_axes(colorbar=q.scale != "status")
        decorate(self.ax, *cuts)
        start_labels(self.ax)
        if q.scale != "status":
            colorbar(self.fig, ScalarMappable(norm=self.norm, cmap=self.cmap), cax, q)
        legend_extras(self.ax, q, v_all)
        self.title = self.ax.set_title("", fontsize=11)
        self.data = None

    def save(self, sub: pd.DataFrame, v: np.ndarray, title: str, path: Path) -> Path:
        if self.data is not None:
            self.data.remove()
        p0 = sub[["p1_0", "p2_0"]].to_numpy(float)
        self.data = draw_values(self.ax, p0, prepare(self.q, v, self.norm), self.cmap, self.norm, width_pt=280)
        self.title.set_text(f"{self.q.title}\n{title}")
        return save(self.fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """Every quantity asked for, for every combination, on the colour scale the combinations share."""
    for q in plot.quantities():
        v_all = values(plot.flows, q.name)
        maps = _Heatmaps(q, norm_of(q, v_all), plot.cuts, v_all)
        for p in plot.panels:
            yield maps.save(p.rows, v_all[p.pos], p.title, plot.file(f"{q.name}_{p.tag}"))


FAMILY = Family("heatmaps", NAMES, draw, models=POLICY_MODELS, per_combination=True)
