"""Spread over seeds: a 95% bootstrap interval for what a claim measures, and the verdicts it leaves uncertain.

The rule, fixed here before any data is read, the same for every claim and model:

* **Seeds are the independent units.**  The parameter columns :data:`SEED_COLUMNS` (a network's
  ``init_seed`` and ``data_seed``) replicate a training; where one of them takes more than one
  value in a table, :func:`~flowsim.analysis.evaluation.evaluate` pools those rows into one group
  per combination of the *other* parameters, measures each claim on the pooled rows (its value
  and verdict, as without seeds) and on :data:`N_RESAMPLES` bootstrap resamples of the seeds.
* **The resample.**  Each seed column that varies is resampled with replacement on its own (its
  k values drawn k times); a row enters the resample as many times as the product of its seeds'
  multiplicities.  With one seed column this is the ordinary bootstrap over seeds; with two,
  crossed (every init_seed with every data_seed), it is the *pigeonhole* bootstrap for crossed
  random factors (Owen 2007, Ann. Appl. Stat. 1: 246-271), which keeps both sources of spread
  and errs on the wide side.  The generator is ``numpy.random.default_rng(RNG_SEED)``, the same
  for every group, so the intervals are the same on every run.
* **The interval.**  For the claim's value and each metric its rule reads: the 2.5% and 97.5%
  percentiles over the resamples where it is finite (the percentile bootstrap).  claims.csv holds
  the value's in ``low`` and ``high``, and every metric's as JSON in ``intervals``:
  ``{"metric": [pooled value, low, high], ...}``.  A resample
  where the claim is not applicable (a region left empty, say) counts as not finite; with fewer
  than :data:`MIN_FINITE` of the resamples finite there is no interval (NaN).
* **Uncertain.**  The verdict is marked uncertain where the rule, applied at the corners of the
  box of its metrics' intervals, does not give the base verdict at every corner (or a metric has
  no interval).  For a rule of one share against its thresholds this is exactly *the interval
  straddles a threshold*: low < threshold <= high.  The rules are monotone in each metric, so
  the corners reach every verdict the box holds.  Where fewer than two seed combinations are
  pooled nothing is marked.  Claims that read other claims' verdicts (C10) get no interval.

The sensitivity family (:mod:`flowsim.analysis.sensitivity`) is unchanged: it re-judges the
base measurement under other cuts and thresholds; the interval is about the seeds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowsim.analysis.verdicts import NA, Claim, NotApplicable

#: The parameter columns whose values are independent replicates of a training.
SEED_COLUMNS: tuple[str, ...] = ("init_seed", "data_seed")
#: Bootstrap resamples per group, the interval's level, and the generator's seed.
N_RESAMPLES = 1000
LEVEL = 0.95
RNG_SEED = 0
#: Below this share of finite resamples a measurement has no interval.
MIN_FINITE = 0.95


def varying_seeds(work: pd.DataFrame, keys: list[str]) -> list[str]:
    """The seed columns among the parameter columns ``keys`` that take more than one value in ``work``.

    >>> varying_seeds(pd.DataFrame({"init_seed": [0, 1], "data_seed": [3, 3], "beta": [1, 2]}), ["init_seed", "beta"])
    ['init_seed']
    """
    return [c for c in SEED_COLUMNS if c in keys and work[c].nunique(dropna=False) > 1]


def resamples(seeds: pd.DataFrame, n: int | None = None, rng_seed: int = RNG_SEED) -> Iterator[np.ndarray]:
    """Row positions of ``n`` (default :data:`N_RESAMPLES`) bootstrap resamples of the rows ``seeds``
    (its columns: the seed columns).

    Each column's values are drawn with replacement on their own; a row is repeated the product of
    its values' multiplicities (see the module docstring).
    """
    n = N_RESAMPLES if n is None else n
    rng = np.random.default_rng(rng_seed)
    codes = [pd.factorize(seeds[c])[0] for c in seeds.columns]
    sizes = [int(c.max()) + 1 if len(c) else 0 for c in codes]
    positions = np.arange(len(seeds))
    for _ in range(n):
        weight = np.ones(len(seeds), np.int64)
        for code, k in zip(codes, sizes, strict=True):
            weight *= np.bincount(rng.integers(0, k, k), minlength=k)[code]
        yield np.repeat(positions, weight)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of the finite ``values`` at ``level``; (NaN, NaN) below MIN_FINITE finite.

    >>> percentile_interval(np.arange(101.0))
    (2.5, 97.5)
    """
    v = np.asarray(values, float)
    ok = v[np.isfinite(v)]
    if not v.size or ok.size < MIN_FINITE * v.size:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(ok, [tail, 100 - tail])
    return float(lo), float(hi)


def uncertain(claim: Claim, base: str, metrics: dict[str, float], bounds: dict[str, tuple[float, float]], th) -> bool:
    """Whether ``claim``'s rule gives a verdict other than ``base`` at a corner of the box ``bounds``
    (metric -> (low, high)), or a metric has no interval.

    A metric NaN in the base ``metrics`` (not measured: no field, say) stays NaN at every corner.
    """
    box = {m: bounds[m] for m, v in metrics.items() if np.isfinite(v)}
    if any(not (np.isfinite(lo) and np.isfinite(hi)) for lo, hi in box.values()):
        return True
    names = list(box)
    for corner in itertools.product(*(box[m] for m in names)):
        if claim.rule({**metrics, **dict(zip(names, corner, strict=True))}, th)[0] != base:
            return True
    return False


@dataclass(frozen=True)
class Spread:
    """One claim's spread over seeds in one group: its value's interval, each metric's, and the mark."""

    n_seeds: int
    low: float = float("nan")
    high: float = float("nan")
    intervals: str = ""
    uncertain: bool = False

    def as_record(self) -> dict:
        return {
            "n_seeds": self.n_seeds,
            "low": self.low,
            "high": self.high,
            "intervals": self.intervals,
            "uncertain": self.uncertain,
        }


def no_spread(n_seeds: int = 1) -> dict:
    """The spread columns of a record without an interval."""
    return Spread(n_seeds).as_record()


def seed_spread(d, judged: dict[str, tuple[Claim, str, dict]], th: Any, seeds: list[str]) -> dict[str, dict]:
    """The spread of each claim judged on group ``d``, over the seed columns ``seeds``.

    Parameters
    ----------
    d : Group
        The pooled group (:class:`~flowsim.analysis.claims.group.Group`); its frame holds the seed columns.
    judged : dict
        Claim id -> (claim, base verdict, base metrics) of the claims that applied there.
    th : thresholds dataclass
        The base thresholds (the rules are read under them only).
    seeds : list of str
        The seed columns that vary in the table.

    Returns
    -------
    dict
        Claim id -> the spread columns (:class:`Spread` as a record) for every claim in ``judged``.
    """
    units = d.frame[seeds].drop_duplicates()
    n_seeds = len(units)
    if n_seeds < 2:
        return {cid: no_spread(n_seeds) for cid in judged}
    todo = {cid: item for cid, item in judged.items() if not item[0].reads_verdicts and item[1] != NA}
    d.rates()  # the field and the model's declarations, read once on the pooled rows; each resample indexes them
    d.impossible("displaced")
    wanted = {*d.COLUMNS, *seeds, *getattr(d, "cols", ())}
    for claim, _, _ in todo.values():
        wanted.update(claim.columns)
    d = d.narrow(sorted(wanted))
    values = {cid: [] for cid in todo}
    metrics = {cid: {m: [] for m in item[2]} for cid, item in todo.items()}
    for rows in resamples(d.frame[seeds]):
        sample = d.take(rows)
        for cid, (claim, _, base) in todo.items():
            try:
                value, got, _ = claim.measure(sample, th)
            except NotApplicable:
                value, got = float("nan"), {}
            values[cid].append(value)
            for m in base:
                metrics[cid][m].append(got.get(m, float("nan")))
    out = {cid: no_spread(n_seeds) for cid in judged}
    for cid, (claim, verdict, _) in todo.items():
        bounds = {m: percentile_interval(np.array(v, float)) for m, v in metrics[cid].items()}
        low, high = percentile_interval(np.array(values[cid], float))
        base = todo[cid][2]
        text = json.dumps({m: [_round(base[m]), _round(lo), _round(hi)] for m, (lo, hi) in bounds.items()})
        mark = uncertain(claim, verdict, base, bounds, th)
        out[cid] = Spread(n_seeds, low, high, text, mark).as_record()
    return out


def _round(v: float) -> float | None:
    return None if not np.isfinite(v) else float(f"{v:.6g}")


__all__ = [
    "LEVEL",
    "MIN_FINITE",
    "N_RESAMPLES",
    "RNG_SEED",
    "SEED_COLUMNS",
    "Spread",
    "no_spread",
    "percentile_interval",
    "resamples",
    "seed_spread",
    "uncertain",
    "varying_seeds",
]
