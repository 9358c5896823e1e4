"""Trajectories of a network run: ``trajectories``, p_w and p_l over training from one SFT start per
region, one panel per training setting (:mod:`.settings`: GD vs Adam, 1 pair vs 8 pairs, ...).

Read from the rows' ``path`` column (``path_points`` > 0 in the experiment): each row's points
[t, log pi(y_w), log pi(y_l)], with t = lr x steps.  In each panel and region the drawn row is the
start nearest the region's median start; the x axis is the training step (t / lr).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flowsim.experiment.regions import REGIONS
from flowsim.plotting.base import TRAINED, Family, Plot
from flowsim.plotting.facets import _wrapped
from flowsim.plotting.settings import settings, what_ran
from flowsim.plotting.style import PATH_COLOURS, save


def representatives(rows: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """Per region present (in REGIONS order), the row with a recorded path nearest the region's median start."""
    rows = rows[rows["path"].fillna("").astype(str).str.startswith("[")]
    out = []
    for region in REGIONS:
        sub = rows[rows["region"] == region]
        if sub.empty:
            continue
        p0 = sub[["p1_0", "p2_0"]].to_numpy(float)
        out.append((region, sub.iloc[int(np.argmin(np.hypot(*(p0 - np.median(p0, axis=0)).T)))]))
    return out


def _curve(row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(steps, (p_w, p_l) per point) of a row's recorded path."""
    pts = np.asarray(json.loads(row["path"]), dtype=float)
    lr = float(row["lr"]) if "lr" in row.index and pd.notna(row["lr"]) else 1.0
    return pts[:, 0] / lr, np.exp(pts[:, 1:])


def figure(panels: list[tuple[str, pd.DataFrame]], what: str, path: Path) -> Path | None:
    """The panels (title, rows) side by side: p_w solid, p_l dashed, a colour per region."""
    drawn = [(title, representatives(rows)) for title, rows in panels]
    if not any(reps for _, reps in drawn):
        return None
    n = len(drawn)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    side_w, side_h, gap_x, gap_y, left, top, bottom = 3.1, 2.4, 0.45, 0.8, 0.7, 0.95, 1.3
    titles, extra = _wrapped([title for title, _ in drawn], side_w, fontsize=9)  # many axes: long titles
    top, gap_y = top + extra, gap_y + extra
    width = left + ncols * side_w + (ncols - 1) * gap_x + 0.25
    height = bottom + nrows * side_h + (nrows - 1) * gap_y + top
    fig = Figure(figsize=(width, height))
    seen: dict[str, str] = {}
    for k, (title, (_, reps)) in enumerate(zip(titles, drawn, strict=True)):
        r, c = divmod(k, ncols)
        x0, y0 = left + c * (side_w + gap_x), height - top - side_h - r * (side_h + gap_y)
        ax = fig.add_axes((x0 / width, y0 / height, side_w / width, side_h / height))
        for region, row in reps:
            colour = PATH_COLOURS[REGIONS.index(region) % len(PATH_COLOURS)]
            steps, p = _curve(row)
            ax.plot(steps, p[:, 0], color=colour, lw=1.6)
            ax.plot(steps, p[:, 1], color=colour, lw=1.4, ls="--")
            seen.setdefault(region, colour)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=0)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7.5)
        ax.grid(alpha=0.3, lw=0.5)
        if c == 0:
            ax.set_ylabel("probability", fontsize=8.5)
        ax.set_xlabel("training step", fontsize=8.5)
    handles = [
        Line2D([], [], color="k", lw=1.6, label="p_w = π(y_w|x)"),
        Line2D([], [], color="k", lw=1.4, ls="--", label="p_l = π(y_l|x)"),
    ]
    handles += [Line2D([], [], color=col, lw=3, label=f"start in {reg}") for reg, col in seen.items()]
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.05 / height),
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
        handlelength=2.0,
        columnspacing=1.2,
    )
    fig.suptitle(
        f"p_w and p_l over {what} training, from one SFT start per region (the pair nearest the region's "
        "median start); a panel per setting",
        fontsize=10.5,
        y=1 - 0.25 / height,
        wrap=True,
    )
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """One figure of every setting's trajectories (none without a recorded ``path`` column)."""
    if "path" not in plot.flows.columns:
        return
    out = figure([(t, rows) for t, rows, _ in settings(plot)], what_ran(plot), plot.file("trajectories"))
    if out is not None:
        yield out


FAMILY = Family("trajectories", ("trajectories",), draw, models=TRAINED)
