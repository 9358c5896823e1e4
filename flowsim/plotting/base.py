"""What a figure family is, and what it is handed: the flows, their groups, the options.

A :class:`Family` draws one kind of figure (heatmaps, facets, basins, ...): its ``kinds``
are the names that select it in ``plot_results(kinds=...)``, and ``draw(plot)`` writes its
files for a :class:`Plot` and yields each path as it is written.  The families are
registered in :mod:`flowsim.plotting.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.dynamics.record import StopRule
from flowsim.model.parameterisations import MODELS
from flowsim.plotting.quantities import NEEDS, Quantity, quantities
from flowsim.plotting.titles import group_key, param_text, shown, tag_of


@dataclass(frozen=True)
class Panel:
    """One parameter combination: its key, its rows' positions in the table, its rows, title and file tag."""

    key: tuple
    pos: np.ndarray
    rows: pd.DataFrame
    title: str
    tag: str


@dataclass(frozen=True)
class Plot:
    """A flows table to draw: its parameter columns, one :class:`Panel` per combination, the figure
    kinds asked for, the region cuts, the stop rule, the format, the output folder and the paths."""

    flows: pd.DataFrame
    params: list[str]
    panels: list[Panel]
    kinds: frozenset[str]
    cuts: tuple[tuple[float, float], tuple[float, float]]
    stop: StopRule
    fmt: str
    outdir: Path
    paths: dict | None = None
    #: Whether the per-combination files are asked for (always drawn for a single combination).
    every: bool = False
    #: The experiment the rows were made with (None: unknown), for what a model declares of a loss.
    experiment: object = None

    def file(self, stem: str) -> Path:
        """The path of a figure file named ``stem`` in the output folder."""
        return self.outdir / f"{stem}.{self.fmt}"

    def quantities(self) -> list[Quantity]:
        """The quantities asked for whose columns the table has (tables made before some lack them)."""
        return [q for q in quantities(self.stop) if q.name in self.kinds and NEEDS.get(q.name, "p1_0") in self.flows]


def panels_of(flows: pd.DataFrame, params: list[str]) -> list[Panel]:
    """The combinations of ``params`` in ``flows``, sorted, each with its title and file tag."""
    out = []
    for key, pos in flows.groupby(params, sort=True, dropna=False).indices.items():
        key = group_key(key)
        reference = str(flows["reference"].iloc[pos[0]])
        named = shown(flows, params)
        out.append(
            Panel(
                key,
                pos,
                flows.iloc[pos],
                param_text(params, key, reference, named),
                tag_of(params, key, reference, named),
            )
        )
    return out


#: The models whose starts lie on a grid and whose field can be integrated from any start (derived).
POLICY_MODELS: tuple[str, ...] = tuple(k for k, cls in MODELS.items() if cls.policy_of_starts)
#: The other models: starts wherever SFT left each pair, trajectories recorded in the rows (derived).
TRAINED: tuple[str, ...] = tuple(k for k, cls in MODELS.items() if not cls.policy_of_starts)


@dataclass(frozen=True)
class Family:
    """A kind of figure: its name, the ``kinds`` that select it, ``draw(plot) -> iterator of paths``,
    the ``models`` whose tables it is drawn for (None: every model), and whether it writes a file
    per combination (``per_combination``: left out of the default set when there are several)."""

    name: str
    kinds: tuple[str, ...]
    draw: Callable[[Plot], Iterator[Path]]
    models: tuple[str, ...] | None = None
    #: A file per parameter combination: drawn only when asked (``Plot.every``) or for a single combination.
    per_combination: bool = False

    def __post_init__(self) -> None:
        if not self.kinds or not all(isinstance(k, str) and k for k in self.kinds):
            raise ValueError(f"figure family {self.name}: kinds must be a non-empty tuple of names; got {self.kinds!r}")
        if not callable(self.draw):
            raise ValueError(f"figure family {self.name}: draw must be a callable")
