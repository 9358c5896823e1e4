"""Paths of every combination in one figure: ``paths_all``, a panel per combination (same layout as the facets).

The default set's picture of the dynamics: the flows from the region centres, coloured by region,
side by side for every combination, where ``paths_{TAG}`` (a file per combination) is asked for
with ``every``.  A start that has no path says why (:data:`~flowsim.plotting.paths.NO_PATH`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flowsim.experiment.regions import REGIONS
from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.facets import _wrapped
from flowsim.plotting.paths import NO_PATH, PathData, no_path_handle
from flowsim.plotting.settings import what_ran
from flowsim.plotting.style import PATH_COLOURS, decorate, hatch_patch, save
from flowsim.plotting.titles import panel_title


def _panel(ax, paths: list[PathData]) -> None:
    for r in paths:
        if r.note:
            ax.plot(*r.start, **NO_PATH)
            continue
        colour = PATH_COLOURS[REGIONS.index(r.region) % len(PATH_COLOURS)] if r.region in REGIONS else "k"
        if r.path is not None:
            ax.plot(r.path[:, 0], r.path[:, 1], color=colour, lw=1.5)
        ax.plot(*r.start, "o", color=colour, ms=4, mec="k", mew=0.5)
        ax.plot(*r.final, "X", color=colour, ms=5.5, mec="k", mew=0.5)


def paths_all(panels: list[tuple[str, list[PathData]]], what: str, cuts, path: Path) -> Path:
    """The panels (title, paths) in rows of at most five, with one legend of the regions."""
    n = len(panels)
    ncols = n if n <= 5 else min(5, math.ceil(math.sqrt(1.5 * n)))
    nrows = math.ceil(n / ncols)
    side, gap_x, gap_y, left, top, bottom = 2.6, 0.45, 0.75, 0.7, 0.85, 1.1
    titles, extra = _wrapped([t for t, _ in panels], side)
    top, gap_y = top + extra, gap_y + extra
    width = left + ncols * side + (ncols - 1) * gap_x + 0.3
    height = bottom + nrows * side + (nrows - 1) * gap_y + top
    fig = Figure(figsize=(width, height))
    for k, (title, (_, paths)) in enumerate(zip(titles, panels, strict=True)):
        r, c = divmod(k, ncols)
        x0, y0 = left + c * (side + gap_x), height - top - side - r * (side + gap_y)
        ax = fig.add_axes((x0 / width, y0 / height, side / width, side / height))
        decorate(ax, *cuts, names=False)
        _panel(ax, paths)
        ax.set_title(title, fontsize=8.5)
        ax.tick_params(labelsize=7.5, labelleft=c == 0)
        if c == 0:
            ax.set_ylabel("p2 = π(y_l|x)", fontsize=8.5)
        if r == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("p1 = π(y_w|x)", fontsize=8.5)
    everything = [p for _, ps in panels for p in ps]
    regions = [r for r in REGIONS if any(p.region == r and not p.note for p in everything)]
    handles = [Line2D([], [], color=PATH_COLOURS[REGIONS.index(r) % len(PATH_COLOURS)], lw=2, label=r) for r in regions]
    handles += [
        Line2D([], [], ls="", marker="o", color="w", mec="k", label="start"),
        Line2D([], [], ls="", marker="X", color="w", mec="k", label="stop"),
        hatch_patch(),
    ]
    notes = [p.note for p in everything if p.note]
    if notes:
        handles.append(no_path_handle(notes))
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.05 / height),
        ncol=min(6, len(handles)),
        fontsize=7.5,
        frameon=False,
        handlelength=1.6,
        columnspacing=1.0,
    )
    fig.suptitle(
        f"{what}: flows from the region centres (colour: the start's region), a panel per combination",
        fontsize=11,
        y=1 - 0.2 / height,
        wrap=True,
    )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """One figure of the paths of every combination that has them (none for a single combination)."""
    if not plot.paths or len(plot.panels) < 2:
        return
    panels = [
        (panel_title(plot.flows, plot.params, p.key, p.rows), plot.paths[p.key])
        for p in plot.panels
        if p.key in plot.paths
    ]
    if panels:
        yield paths_all(panels, what_ran(plot, model=True), plot.cuts, plot.file("paths_all"))


FAMILY = Family("paths_all", ("paths",), draw, models=POLICY_MODELS)
