"""The figure families, one module each, and their registry.

A family module defines ``FAMILY``, a :class:`flowsim.plotting.base.Family`: its name, the
``kinds`` that select it and ``draw(plot)``, which writes its files and yields their paths.
A new figure is one new module here and one line in :data:`MODULES`; ``flowsim plot``
draws every registered family.

>>> [f.name for f in FAMILIES]
['heatmaps', 'facets', 'basins', 'paths', 'overlays']
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
    ".overlays",
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


#: Every registered family.
FAMILIES: tuple[Family, ...] = register(MODULES)
#: Figure kinds plot_results can write: the quantities (each a heatmap per combination and a
#: facet), then "basin" and "paths".
KINDS: tuple[str, ...] = kinds_of(FAMILIES)
