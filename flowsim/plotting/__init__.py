"""Figures only: heatmaps, facets, basins, paths and the paper's Figure 1 (:mod:`.figures`).

Nothing here integrates a flow: the paths to draw are data handed in by the caller.
"""

from flowsim.plotting.figures import KINDS, PathData, group_key, plot_field, plot_results

__all__ = ["KINDS", "PathData", "group_key", "plot_field", "plot_results"]
