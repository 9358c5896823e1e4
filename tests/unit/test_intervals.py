"""Intervals over seeds (flowsim/analysis/intervals.py): the bootstrap's coverage on seeds with a known
share, the resample's units, and the uncertain mark on hand-built rows whose interval straddles a
threshold or does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis import intervals
from flowsim.analysis.claims import REGISTRY
from flowsim.analysis.evaluation import Study, evaluate
from flowsim.analysis.intervals import percentile_interval, resamples, uncertain, varying_seeds
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import PARTLY, SUPPORTED, cell_of, claims_markdown
from flowsim.dynamics.record import StopRule

G = np.linspace(0.05, 0.95, 6)


def _coverage(reps: int, n_seeds: int = 8, rows_per_seed: int = 36, share: float = 0.3, seed: int = 1) -> float:
    """How often the 95% interval over seeds holds the true share: each seed's rows are displaced with
    its own probability, drawn from Beta(3, 7) (mean 0.3: the seeds differ, and rows of one seed are
    not independent of each other)."""
    rng = np.random.default_rng(seed)
    seeds = pd.DataFrame({"init_seed": np.repeat(np.arange(n_seeds), rows_per_seed)})
    hits = 0
    for _ in range(reps):
        p = rng.beta(10 * share, 10 * (1 - share), n_seeds)
        x = rng.random(len(seeds)) < np.repeat(p, rows_per_seed)
        lo, hi = percentile_interval(np.array([x[r].mean() for r in resamples(seeds, 300, 0)]))
        hits += lo <= share <= hi
    return hits / reps


def test_the_interval_over_eight_seeds_covers_a_known_share_about_as_often_as_it_says():
    """200 repetitions: measured 0.87 (the percentile bootstrap over 8 units is a little narrow: its
    variance is (n - 1)/n of the truth's).  The band [0.82, 0.97] holds 0.87 and 0.95 with room for
    the repetitions' own spread (binomial s.e. 0.024); resampling rows instead of seeds covers 0.62."""
    assert 0.82 <= _coverage(200) <= 0.97


def test_seeds_not_rows_are_resampled():
    """A resample takes each seed's rows whole: as many copies of every row of a seed."""
    seeds = pd.DataFrame({"init_seed": np.repeat([10, 11, 12], 4)})
    for rows in resamples(seeds, 20, 3):
        counts = np.bincount(rows, minlength=12).reshape(3, 4)
        assert (counts == counts[:, :1]).all() and counts.sum() == 12


def test_crossed_seeds_are_resampled_each_on_its_own():
    """init_seed x data_seed: a row's multiplicity is the product of its two seeds' multiplicities."""
    seeds = pd.DataFrame({"init_seed": np.repeat([0, 1, 2], 2), "data_seed": np.tile([5, 6], 3)})
    seen = set()
    for rows in resamples(seeds, 50, 0):
        m = np.bincount(rows, minlength=6).reshape(3, 2)
        a, b = m.sum(axis=1), m.sum(axis=0)  # the margins: a rank-one m is their outer product / total
        assert np.array_equal(m * m.sum(), np.outer(a, b)), m
        seen.add(tuple(m.ravel()))
    assert len(seen) > 10  # the resamples differ


def test_percentile_interval_needs_finite_resamples():
    assert percentile_interval(np.array([1.0] * 94 + [np.nan] * 6)) == (pytest.approx(np.nan, nan_ok=True),) * 2
    assert percentile_interval(np.array([1.0] * 95 + [np.nan] * 5)) == (1.0, 1.0)


def test_varying_seeds_are_the_seed_columns_with_several_values():
    work = pd.DataFrame({"init_seed": [0, 0], "data_seed": [1, 2], "beta": [1, 1]})
    assert varying_seeds(work, ["init_seed", "data_seed", "beta"]) == ["data_seed"]
    assert varying_seeds(work, ["beta"]) == []


# -- the uncertain mark on hand-built rows ------------------------------------------------------------


def _seeded(shares: list[float]) -> pd.DataFrame:
    """Rows of a model whose p_w can fall, one block per init_seed, a share ``shares[s]`` of seed s displaced."""
    base = make_flows(G, G).assign(model="features")
    parts = []
    for s, share in enumerate(shares):
        d = base.copy()
        d.insert(0, "init_seed", s)
        d["displaced"] = np.arange(len(d)) < round(share * len(d))
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _ld(flows: pd.DataFrame) -> pd.DataFrame:
    out = evaluate(Study("t", (REGISTRY["LD"],), cuts=((0.25, 0.75),)), flows, StopRule(), sensitivity=False)
    return out[out["subset"] == "all"].reset_index(drop=True)


# LD: supported if share displaced >= 0.5 (share_partly), partly if >= 0.1
STRADDLING = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8]  # pooled 0.51, seeds from 0.2 to 0.8
CLEAR = [0.75, 0.8, 0.85, 0.8, 0.75, 0.8, 0.85, 0.8]  # pooled 0.8, every resample far above 0.5


def test_an_interval_straddling_the_threshold_marks_the_verdict_uncertain():
    row = _ld(_seeded(STRADDLING)).iloc[0]
    assert row["verdict"] == SUPPORTED and row["n_seeds"] == 8 and "init_seed" not in row.index
    assert row["low"] < 0.5 <= row["high"] and bool(row["uncertain"])


def test_an_interval_clear_of_the_thresholds_leaves_the_verdict_certain():
    row = _ld(_seeded(CLEAR)).iloc[0]
    assert row["verdict"] == SUPPORTED and 0.5 < row["low"] <= row["value"] <= row["high"] < 1
    assert not bool(row["uncertain"])


def test_one_seed_has_no_interval():
    row = _ld(_seeded([0.51])).iloc[0]
    assert row["n_seeds"] == 1 and np.isnan(row["low"]) and not bool(row["uncertain"])


def test_the_interval_is_the_bootstrap_over_seeds_of_the_pooled_share():
    flows = _seeded(STRADDLING)
    row = _ld(flows).iloc[0]
    x = flows["displaced"].to_numpy()
    expected = percentile_interval(np.array([x[r].mean() for r in resamples(flows[["init_seed"]])]))
    assert (row["low"], row["high"]) == pytest.approx(expected)
    assert row["value"] == pytest.approx(x.mean())


def test_the_corner_rule_reads_every_metric_of_the_rule():
    """C4 reads two shares: an interval straddling 0.9 in the second alone makes 'supported' uncertain."""
    c4, th = REGISTRY["C4"], ClaimThresholds()
    base = {"share_first": 0.97, "share_initial": 0.95}
    assert not uncertain(c4, SUPPORTED, base, {"share_first": (0.95, 0.99), "share_initial": (0.92, 0.97)}, th)
    assert uncertain(c4, SUPPORTED, base, {"share_first": (0.95, 0.99), "share_initial": (0.85, 0.97)}, th)
    # 'partly' whose interval reaches 0.9 at its top is uncertain too (the high corner)
    partly = {"share_first": 0.85, "share_initial": 0.95}
    assert uncertain(c4, PARTLY, partly, {"share_first": (0.8, 0.92), "share_initial": (0.93, 0.97)}, th)
    assert not uncertain(c4, PARTLY, partly, {"share_first": (0.8, 0.88), "share_initial": (0.93, 0.97)}, th)
    # a metric not measured in the base (no field: NaN) stays out of the box
    nan_base = {"share_first": 0.97, "share_initial": float("nan")}
    assert not uncertain(c4, SUPPORTED, nan_base, {"share_first": (0.95, 0.99), "share_initial": (np.nan,) * 2}, th)
    # an interval that could not be formed is uncertain
    assert uncertain(c4, SUPPORTED, base, {"share_first": (np.nan, np.nan), "share_initial": (0.92, 0.97)}, th)


def test_the_mark_reaches_the_tables():
    claims = _ld(_seeded(STRADDLING)).drop(columns="robustness")
    assert cell_of(claims) == "supported (uncertain)"
    text = claims_markdown(claims)
    assert "**supported** (uncertain)" in text and "Seeds pooled" in text
    assert cell_of(claims.assign(uncertain=False)) == "supported"
    two = pd.concat([claims, claims.assign(verdict=PARTLY, uncertain=False)], ignore_index=True)
    assert cell_of(two) == "supported (1/2, uncertain); partly supported (1/2)"


def test_the_rule_is_fixed_in_code():
    assert (intervals.N_RESAMPLES, intervals.LEVEL, intervals.RNG_SEED) == (1000, 0.95, 0)
    assert intervals.SEED_COLUMNS == ("init_seed", "data_seed")
