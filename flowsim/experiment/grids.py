"""Grids of starts: the SFT models (p_w0, p_l0) a sweep runs from.

``kind = "mesh"``: the Cartesian product of two axes (p1 outer, p2 inner).
``kind = "sobol"`` / ``"random"``: ``n`` points in [low, high]^2 from a scrambled Sobol
sequence (``scipy.stats.qmc``) or a uniform generator, seeded by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_KINDS = ("mesh", "sobol", "random")


@dataclass(frozen=True)
class Axis:
    """One axis of a mesh grid: ``num`` points from ``start`` to ``stop`` (both in (0, 1])."""

    start: float
    stop: float
    num: int
    spacing: str = "linear"

    def values(self) -> np.ndarray:
        make = np.geomspace if self.spacing == "log" else np.linspace
        return make(self.start, self.stop, self.num)


@dataclass(frozen=True)
class Grid:
    """Initial conditions in policy probabilities (p1, p2); see the module docstring."""

    kind: str = "mesh"
    p1: Axis | None = None
    p2: Axis | None = None
    n: int = 0
    seed: int = 0
    low: float = 0.01
    high: float = 1.0

    def points(self) -> np.ndarray:
        """The initial probabilities, shape (n, 2)."""
        if self.kind == "mesh":
            assert self.p1 is not None and self.p2 is not None
            g1, g2 = np.meshgrid(self.p1.values(), self.p2.values(), indexing="ij")
            return np.stack([g1.ravel(), g2.ravel()], -1)
        if self.kind == "sobol":
            from scipy.stats import qmc  # imported here: scipy.stats is slow to import

            u = qmc.Sobol(d=2, scramble=True, seed=self.seed).random(self.n)
        else:
            u = np.random.default_rng(self.seed).random((self.n, 2))
        return self.low + (self.high - self.low) * u

    def __len__(self) -> int:
        return self.p1.num * self.p2.num if self.kind == "mesh" else self.n  # type: ignore[union-attr]

    def as_dict(self) -> dict:
        """The grid in the experiment file's shape."""
        from dataclasses import asdict

        if self.kind == "mesh":
            return {"kind": "mesh", "p1": asdict(self.p1), "p2": asdict(self.p2)}  # type: ignore[arg-type]
        return {"kind": self.kind, "n": self.n, "seed": self.seed, "low": self.low, "high": self.high}
