"""Numeric pieces the claims' measurements share: shares, medians, ratios, finite differences.

Each is a small pure function of arrays; NaN stands for "no evidence" (an empty selection,
a ratio with a zero or infinite side), and the rules read NaN as not meeting any bound.
"""

from __future__ import annotations

import numpy as np

from flowsim.analysis.verdicts import NotApplicable, fmt
from flowsim.model.objective import Objective

#: At most this many points go into the finite-difference checks (C1, C2).
MAX_FD_POINTS = 20_000


def share_of(mask: np.ndarray, sel: np.ndarray | None = None) -> float:
    """The share of True in ``mask`` (within ``sel``), NaN if nothing is selected."""
    m = mask if sel is None else mask[sel]
    return float(m.mean()) if m.size else float("nan")


def median_of(a: np.ndarray) -> float:
    """The median of the non-NaN values, NaN if there are none."""
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else float("nan")


def ratio_of(a: float, b: float) -> float:
    """a / b, NaN unless both are finite and b is nonzero."""
    return a / b if np.isfinite(a) and np.isfinite(b) and b != 0 else float("nan")


def span(med: dict[str, float]) -> str:
    """'from a (region) to b (region)' for a dict of region medians."""
    if not med:
        return "n/a (no finished flows)"
    lo, hi = min(med, key=med.__getitem__), max(med, key=med.__getitem__)
    return f"from {fmt(med[lo])} ({lo}) to {fmt(med[hi])} ({hi})"


def subsample(pts: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows of ``pts``, evenly spaced (deterministic)."""
    return pts if len(pts) <= n else pts[np.linspace(0, len(pts) - 1, n).astype(np.int64)]


def central_difference(f, x: np.ndarray, rel_step: float = 2.0**-17) -> np.ndarray:
    """Gradient of a scalar field ``f`` at points ``x`` (n, 2) by central differences.

    The step is ``rel_step`` times each coordinate (about eps^(1/3)), and the difference
    quotient uses the step as actually represented, (x + h) - (x - h).
    """
    out = np.empty_like(x)
    for i in range(2):
        xp, xm = x.copy(), x.copy()
        xp[:, i] += rel_step * x[:, i]
        xm[:, i] -= rel_step * x[:, i]
        out[:, i] = (f(xp) - f(xm)) / (xp[:, i] - xm[:, i])
    return out


def rel_dev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / |b|, 0 where both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(a - b) / np.abs(b)
    return np.where(a == b, 0.0, r)


def fd_step(beta: float) -> float:
    """The relative step of the finite differences: about eps^(1/3), shrunk by beta > 1, since
    L varies on the scale of 1/beta in log x."""
    return 2.0**-17 / max(1.0, beta)


def representable(loss: Objective, pts: np.ndarray) -> tuple[np.ndarray, int]:
    """At most MAX_FD_POINTS of ``pts`` where both components of grad L are finite and nonzero
    (elsewhere, e.g. at beta = 1e6, the gradient under- or overflows and no identity can be
    checked), and how many were left out; NotApplicable if none is left."""
    with np.errstate(all="ignore"):
        g = loss.grad(pts)
    keep = np.all(np.isfinite(g) & (g != 0), axis=1)
    if not keep.any():
        raise NotApplicable(f"the gradient under- or overflows at all {len(pts)} points: nothing to check")
    return subsample(pts[keep], MAX_FD_POINTS), int((~keep).sum())


def checkable(loss: Objective, pts: np.ndarray, beta: float, n_under: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(points, central differences there, points left out): the points where the finite
    differences of L are finite and nonzero (where L itself underflows they are 0)."""
    with np.errstate(all="ignore"):
        fd = central_difference(loss.value, pts, fd_step(beta))
    keep = np.all(np.isfinite(fd) & (fd != 0), axis=1)
    if not keep.any():
        raise NotApplicable(f"L under- or overflows at all {len(pts)} points: nothing to check")
    return pts[keep], fd[keep], n_under + int((~keep).sum())
