"""The figure families, one module each, and their registry.

A family module defines ``FAMILY``, a :class:`flowsim.plotting.base.Family`: its name, the
``kinds`` that select it and ``draw(plot)``, which writes its files and yields their paths.
A new figure is one new module here and one line in :data:`MODULES`; ``flowsim plot``
draws every registered family that applies to the table's model (its ``models``).

Which families apply where each family declares (``Family.models``), not inferred from the rows.  The policy models
(ratio, logits, features) start from a grid of (p1_0, p2_0) and have a field to integrate from
any start: heatmaps, facets, basins and the paths from the region centres are theirs.  A
network's starts are wherever its SFT stage left each pair (scattered, off any grid, several
pairs per training) and it has no Policy to integrate from a region centre: it gets maps of its
starts as points coloured by the quantity, and its recorded trajectories over training.

>>> [f.name for f in FAMILIES]
['heatmaps', 'facets', 'basins', 'paths', 'paths_all', 'overlays', 'losses', 'starts', 'trajectories', 'displacement']
>>> [f.name for f in families_for(["network"])]
['losses', 'starts', 'trajectories', 'displacement']
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module

from flowsim.plotting.base import Family

#: The family modules, in the order their files are written; a leading dot: in this package.
MODULES: tuple[str, ...] = (
    ".heatmaps",
    ".facets",
    ".basins",
    ".paths",
    ".paths_all",
    ".overlays",
    ".losses",
    ".starts",
    ".trajectories",
    ".displacement",
)


def register(modules: Iterable[str]) -> tuple[Family, ...]:
    """The ``FAMILY`` of each module, in the order given; ValueError if one lacks it or a name repeats."""
    out: list[Family] = []
    for name in modules:
        family = getattr(import_module(name, "flowsim.plotting"), "FAMILY", None)
        if not isinstance(family, Family):
            raise ValueError(f"figure module {name} must define FAMILY, a flowsim.plotting.base.Family")
        if family.name in {f.name for f in out}:
            raise ValueError(f"figure module {name}: the name {family.name!r} is taken already")
        out.append(family)
    return tuple(out)


def kinds_of(families: Iterable[Family]) -> tuple[str, ...]:
    """The figure kinds the families answer to, each once, in order."""
    return tuple(dict.fromkeys(k for f in families for k in f.kinds))


def families_for(models: Iterable[str], families: Iterable[Family] | None = None) -> tuple[Family, ...]:
    """The families (registered ones by default) that apply to any of ``models`` (each family's ``models``)."""
    models = set(models)
    pool = FAMILIES if families is None else tuple(families)
    return tuple(f for f in pool if f.models is None or models & set(f.models))


#: Every registered family.
FAMILIES: tuple[Family, ...] = register(MODULES)
#: Figure kinds plot_results can write: the quantities (each a heatmap per combination and a
#: facet), then "basin" and "paths".
KINDS: tuple[str, ...] = kinds_of(FAMILIES)
