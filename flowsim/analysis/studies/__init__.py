"""Studies: one paper each, the claims it judges and the region cuts of its sensitivity family.

A study is a module (or a package: a folder) defining ``STUDY``, a
:class:`~flowsim.analysis.evaluation.Study`; :data:`STUDIES` registers it by name, one line each.
``flowsim analyze`` judges every registered study that applies to a flows table (:func:`applies`:
some claim speaks of a model of the table and the table has the columns it reads) and writes
their verdicts into one claims.csv, each row naming its study (:func:`evaluate_studies`).

* ``dpo_field`` (:mod:`.dpo_field`): *Understanding the limitations of DPO through field theory*,
  the seed paper; ``thresholds`` (:mod:`.thresholds`): the thresholds of its rules.
* ``displacement`` (:mod:`.displacement`): what predicts likelihood displacement (Razin et al.
  2024, Yuan et al. 2024, Ren & Sutherland 2024, Pal et al. 2024), per pair at the DPO start.

The modules are imported when first asked for (:func:`studies`), not here: a study imports
:mod:`flowsim.analysis.evaluation`, which imports :mod:`.thresholds` from this package.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from flowsim.analysis.evaluation import Study
    from flowsim.dynamics.record import StopRule

#: The studies by name -> module (a leading dot: in this package), in report order.
STUDIES: dict[str, str] = {
    "dpo_field": ".dpo_field",
    "displacement": ".displacement",
}
#: The study whose thresholds an experiment's ``[claims]`` table sets (the others use their defaults).
PRIMARY = "dpo_field"


def load(modules: dict[str, str]) -> dict[str, Study]:
    """The ``STUDY`` of each module, by name; ValueError if one lacks it or its name differs from the key."""
    from flowsim.analysis.evaluation import Study

    out: dict[str, Study] = {}
    for name, module in modules.items():
        study = getattr(import_module(module, __name__), "STUDY", None)
        if not isinstance(study, Study):
            raise ValueError(f"study module {module} must define STUDY, a flowsim.analysis.evaluation.Study")
        if study.name != name:
            raise ValueError(f"study module {module}: STUDY is named {study.name!r}, registered as {name!r}")
        out[name] = study
    return out


@functools.cache
def studies() -> dict[str, Study]:
    """Every registered study, by name, in :data:`STUDIES`' order."""
    return load(STUDIES)


def applies(study: Study, flows: pd.DataFrame) -> bool:
    """Whether some claim of ``study`` speaks of a model of ``flows`` and the table has every column it reads."""
    models = set(map(str, flows["model"].unique())) if "model" in flows.columns else {"ratio"}
    return any(models & set(c.models) and all(col in flows.columns for col in c.columns) for c in study.claims)


def evaluate_studies(
    flows: pd.DataFrame,
    stop: StopRule,
    thresholds: Any = None,
    *,
    experiment: Any = None,
    sensitivity: bool = True,
    registry: dict[str, Study] | None = None,
) -> pd.DataFrame:
    """The claims table of every registered study that :func:`applies` to ``flows``, one after the other.

    Each study's table is :func:`flowsim.analysis.evaluation.evaluate`'s, with a last column
    ``study`` naming it; columns a study does not have (the parameters it pools over) are NaN in its
    rows.  ``thresholds`` are the :data:`PRIMARY` study's (an experiment's ``[claims]`` table); the
    others are judged at their defaults.  The primary study is always judged.
    """
    import pandas as pd

    from flowsim.analysis.evaluation import evaluate

    parts = []
    for name, study in (studies() if registry is None else registry).items():
        if name != PRIMARY and not applies(study, flows):
            continue
        th = thresholds if name == PRIMARY else None
        table = evaluate(study, flows, stop, th, experiment=experiment, sensitivity=sensitivity)
        parts.append(table.assign(study=name))
    out = pd.concat(parts, ignore_index=True)
    return out[[c for c in out.columns if c != "study"] + ["study"]]


def studies_markdown(claims: pd.DataFrame, heading: Callable[[str], str]) -> str:
    """claims.md of :func:`evaluate_studies`' table: each study's claims under ``heading(study)``, in order.

    The primary study's table keeps every column; another study's drops the columns empty in all its
    rows (the parameters it pools over), but never those claims.md reads
    (:data:`~flowsim.analysis.verdicts.MARKDOWN_COLUMNS`).
    """
    from flowsim.analysis.verdicts import MARKDOWN_COLUMNS, claims_markdown

    parts = []
    for study, rows in claims.groupby("study", sort=False):
        rows = rows.drop(columns="study")
        if study != PRIMARY:
            empty = [c for c in rows.columns if rows[c].isna().all() and c not in MARKDOWN_COLUMNS]
            rows = rows.drop(columns=empty)
        parts.append(claims_markdown(rows, title=heading(str(study))))
    return "\n\n".join(parts)


__all__ = [
    "PRIMARY",
    "STUDIES",
    "applies",
    "evaluate_studies",
    "load",
    "studies",
    "studies_markdown",
]
