"""The claims flowsim can judge, one module each, and their registry.

A claim module defines ``CLAIM``, a :class:`flowsim.analysis.verdicts.Claim`: the paper's
words and where they stand, the models (and losses) it speaks of, the flows.csv columns
it reads, the thresholds its rule reads, its measurement (a function of one
:class:`~flowsim.analysis.claims.group.Group`, whose docstring says what would make it
fail) and its verdict rule.  A new claim is one new module here and one line in
:data:`MODULES`; a study (:mod:`flowsim.analysis.studies`) judges the claims it lists.

>>> REGISTRY["C3"].models
('ratio', 'logits', 'features', 'network')
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module

from flowsim.analysis.verdicts import Claim

#: The claim modules, in report order; a name with a leading dot is in this package.
MODULES: tuple[str, ...] = (
    ".c1_theorem1",
    ".c2_corollary1",
    ".c3_remark1",
    ".c4_remark2",
    ".c5a_top_left",
    ".c5b_top_right",
    ".c5c_bottom",
    ".c6_remark3",
    ".c6b_conservation",
    ".c7_vanish",
    ".c8_left",
    ".c9_similar",
    ".c10_reference",
    ".c11_stationary",
    ".c12_simplex",
    ".ld_displacement",
)


def register(modules: Iterable[str]) -> dict[str, Claim]:
    """The ``CLAIM`` of each module, by id, in the order given.

    Raises ValueError if a module has no ``CLAIM`` that is a :class:`Claim`, or two claims
    share an id.
    """
    out: dict[str, Claim] = {}
    for name in modules:
        claim = getattr(import_module(name, __name__), "CLAIM", None)
        if not isinstance(claim, Claim):
            raise ValueError(f"claim module {name} must define CLAIM, a flowsim.analysis.verdicts.Claim")
        if claim.id in out:
            raise ValueError(f"claim module {name}: the id {claim.id!r} is taken already")
        out[claim.id] = claim
    return out


#: Every registered claim by id.
REGISTRY: dict[str, Claim] = register(MODULES)


def claims(*ids: str, registry: dict[str, Claim] | None = None) -> tuple[Claim, ...]:
    """The registered claims with these ids, in this order (a study's list); ValueError naming an unknown id."""
    reg = REGISTRY if registry is None else registry
    unknown = [i for i in ids if i not in reg]
    if unknown:
        raise ValueError(f"no registered claim {unknown}; registered: {list(reg)}")
    return tuple(reg[i] for i in ids)


__all__ = ["MODULES", "REGISTRY", "claims", "register"]
