"""Grids of starts, the SFT models (p_w0, p_l0) a sweep runs from, and of swept parameters.

``kind = "mesh"``: the Cartesian product of two axes (p1 outer, p2 inner).
``kind = "sobol"`` / ``"random"``: ``n`` points in [low, high]^2 from a scrambled Sobol
sequence (``scipy.stats.qmc``) or a uniform generator, seeded by ``seed``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

    def points(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The initial probabilities of the grid's points lo..hi-1 (default: all), shape (hi - lo, 2).

        Any slice is made on its own, equal to the same rows of the whole grid, so a sweep
        makes each chunk's points when it needs them (memory does not grow with the grid):
        a mesh by index arithmetic, a Sobol sequence by ``fast_forward``, the uniform
        generator by advancing its PCG64 stream (two 64-bit draws per point).
        """
        n = len(self)
        hi = n if hi is None else min(hi, n)
        if self.kind == "mesh":
            assert self.p1 is not None and self.p2 is not None
            i = np.arange(lo, hi)
            return np.stack([self.p1.values()[i // self.p2.num], self.p2.values()[i % self.p2.num]], -1)
        if self.kind == "sobol":
            import warnings

            from scipy.stats import qmc  # imported here: scipy.stats is slow to import

            sobol = qmc.Sobol(d=2, scramble=True, seed=self.seed)
            if lo:
                sobol.fast_forward(lo)
            with warnings.catch_warnings():  # a slice of the sequence need not be a power of 2 long
                warnings.simplefilter("ignore", UserWarning)
                u = sobol.random(hi - lo)
        else:
            rng = np.random.default_rng(self.seed)
            rng.bit_generator.advance(2 * lo)
            u = rng.random((hi - lo, 2))
        return self.low + (self.high - self.low) * u

    def points_at(self, index: np.ndarray) -> np.ndarray:
        """The points at the (increasing) grid indices ``index``, shape (len(index), 2)."""
        if len(index) == 0:
            return np.empty((0, 2))
        lo = int(index[0])
        return self.points(lo, int(index[-1]) + 1)[index - lo]

    def __len__(self) -> int:
        return self.p1.num * self.p2.num if self.kind == "mesh" else self.n  # type: ignore[union-attr]

    def as_dict(self) -> dict:
        """The grid in the experiment file's shape."""
        from dataclasses import asdict

        if self.kind == "mesh":
            return {"kind": "mesh", "p1": asdict(self.p1), "p2": asdict(self.p2)}  # type: ignore[arg-type]
        return {"kind": self.kind, "n": self.n, "seed": self.seed, "low": self.low, "high": self.high}


def product(params: Mapping[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of swept values (name -> values), the first name outermost.

    >>> product({"a": (1, 2), "b": ("x",)})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    return [dict(zip(params, combo, strict=True)) for combo in itertools.product(*params.values())]
