"""Figures only: heatmaps, facets, basins, paths, overlays (one module per family, registered in
:mod:`.registry`, sharing :mod:`.style`) and the paper's Figure 1 (:mod:`.field`).

The only flowsim package that imports matplotlib.  It draws on :class:`matplotlib.figure.Figure`
objects and saves them with ``Figure.savefig``, so it needs no pyplot and never switches the
user's backend.  Nothing here integrates a flow: the paths to draw are data handed in by the caller.
"""

from flowsim.plotting.field import plot_field
from flowsim.plotting.paths import PathData
from flowsim.plotting.registry import FAMILIES, KINDS
from flowsim.plotting.results import plot_results
from flowsim.plotting.titles import group_key

__all__ = ["FAMILIES", "KINDS", "PathData", "group_key", "plot_field", "plot_results"]
