"""The study of the seed paper, *Understanding the limitations of DPO through field theory*.

A study is the list of registered claims it judges (:mod:`flowsim.analysis.claims`, one
module per claim: the paper's words, the models it speaks of, its measurement and its
rule) and the region cuts of its sensitivity family; :mod:`flowsim.analysis.evaluation`
judges them.  A verdict is one of :data:`~flowsim.analysis.verdicts.VERDICTS`:
``not applicable`` (no evidence: an empty region or subset, a model or loss the claim does
not speak of, or more than 1% of the group's rows ``failed``), or the rule's
``supported``, ``partly supported`` or ``not supported``, each marked ``robust`` or
``fragile (flips under ...)`` under the family of alternatives of
:mod:`flowsim.analysis.sensitivity` (the cuts below; each threshold halved and doubled).

The claims, their rules (default thresholds, :class:`ClaimThresholds`) and where they apply:

* **C1 Theorem 1**, **C2 Corollary 1** (DPO, ratio plane): worst relative deviation <= 1e-6
  supported, <= 1e-3 partly.
* **C3 Remark 1's argument**: share of moving flows that end with x1 > 1 and x2 < 1 >= 0.9
  supported, >= 0.5 partly.
* **C4 Remark 2**: among starts where neither target is met at t = 0, share where p_l
  reaches its target before p_w reaches its own; and share of starts where |dp_l/dt| >
  |dp_w/dt|.  Both >= 0.9 supported; either >= 0.5 partly.
* **C5a top-left**: share of top-left flows whose p_l changes at most 1/``dominance`` as
  much as p_w, >= 0.9, and the region's median |dp_w/dt| >= ``speed_factor`` times
  elsewhere: supported; share >= 0.5 partly.
* **C5b top-right**: median |dp/dt| there <= 1/``speed_factor`` of elsewhere and a
  stationary point on a mesh (DPO ratio plane): supported; one: partly.
* **C5c bottom row**: share of starts where |dp_l/dt| >= ``dominance`` |dp_w/dt|, and the
  speed ratio, as C5a.
* **C6 Remark 3**: three signs the start decides the outcome: 3 supported, 1-2 partly.
* **C6b the ratio plane's conservation law** (DPO, ratio plane; integrated rows only):
  worst |x_final - x_law| / R <= 1e-6 and no status mismatch supported.
* **C7 field vanishes at low x** (§3.2): median |grad_theta L| at bottom-left starts /
  elsewhere <= 1/``speed_factor`` supported, < 1 partly.
* **C8 left side favours x2** (§3.3.2): share of left-column starts with |dp_l/dt| > |dp_w/dt|.
* **C9 similar responses hinder** (features; across cos_wl): drop of median final p_w and
  rise of the share displaced, each >= ``p1_gap``: both supported, one partly.
* **C10 the reference only stretches the figure** (across ref_w, ref_l): share of the other
  claims whose verdict is the same under every reference >= 0.9 and dp/dt a per-axis
  rescaling (within ``rtol_partly``): supported; one of them, or the share >= 0.5: partly.
* **C11 stationary points hinder**: flows ending ``stationary`` >= 1 - share_supported,
  or a stationary point on the DPO ratio-plane mesh: supported; any flow stationary: partly.
* **C12 the flow stays on the simplex**: share of feasible starts whose path reaches
  p_w + p_l > 1: 0 supported, <= 1 - share_supported partly.
* **LD likelihood displacement** (Razin et al. 2024, judged beside the paper's claims): share of
  moving flows displaced (p_w fell below its start) >= share_partly supported, >= 1 -
  share_supported partly.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from flowsim.analysis.claims import claims
from flowsim.analysis.evaluation import Study, evaluate
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.verdicts import Claim
from flowsim.dynamics.record import StopRule

__all__ = ["CLAIMS", "CLAIMS_BY_ID", "IDS", "STUDY", "ClaimThresholds", "evaluate_claims"]

#: The seed paper's claims, in report order (listed here: a claim registered for another study is
#: not this one's).
IDS: tuple[str, ...] = (
    "C1",
    "C2",
    "C3",
    "C4",
    "C5a",
    "C5b",
    "C5c",
    "C6",
    "C6b",
    "C7",
    "C8",
    "C9",
    "C10",
    "C11",
    "C12",
    "LD",
)
#: The seed paper's study: its claims, and the region cuts (c, 1 - c) of its sensitivity family (the
#: default thirds among them, so a run read with other cuts is also checked against the thirds).
STUDY = Study("dpo_field", claims(*IDS), cuts=((0.2, 0.8), (0.25, 0.75), (1 / 3, 2 / 3)))
#: The claims in report order, and by id.
CLAIMS: tuple[Claim, ...] = STUDY.claims
CLAIMS_BY_ID: dict[str, Claim] = STUDY.by_id()


def evaluate_claims(
    flows: pd.DataFrame,
    stop: StopRule,
    thresholds: ClaimThresholds | None = None,
    *,
    experiment: Any = None,
    sensitivity: bool = True,
) -> pd.DataFrame:
    """Measure each claim of the paper per parameter combination and subset, and judge it.

    Parameters
    ----------
    flows : DataFrame
        Rows of flows.csv (see :func:`flowsim.analysis.tables.check_flows`), with columns
        ref_w, ref_l (and beta for DPO on the ratio plane without ``experiment``).
    stop : StopRule
        The stop rule the flows were computed with (C6b needs its floor).
    thresholds : ClaimThresholds, optional
        The rules' thresholds (defaults: ``ClaimThresholds()``).
    experiment : flowsim.experiment.config.Experiment, optional
        The experiment the flows come from: each row's loss and parameterisation
        (``experiment.split(experiment.combo_of(row))``) give the field at the starts for any
        model and loss.  Without it only DPO on the ratio plane has a field, and claims that
        read it are not applicable elsewhere.
    sensitivity : bool, default True
        Re-evaluate every verdict under :func:`flowsim.analysis.sensitivity.family`.

    Returns
    -------
    DataFrame
        One row per (claim, combination, subset "all"/"feasible"), claims in the order of
        :data:`CLAIMS`, with columns claim, the parameter columns, reference, subset, title,
        paper, where, metric, value, details, threshold, verdict, robustness, n_rows,
        n_failed, failed_left_out, model (and loss, when it is not a parameter column).  A claim across
        combinations (C9 across cos_wl, C10 across ref_w and ref_l) has one row per
        combination of the other parameters, its own columns NaN.
        ``n_failed`` / ``n_rows`` count the group's failed rows (:func:`failed_rows` sums them);
        ``failed_left_out``, those left out of this verdict (0 where it is not applicable or
        the claim does not read the flows' outcomes): claims.md marks such a verdict †.
    """
    return evaluate(STUDY, flows, stop, thresholds, experiment=experiment, sensitivity=sensitivity)
