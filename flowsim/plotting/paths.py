"""Paths: per combination with drawn flows, ``paths_{TAG}``: the flows from the region centres."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib.patheffects as pe
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from flowsim.experiment.regions import REGIONS
from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.field import streamlines
from flowsim.plotting.style import PATH_COLOURS, decorate, hatch_patch, save, single_axes


@dataclass(frozen=True)
class PathData:
    """One drawn flow, in probabilities: start, path (n, 2) of (p_w, p_l), stop, time, status."""

    start: np.ndarray
    path: np.ndarray | None
    final: np.ndarray
    t_stop: float
    status: str
    region: str = ""
    #: Why the start has no path at all (e.g. a region centre a normalised model cannot start from).
    note: str = ""


#: How a start without a path is drawn: hollow, grey-edged, so it does not read as a flow's start.
NO_PATH = {"marker": "o", "ms": 7, "mfc": "none", "mec": "0.35", "mew": 1.2, "ls": ""}


def no_path_handle(notes: list[str]) -> Line2D:
    """The legend entry of the starts without a path, with their reason(s), wrapped to stay narrow."""
    text = textwrap.fill(f"no path: {'; '.join(dict.fromkeys(notes))}", 42)
    return Line2D([], [], **NO_PATH, label=text)


def paths_figure(kw: dict, rows: pd.DataFrame, title: str, paths: list[PathData], cuts, path: Path) -> Path:
    """Flows from the region centres, in probabilities (over DPO's streamlines on the ratio plane)."""
    first = rows.iloc[0]
    field = (
        str(first["reference"]) in ("fixed", "none")
        and first.get("model", "ratio") == "ratio"
        and first.get("loss", "dpo") == "dpo"
        and "beta" in kw
    )
    kw = {"ref_w": float(first["ref_w"]), "ref_l": float(first["ref_l"]), **kw}
    fig, ax, cax = single_axes(width=6.2, height=6.25, colorbar=field, bottom=1.6)
    if field:
        streamlines(fig, ax, cax, float(kw["beta"]), float(kw["ref_w"]), float(kw["ref_l"]))
    handles = []
    for r in paths:
        k = REGIONS.index(r.region) if r.region in REGIONS else 0
        name = r.region or "start"
        colour = PATH_COLOURS[k % len(PATH_COLOURS)]
        if r.note:
            ax.plot(*r.start, **NO_PATH)
            handles.append(Line2D([], [], **NO_PATH, label=f"{name}: no path ({r.note})"))
            continue
        if r.path is not None:
            ax.plot(
                r.path[:, 0],
                r.path[:, 1],
                color=colour,
                lw=2.0,
                path_effects=[pe.withStroke(linewidth=3.4, foreground="w")],
            )
        ax.plot(*r.start, "o", color=colour, ms=6, mec="k", mew=0.6)
        ax.plot(*r.final, "X", color=colour, ms=8, mec="k", mew=0.6)
        label = f"{name}: p1 {r.start[0]:.2f}→{r.final[0]:.2f}, t={r.t_stop:.3g}" + (
            "" if r.status == "converged" else f" ({r.status})"
        )
        handles.append(Line2D([], [], color=colour, lw=2, marker="o", mec="k", label=label))
    handles.append(hatch_patch("p1 + p2 > 1: outside the simplex"))
    decorate(ax, *cuts, names=False)
    ax.set_xlabel("p1 = π(y_w|x)", fontsize=9.5)
    ax.set_ylabel("p2 = π(y_l|x)", fontsize=9.5)
    ax.set_title(f"Flows from the region centres (o start, X stop; converged unless noted)\n{title}", fontsize=10.5)
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=2,
        fontsize=7,
        frameon=False,
        handlelength=1.8,
        columnspacing=0.8,
    )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """The paths figure of every combination the caller drew flows for."""
    for p in plot.panels:
        if plot.paths and p.key in plot.paths:
            kw = dict(zip(plot.params, p.key, strict=True))
            yield paths_figure(kw, p.rows, p.title, plot.paths[p.key], plot.cuts, plot.file(f"paths_{p.tag}"))


FAMILY = Family("paths", ("paths",), draw, models=POLICY_MODELS, per_combination=True)
