"""Region and feasibility labels for initial conditions in the (p1, p2) square.

The paper reads its Figure 1(b) by corners and sides: top-left (low x1, high x2), top-right
(both high), bottom (low x2), lower-left (both low), left side, lower-right.  Here that is
a 3 x 3 partition of the square of policy probabilities, p1 = pi(y_w|x) horizontal and
p2 = pi(y_l|x) vertical as in the figure, with cut points that default to thirds:

    top-left      top      top-right
    left          center   right
    bottom-left   bottom   bottom-right

A point on a cut belongs to the upper cell.  ``feasible`` marks p1 + p2 <= 1: two different
responses cannot together have more than all the probability, so the square's upper-right
triangle holds points no model can be at.
"""

from __future__ import annotations

import numpy as np

from flowsim._validation import ParamError, check_points, check_real

ROWS = ("bottom", "middle", "top")
COLS = ("left", "center", "right")
#: Region names, row by row from the top, as they sit in the figure.
REGIONS: tuple[str, ...] = tuple(
    "center" if (r, c) == ("middle", "center") else r if c == "center" else c if r == "middle" else f"{r}-{c}"
    for r in reversed(ROWS)
    for c in COLS
)
DEFAULT_CUTS: tuple[float, float] = (1 / 3, 2 / 3)


def check_cuts(name: str, cuts: object) -> tuple[float, float]:
    """Two increasing cut points strictly inside (0, 1)."""
    rule = "must be two numbers 0 < a < b < 1"
    try:
        lo, hi = (check_real(name, c) for c in cuts)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ParamError(name, rule, cuts) from None
    if not 0 < lo < hi < 1:
        raise ParamError(name, rule, cuts)
    return lo, hi


def region_index(p: object, p1_cuts=DEFAULT_CUTS, p2_cuts=DEFAULT_CUTS) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) indices in 0..2 of points ``p`` of shape (..., 2): row 0 is the bottom."""
    p = check_points("p", p)
    col = np.searchsorted(check_cuts("p1_cuts", p1_cuts), p[..., 0], side="right")
    row = np.searchsorted(check_cuts("p2_cuts", p2_cuts), p[..., 1], side="right")
    return row, col


def region_labels(p: object, p1_cuts=DEFAULT_CUTS, p2_cuts=DEFAULT_CUTS) -> np.ndarray:
    """Region names (see :data:`REGIONS`) of points ``p`` = (p1, p2), shape (..., 2).

    Examples
    --------
    >>> region_labels([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1], [0.5, 0.05]]).tolist()
    ['top-left', 'center', 'bottom-right', 'bottom']
    """
    row, col = region_index(p, p1_cuts, p2_cuts)
    grid = np.array(REGIONS, dtype=object).reshape(3, 3)[::-1]  # grid[row][col], row 0 at the bottom
    return grid[row, col]


def feasible(p: object) -> np.ndarray:
    """Whether p1 + p2 <= 1 (with a tolerance of 1e-12 for points on the diagonal)."""
    p = check_points("p", p)
    return p[..., 0] + p[..., 1] <= 1.0 + 1e-12
