"""A quantity drawn over the starts (p1_0, p2_0): cell by cell on a mesh, else as squares.

Grids are detected: a full Cartesian mesh (linear or log spaced) is drawn cell by cell,
any other set of points (Sobol, random) as a scatter of squares sized to tile the square.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Rectangle


def mesh_of(p1: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(p1 cell edges, p2 cell edges, column index, row index) if the points form a full mesh, else None."""
    u1, i1 = np.unique(p1, return_inverse=True)
    u2, i2 = np.unique(p2, return_inverse=True)
    if len(u1) < 2 or len(u2) < 2 or len(u1) * len(u2) != len(p1):
        return None
    if len(np.unique(i2 * len(u1) + i1)) != len(p1):
        return None

    def edges(u: np.ndarray) -> np.ndarray:
        mid = (u[:-1] + u[1:]) / 2
        return np.concatenate([[2 * u[0] - mid[0]], mid, [2 * u[-1] - mid[-1]]])

    return edges(u1), edges(u2), i1, i2


def draw_values(ax, p0: np.ndarray, v: np.ndarray, cmap, norm, width_pt: float):
    """A heatmap of ``v`` over the initial points ``p0`` (n, 2); returns the mappable."""
    m = mesh_of(p0[:, 0], p0[:, 1])
    if m is not None:
        e1, e2, i1, i2 = m
        grid = np.full((len(e2) - 1, len(e1) - 1), np.nan)
        grid[i2, i1] = v
        return ax.pcolormesh(
            e1, e2, np.ma.masked_invalid(grid), cmap=cmap, norm=norm, shading="flat", rasterized=True, zorder=0.5
        )
    side = width_pt / math.sqrt(max(len(v), 1)) * 1.9  # squares overlap enough to hide the gaps of a random set
    dots = ax.scatter(
        p0[:, 0],
        p0[:, 1],
        c=v,
        cmap=cmap,
        norm=norm,
        s=side**2,
        marker="s",
        linewidths=0,
        plotnonfinite=True,
        rasterized=True,
        zorder=0.5,
    )
    # the squares of points near the edge would spill past the sampled square: clip them to the starts' extent
    (lo1, lo2), (hi1, hi2) = p0.min(axis=0), p0.max(axis=0)
    if hi1 > lo1 and hi2 > lo2:
        dots.set_clip_path(Rectangle((lo1, lo2), hi1 - lo1, hi2 - lo2, transform=ax.transData))
    return dots
