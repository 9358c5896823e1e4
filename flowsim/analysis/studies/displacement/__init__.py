"""The displacement study: what predicts likelihood displacement, per pair at the DPO start.

Razin et al. (2024, CHES), Yuan et al. (2024, gradient entanglement), Pal et al. (2024, similar
responses) and Ren & Sutherland (2024, squeezing and the empirical NTK between pairs) each proposed
a quantity computable at the start of DPO that says which pairs will lose p(y_w).  The per-pair
columns are recorded by the models (see ``docs/explanation/displacement-study.md``); this study
judges them, one claim per file here, registered by one line in :data:`MODULES`:

* **D1 CHES predicts displacement** (:mod:`.d1_ches`);
* **D2 entanglement predicts the sign** of the first change of log pi(y_w) (:mod:`.d2_entanglement`);
* **D3 similar responses displace more** (edit distance, token overlap; :mod:`.d3_similar`);
* **D4 squeezing** (:mod:`.d4_squeezing`);
* **D5 the cross-pair term** in datasets (:mod:`.d5_cross`);
* **D6 the quantile protocol as datasets**: DPO on the top CHES quantile of a pool displaces more
  than on the bottom (:mod:`.d6_quantile`).

Each rule is fixed in its file, its thresholds in :class:`DisplacementThresholds` (halved and
doubled by the sensitivity family).  The study pools its groups over :data:`POOL` (replicate seeds,
similarity settings): a rank correlation over pairs, with its interval from resampling whole
trainings (:mod:`.measures`).  It has no regions: its cuts are only the default thirds.

>>> [c.id for c in STUDY.claims]
['D1', 'D2', 'D3', 'D4', 'D5', 'D6']
"""

from __future__ import annotations

from flowsim.analysis.claims import claims, register
from flowsim.analysis.evaluation import Study
from flowsim.analysis.studies.displacement.measures import POOL
from flowsim.analysis.studies.displacement.thresholds import DisplacementThresholds

#: The claim modules of the study, in report order (absolute names: they live in this folder).
MODULES: tuple[str, ...] = (
    "flowsim.analysis.studies.displacement.d1_ches",
    "flowsim.analysis.studies.displacement.d2_entanglement",
    "flowsim.analysis.studies.displacement.d3_similar",
    "flowsim.analysis.studies.displacement.d4_squeezing",
    "flowsim.analysis.studies.displacement.d5_cross",
    "flowsim.analysis.studies.displacement.d6_quantile",
)
#: The study's claims by id.
REGISTRY = register(MODULES)
#: The study: its claims (by id, from :data:`REGISTRY`), the default thirds, its thresholds, its pool.
STUDY = Study(
    "displacement",
    claims(*REGISTRY, registry=REGISTRY),
    cuts=((1 / 3, 2 / 3),),
    thresholds=DisplacementThresholds,
    pool=POOL,
)

__all__ = ["MODULES", "POOL", "REGISTRY", "STUDY", "DisplacementThresholds"]
