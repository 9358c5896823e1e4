"""Maps of a network run's starts: ``starts_{quantity}``, each pair's SFT start as a point coloured by
the quantity, one panel per training setting (:mod:`.settings`) on a shared scale.

A network's starts are wherever its SFT stage left each pair, off any grid (and p1_0 + p2_0 < 1
always, the model normalises), so they are drawn as points, not as the cells of a heatmap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flowsim.plotting.base import TRAINED, Family, Plot
from flowsim.plotting.facets import facet
from flowsim.plotting.quantities import NAMES, norm_of, values
from flowsim.plotting.settings import settings, what_ran


def scatter(ax, p0: np.ndarray, v: np.ndarray, cmap, norm, width_pt: float):
    """Each start a dot in the quantity's colour (NaN: the map's "bad" colour), outlined so light ones show."""
    return ax.scatter(
        p0[:, 0],
        p0[:, 1],
        c=v,
        cmap=cmap,
        norm=norm,
        s=22,
        edgecolors="k",
        linewidths=0.35,
        plotnonfinite=True,
        zorder=2.5,
        clip_on=False,
    )


def draw(plot: Plot) -> Iterator[Path]:
    """For every quantity asked for, the starts of every setting, coloured by it."""
    groups = settings(plot)
    note = f" ({what_ran(plot)}; a panel per setting)"
    for q in plot.quantities():
        v_all = values(plot.flows, q.name)
        panels = [(title, rows, v_all[pos]) for title, rows, pos in groups]
        yield facet(
            q,
            panels,
            norm_of(q, v_all),
            plot.cuts,
            plot.file(f"starts_{q.name}"),
            draw=scatter,
            suptitle=f"{q.title}, at each pair's SFT start{note}",
            names_once=True,
        )


FAMILY = Family("starts", NAMES, draw, models=TRAINED)
