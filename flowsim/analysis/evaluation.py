"""Judging a study's claims on a flows table: groups, measurements, verdicts and their robustness.

A :class:`Study` is a list of registered claims (:mod:`flowsim.analysis.claims`) and the
region cuts of its sensitivity family.  :func:`evaluate` walks the table's groups once
(:func:`iter_groups`: one per parameter combination, reference mode and subset of starts)
and judges each claim there:

* ``not applicable`` -- no evidence: a model or loss the claim does not speak of, a column
  it reads missing, an empty region or subset, or more than 1% of the group's rows
  ``failed`` (the details say how many);
* otherwise the rule's ``supported``, ``partly supported`` or ``not supported``.  A claim
  on the flows' outcomes measured where some rows failed (1% or fewer) leaves them out, and
  says so: its ``failed_left_out`` column counts them and its details start "N failed rows
  left out" (claims.md marks such verdicts with a dagger, :data:`~flowsim.analysis.verdicts.FAILED_MARK`).

Every verdict is then re-evaluated under the fixed family of alternatives of
:mod:`flowsim.analysis.sensitivity` (the study's region cuts; each threshold halved and
doubled) and marked ``robust`` or ``fragile (flips under ...)``.

Where the seeds of a training (:data:`~flowsim.analysis.intervals.SEED_COLUMNS`, a network's
``init_seed`` and ``data_seed``) take several values, the rows of every seed are one group, and
each claim there gets a 95% bootstrap interval over the seeds and is marked ``uncertain`` where
that interval straddles its threshold (:mod:`flowsim.analysis.intervals`, the rule written there).

A claim across combinations (``Claim.across``, e.g. C9 across cos_wl for features and across
edit_distance for a network: its axis per model, ``Claim.axis``) is judged after the others, on
the groups that span every value of its columns
(:class:`~flowsim.analysis.claims.group.AcrossGroup`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowsim.analysis.claims.group import AcrossGroup, Context, Group, kinds
from flowsim.analysis.intervals import no_spread, seed_spread, varying_seeds
from flowsim.analysis.sensitivity import Variant, family, robustness
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import as_bool, check_flows
from flowsim.analysis.verdicts import MAX_FAILED_SHARE, NA, SUBSETS, Claim, NotApplicable
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import check_cuts


@dataclass(frozen=True)
class Study:
    """A paper's claims as flowsim tests them: which registered claims, in report order, and
    the region cuts (c, 1 - c) its sensitivity family relabels the regions with.

    ``thresholds`` is the dataclass of its rules' thresholds; ``pool`` names parameter columns the
    study pools its groups over instead of judging each value apart (a study of pairs pools
    replicate seeds and similarity settings, so that a rank correlation has many trainings).
    """

    name: str
    claims: tuple[Claim, ...]
    cuts: tuple[tuple[float, float], ...]
    thresholds: type = ClaimThresholds
    pool: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.claims or not all(isinstance(c, Claim) for c in self.claims):
            raise ValueError(f"study {self.name}: claims must be a non-empty tuple of Claim")
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError(f"study {self.name}: claim ids must be unique; got {ids}")
        object.__setattr__(self, "cuts", tuple(check_cuts(f"{self.name} cuts", c) for c in self.cuts))

    def by_id(self) -> dict[str, Claim]:
        return {c.id: c for c in self.claims}


class _NanMetrics(dict):
    """Metrics for an empty subset: every key reads as NaN."""

    def __missing__(self, key: str) -> float:
        return float("nan")


def iter_groups(work: pd.DataFrame, keys: list[str]) -> Iterator[tuple[dict, str, str, str, pd.DataFrame]]:
    """(parameter values, model, loss, subset, rows) of each group: per combination of ``keys`` and the
    reference mode (sorted), the subsets "all" and "feasible" (``work`` has a bool ``_feasible``).

    Model and loss are those of the combination's first row, also for an empty subset.
    """
    for key, g in work.groupby([*keys, "reference"], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        kv = dict(zip([*keys, "reference"], key, strict=True))
        model, loss = kinds(g)
        for subset in SUBSETS:
            yield kv, model, loss, subset, (g if subset == "all" else g[g["_feasible"].to_numpy()])


def _same(a: object, b: object) -> bool:
    return a == b or bool(pd.isna(a) and pd.isna(b))


def _precheck(c: Claim, model: str, loss: str, columns: pd.Index, n: int, n_failed: int) -> str | None:
    """Why claim ``c`` is not applicable to a group (its columns, rows and failed rows) before anything
    is measured, or None."""
    reason = c.not_applicable(model, loss)
    if reason:
        return reason
    missing = [col for col in c.columns if col not in columns]
    if missing:
        return f"the flows table lacks the column(s) {', '.join(missing)}"
    if n == 0:
        return "no initial conditions here"
    if c.uses_flows and n_failed > MAX_FAILED_SHARE * n:
        return f"{n_failed} of {n} rows failed ({100 * n_failed / n:.3g}% > {100 * MAX_FAILED_SHARE:g}%)"
    return None


def _record(c: Claim, reason: str, th: Any, n: int, n_failed: int) -> dict:
    """The record of claim ``c`` where it is not applicable, for ``reason``."""
    return {
        "claim": c.id,
        "value": float("nan"),
        "details": f"not applicable: {reason}",
        "threshold": c.rule(_NanMetrics(), th)[1],
        "verdict": NA,
        "_alts": {},
        "n_rows": n,
        "n_failed": n_failed,
        "failed_left_out": 0,
    }


class _Judge:
    """Measures and judges claims on one group, under the base setting and each alternative.

    Measurements are cached by (claim, cuts if the claim reads regions, the thresholds it
    reads, the alternative if it reads other verdicts), so an alternative re-measures only
    what it can change.
    """

    def __init__(self, d: Group, th: Any, variants: list[Variant]) -> None:
        self.d, self.th, self.variants = d, th, variants
        self.views: dict[tuple, Group] = {(None, None): d}
        self.cache: dict[tuple, Any] = {}

    def _view(self, cuts: tuple[float, float] | None, tag: str | None) -> Group:
        if (cuts, tag) not in self.views:
            self.views[(cuts, tag)] = self.d.view(cuts, tag)
        return self.views[(cuts, tag)]

    def judge(self, c: Claim, v: Variant | None = None) -> tuple[float, str, str, str]:
        """(value, details, verdict, rule text) of claim ``c``, under alternative ``v`` (None: the base)."""
        th = self.th if v is None else v.thresholds
        cuts = v.cuts if v is not None and c.regional else None
        tag = v.name if v is not None and c.reads_verdicts else None
        key = (c.id, cuts, tuple(getattr(th, r) for r in c.reads), tag)
        if key not in self.cache:
            try:
                self.cache[key] = c.measure(self._view(cuts, tag), th)
            except NotApplicable as exc:
                self.cache[key] = exc
        found = self.cache[key]
        if isinstance(found, NotApplicable):
            return float("nan"), f"not applicable: {found}", NA, c.rule(_NanMetrics(), th)[1]
        value, metrics, details = found
        verdict, text = c.rule(metrics, th)
        return value, details, verdict, text

    def metrics(self, c: Claim) -> dict[str, float]:
        """The metrics of claim ``c``'s base measurement (judged first); {} where it was not applicable."""
        key = (c.id, None, tuple(getattr(self.th, r) for r in c.reads), None)
        found = self.cache.get(key)
        return {} if found is None or isinstance(found, NotApplicable) else dict(found[1])

    def record(self, c: Claim) -> dict:
        """The record of claim ``c`` here, where it applies: its base verdict and each alternative's."""
        value, details, verdict, text = self.judge(c)
        alts = {v.name: self.judge(c, v)[2] for v in self.variants}
        left_out = self.d.n_failed if c.uses_flows and verdict != NA else 0
        if left_out:
            details = f"{left_out} failed rows left out; {details}"
        return {
            "claim": c.id,
            "value": value,
            "details": details,
            "threshold": text,
            "verdict": verdict,
            "_alts": alts,
            "n_rows": self.d.n,
            "n_failed": self.d.n_failed,
            "failed_left_out": left_out,
        }


class _Spreads:
    """The claims' spread over the seeds per group (nothing to do without seeds); a subset with the same
    rows as another (every start feasible) reuses its resamples."""

    def __init__(self, seeds: list[str], th: Any) -> None:
        self.seeds, self.th, self.done = seeds, th, {}

    def of(self, d: Group, judge: _Judge | None, recs: list[dict], claims: list[Claim]) -> list[dict]:
        """``recs`` (of ``claims`` on ``d``, in order) with their spread columns."""
        n_seeds = len(d.frame[self.seeds].drop_duplicates()) if self.seeds else 1
        if not self.seeds or n_seeds < 2:
            return [{**r, **no_spread(n_seeds)} for r in recs]
        judged = {
            c.id: (c, r["verdict"], judge.metrics(c) if judge is not None else {})
            for c, r in zip(claims, recs, strict=True)
        }
        key = (d.frame.index.to_numpy().tobytes(), tuple(judged), tuple(r["verdict"] for r in recs))
        if key not in self.done:
            self.done[key] = seed_spread(d, judged, self.th, self.seeds)
        return [{**r, **self.done[key][c.id]} for c, r in zip(claims, recs, strict=True)]


def _local(study: Study, work, keys: list[str], ctx: Context, th, variants, spreads: _Spreads) -> tuple[list, dict]:
    """The records of the claims within one combination, and the groups by (parameter values, subset)."""
    records, groups = [], {}
    local = [c for c in study.claims if not c.across]
    for kv, model, loss, subset, sub in iter_groups(work, keys):
        d = Group(sub, ctx)
        groups[(tuple(kv.items()), subset)] = d
        judge = _Judge(d, th, variants)
        recs = []
        for c in local:
            reason = _precheck(c, model, loss, sub.columns, d.n, d.n_failed)
            recs.append(_record(c, reason, th, d.n, d.n_failed) if reason else judge.record(c))
        for rec in spreads.of(d, judge, recs, local):
            records.append({**rec, **kv, "subset": subset, "_model": model, "_loss": loss})
    return records, groups


def _across(study: Study, work, keys, ctx, th, variants, records: list[dict], groups: dict, spreads) -> list[dict]:
    """The records of the claims across combinations, from the records and groups of the others."""
    out: list[dict] = []
    if not any(c.across for c in study.claims):
        return out
    empty = ["claim", "verdict", "_alts", "subset", *keys, "reference"]  # a study of claims across only
    recs = pd.DataFrame(records, columns=list(records[0]) if records else empty)
    by_model = work.groupby("model", sort=True) if "model" in work.columns else [("ratio", work)]
    for c in (c for c in study.claims if c.across):
        for model, rows in by_model:
            out += _across_one(c, list(c.axis(str(model))), rows, keys, ctx, th, variants, recs, groups, spreads)
    return out


def _across_one(c: Claim, cols: list[str], work, keys, ctx, th, variants, recs, groups, spreads) -> list[dict]:
    """The records of claim ``c`` across ``cols`` (its axis for the model of ``work``'s rows)."""
    out = []
    varied = bool(cols) and all(k in keys for k in cols)
    others = [k for k in keys if k not in cols] if varied else keys
    for kv, model, loss, subset, sub in iter_groups(work, others):
        n_values = len(sub[cols].drop_duplicates()) if varied and len(sub) else (1 if len(sub) else 0)
        n, n_failed = len(sub), int((sub["status"] == "failed").sum())
        reason = _precheck(c, model, loss, sub.columns, n, n_failed)
        if not reason and not cols:
            reason = f"the claim declares no axis to compare across for the model {model}"
        elif not reason and n_values < 2:
            reason = f"one value of {', '.join(cols)} here: the claim compares several"
        if reason:
            rec = spreads.of(Group(sub, ctx), None, [_record(c, reason, th, n, n_failed)], [c])[0]
        else:
            d = _spanning(sub, ctx, cols, n_values, kv, subset, recs, groups)
            judge = _Judge(d, th, variants)
            rec = spreads.of(d, judge, [judge.record(c)], [c])[0]
        out.append({**rec, **kv, "subset": subset, "_model": model, "_loss": loss})
    return out


def _spanning(sub, ctx, cols, n_values, kv: dict, subset: str, recs: pd.DataFrame, groups: dict) -> AcrossGroup:
    """The group across ``cols``: its rows, the groups and the other claims' records it spans."""
    mine = recs[recs["subset"] == subset]
    for k, v in kv.items():
        mine = mine[(mine[k] == v) | (mine[k].isna() & pd.isna(v))]
    members = [
        g for (gk, gs), g in groups.items() if gs == subset and all(_same(dict(gk).get(k), v) for k, v in kv.items())
    ]
    return AcrossGroup(sub, ctx, tuple(cols), n_values, members, mine)


def evaluate(
    study: Study,
    flows: pd.DataFrame,
    stop: StopRule,
    thresholds: Any = None,
    *,
    experiment: Any = None,
    sensitivity: bool = True,
) -> pd.DataFrame:
    """Measure each claim of ``study`` per parameter combination and subset, and judge it.

    See :func:`flowsim.analysis.studies.dpo_field.evaluate_claims` for the parameters and
    the table returned.
    """
    params = check_flows(flows, needs=("ref_w", "ref_l"))
    if not isinstance(stop, StopRule):
        raise ValueError(f"stop must be a flowsim.dynamics.record.StopRule; got {type(stop).__name__}")
    th = study.thresholds() if thresholds is None else thresholds
    if not isinstance(th, study.thresholds):
        raise ValueError(f"thresholds must be a {study.thresholds.__name__}; got {type(th).__name__}")
    ctx = Context(stop, experiment)
    variants, skipped = family(th, study.cuts) if sensitivity else ([], [])
    work = flows.copy()  # one block per dtype: a table built column by column warns on every insert
    work["_feasible"] = as_bool(flows["feasible"])
    keys = [p for p in params if p != "reference" and p not in study.pool]
    seeds = varying_seeds(work, keys)  # the seeds' rows are pooled: the spread over them is the interval
    keys = [k for k in keys if k not in seeds]
    spreads = _Spreads(seeds, th)
    records, groups = _local(study, work, keys, ctx, th, variants, spreads)
    records += _across(study, work, keys, ctx, th, variants, records, groups, spreads)
    return _table(study, records, keys, skipped)


def _table(study: Study, records: list[dict], keys: list[str], skipped: list[str]) -> pd.DataFrame:
    """The records as the claims table: the claim's words beside each, robustness, in report order."""
    by_id = study.by_id()
    rows = []
    for r in records:
        c = by_id[r["claim"]]
        rob = robustness(r["verdict"], r.pop("_alts"))
        if skipped and rob == "robust":
            rob += f" (alternatives left out as invalid: {', '.join(skipped)})"
        rows.append(
            {
                "claim": c.id,
                **{k: r.get(k, np.nan) for k in keys},
                "reference": r["reference"],
                "subset": r["subset"],
                "title": c.title,
                "paper": c.paper,
                "where": c.where,
                "metric": c.metric,
                "value": r["value"],
                "low": r["low"],
                "high": r["high"],
                "details": r["details"],
                "threshold": r["threshold"],
                "verdict": r["verdict"],
                "uncertain": r["uncertain"],
                "robustness": rob,
                "n_rows": r["n_rows"],
                "n_failed": r["n_failed"],
                "failed_left_out": r["failed_left_out"],
                "n_seeds": r["n_seeds"],
                "intervals": r["intervals"],
                "model": r["_model"],
                **({} if "loss" in keys else {"loss": r["_loss"]}),
            }
        )
    out = pd.DataFrame(rows)
    order = [c.id for c in study.claims]
    out["_c"] = out["claim"].map(order.index)
    out["_s"] = out["subset"].map(SUBSETS.index)
    out = out.sort_values(["_c", *keys, "reference", "_s"], kind="stable", na_position="last")
    return out.drop(columns=["_c", "_s"]).reset_index(drop=True)
