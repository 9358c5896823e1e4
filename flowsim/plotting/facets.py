"""Facets: one figure per quantity, ``facet_{quantity}``, a panel per combination on a shared scale."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.canvas import draw_values
from flowsim.plotting.legend import colorbar, extra_handles
from flowsim.plotting.quantities import NAMES, Quantity, norm_of, prepare, values
from flowsim.plotting.settings import what_ran
from flowsim.plotting.style import decorate, hatch_patch, save
from flowsim.plotting.titles import panel_title

#: Points per character of DejaVu Sans, on average over the titles' text, per point of font size.
EM_PER_CHAR = 0.55


def _text_width(text: str, fontsize: float) -> float:
    """About how wide a line of ``text`` is, in inches."""
    return len(text) * fontsize * EM_PER_CHAR / 72


def _wrapped(titles: list[str], side: float, fontsize: float = 8.5) -> tuple[list[str], float]:
    """Panel titles wrapped to the panel's width, and the height in inches their extra lines take."""
    chars = max(20, int(side * 72 / (fontsize * EM_PER_CHAR)))
    out = [textwrap.fill(t, chars, break_long_words=False) for t in titles]
    lines = max(t.count("\n") + 1 for t in out)
    return out, (lines - 1) * fontsize * 1.2 / 72


def facet(
    q: Quantity,
    groups: list[tuple[str, pd.DataFrame, np.ndarray]],
    norm_cmap,
    cuts,
    path: Path,
    draw=draw_values,
    suptitle: str | None = None,
    names_once: bool = False,
) -> Path:
    """One panel per group (title, rows, values) on a shared scale; ``draw(ax, p0, v, cmap, norm, width_pt)``
    puts the values over the starts (a heatmap by default) and returns the mappable.  ``names_once``:
    the region names in the first panel only and p2 tick labels in the first column only (text is
    most of a figure's drawing time)."""
    cmap, norm = norm_cmap
    n = len(groups)
    ncols = n if n <= 5 else min(5, math.ceil(math.sqrt(1.5 * n)))
    nrows = math.ceil(n / ncols)
    side, gap_x, gap_y, left, right, top, bottom = 2.8, 0.45, 0.75, 0.75, 1.5, 0.85, 0.6
    extras = [] if q.scale == "status" else extra_handles(q, np.concatenate([v for _, _, v in groups]))
    bottom += 0.35 if extras else 0.0  # a row of legend entries under the panels
    if q.scale == "status":  # a legend of named categories needs room for its longest name
        right = max(right, 0.6 + 0.075 * max(len(name) for name in [*dict(q.colours), "p1 + p2 > 1 (infeasible)"]))
    titles, extra = _wrapped([title for title, _, _ in groups], side)
    top, gap_y = top + extra, gap_y + extra  # room for panel titles of several lines
    suptitle = suptitle or f"{q.title}: across the parameter combinations (shared scale)"
    width = left + ncols * side + (ncols - 1) * gap_x + right
    wider = max(0.0, _text_width(suptitle, 12) + 0.4 - width)  # a single panel is narrower than its title
    left, right, width = left + wider / 2, right + wider / 2, width + wider
    height = bottom + nrows * side + (nrows - 1) * gap_y + top
    fig = Figure(figsize=(width, height))
    m = None
    for k, (title, (_, sub, v)) in enumerate(zip(titles, groups, strict=True)):
        r, c = divmod(k, ncols)
        x0, y0 = left + c * (side + gap_x), height - top - side - r * (side + gap_y)
        ax = fig.add_axes((x0 / width, y0 / height, side / width, side / height))
        m = draw(ax, sub[["p1_0", "p2_0"]].to_numpy(float), prepare(q, v, norm), cmap, norm, width_pt=200)
        decorate(ax, *cuts, fontsize=5.5, names=not (names_once and k))
        ax.set_title(title, fontsize=8.5)
        ax.tick_params(labelsize=7.5, labelleft=c == 0 or not names_once)
        if c == 0:
            ax.set_ylabel("p2_0 = π(y_l|x)", fontsize=8.5)
        if r == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("p1_0 = π(y_w|x)", fontsize=8.5)
    fig.suptitle(suptitle, fontsize=12, y=1 - 0.2 / height)
    x_bar = (width - right + 0.35) / width
    if q.scale == "status":
        allv = np.concatenate([v for _, _, v in groups])
        present = [Patch(fc=c, label=s) for i, (s, c) in enumerate(q.colours) if np.any(allv == i)]
        present.append(hatch_patch())
        fig.legend(
            handles=present, loc="center left", bbox_to_anchor=(x_bar - 0.1 / width, 0.5), fontsize=8.5, frameon=False
        )
    else:
        h = min(side * 0.9, height - top - bottom)
        cax = fig.add_axes((x_bar, (bottom + (height - top - bottom - h) / 2) / height, 0.15 / width, h / height))
        colorbar(fig, m, cax, q, fontsize=8.5)
        fig.legend(
            handles=extras,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.08 / height),
            ncol=len(extras),
            fontsize=8.5,
            frameon=False,
            handlelength=1.4,
            columnspacing=1.2,
        )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """For every quantity asked for, its facet across the combinations."""
    for q in plot.quantities():
        v_all = values(plot.flows, q.name)
        panels = [(panel_title(plot.flows, plot.params, p.key, p.rows), p.rows, v_all[p.pos]) for p in plot.panels]
        title = f"{q.title}: {what_ran(plot, model=True)}, a panel per combination (shared scale)"
        yield facet(q, panels, norm_of(q, v_all), plot.cuts, plot.file(f"facet_{q.name}"), suptitle=title)


FAMILY = Family("facets", NAMES, draw, models=POLICY_MODELS)
