"""The displacement study (issue #31): its registry, its claims' conformance and its bootstrap interval.

Every claim of the study reaches each verdict its rule has (``supported``, ``partly supported``,
``not supported``, ``not applicable``) on synthetic rows carrying the per-pair columns with a known
truth (:func:`flowsim.analysis.studies.displacement.testing.synthetic_pairs`), and keeps it when the
rows are reordered; a model it does not speak of, a declared column missing and a threshold it does
not declare behave as the seed paper's claims do (tests/unit/test_claims_conformance.py).  The
interval of a rank correlation resamples trainings, not pairs: on data whose pairs share a training
effect, its coverage of the known correlation is near 95%, and resampling pairs would fall short.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis.claims import claims
from flowsim.analysis.evaluation import Study, evaluate
from flowsim.analysis.studies import STUDIES, applies, evaluate_studies, load, studies, studies_markdown
from flowsim.analysis.studies.displacement import REGISTRY, STUDY, DisplacementThresholds
from flowsim.analysis.studies.displacement.measures import (
    Pairs,
    cluster_interval,
    resampled_spearman,
    spearman,
    training_ids,
)
from flowsim.analysis.studies.displacement.testing import synthetic_pairs as rows
from flowsim.analysis.studies.displacement.testing import synthetic_selections as chosen
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import NA, NOT, PARTLY, SUPPORTED, Claim
from flowsim.dynamics.record import StopRule


@dataclass(frozen=True)
class Case:
    flows: pd.DataFrame
    expect: str
    why: str = ""


def _edit(f: pd.DataFrame, **cols) -> pd.DataFrame:
    return f.assign(**{k: (v(f) if callable(v) else v) for k, v in cols.items()})


def _dlogpw(f: pd.DataFrame) -> np.ndarray:
    return (f["logp_w_final"] - f["logp_w0"]).to_numpy()


CASES: dict[str, dict[str, Callable[[], Case]]] = {
    "D1": {
        SUPPORTED: lambda: Case(rows(strength=1.5), SUPPORTED),
        # ranks strongly, but no pair is displaced: the quantiles do not differ
        PARTLY: lambda: Case(_edit(rows(strength=1.5), displaced=False), PARTLY),
        NOT: lambda: Case(_edit(rows(), ches=_dlogpw, displaced=False), NOT),  # CHES rises with dlogpw
        NA: lambda: Case(_edit(rows(), ches=-1.0), NA, why="constant"),  # the logits' one-hot CHES
    },
    "D2": {
        SUPPORTED: lambda: Case(rows(sign_noise=0.05), SUPPORTED),
        PARTLY: lambda: Case(rows(sign_noise=0.2), PARTLY),
        NOT: lambda: Case(rows(sign_noise=0.5), NOT),
        NA: lambda: Case(_edit(rows(), dlogpw_first=np.nan), NA, why="NaN on every pair"),
    },
    "D3": {
        SUPPORTED: lambda: Case(rows(similar=1.0), SUPPORTED),
        # edit distance ranks its way; token overlap the wrong way
        PARTLY: lambda: Case(_edit(rows(similar=1.0), token_overlap=lambda f: f["pair_edit_distance"] / 4), PARTLY),
        NOT: lambda: Case(rows(similar=-1.0), NOT),
        NA: lambda: Case(_edit(rows(), pair_edit_distance=np.nan, token_overlap=np.nan), NA, why="NaN on every pair"),
    },
    "D4": {
        SUPPORTED: lambda: Case(rows(squeeze=1.0), SUPPORTED),
        PARTLY: lambda: Case(rows(n_trainings=1, n_pairs=64, squeeze=1.0), PARTLY),  # one training: no interval
        NOT: lambda: Case(rows(squeeze=-1.0), NOT),
        NA: lambda: Case(_edit(rows(), top_other_gain=np.nan), NA, why="NaN on every pair"),
    },
    "D5": {
        SUPPORTED: lambda: Case(rows(cross=4.0), SUPPORTED),
        PARTLY: lambda: Case(rows(cross=1.0), PARTLY),
        NOT: lambda: Case(rows(cross=0.01), NOT),
        NA: lambda: Case(rows(n_pairs=1, n_trainings=64, cross=0.0), NA, why="one-pair trainings"),
    },
    "D6": {
        SUPPORTED: lambda: Case(chosen(effect=1.0), SUPPORTED),
        # the top's dlogpw is lower, but no pair is displaced on either end: the shares do not differ
        PARTLY: lambda: Case(_edit(chosen(effect=1.0), displaced=False), PARTLY),
        # the baselines separate, CHES does not: the verdict is CHES's
        NOT: lambda: Case(chosen(effect=0.0, baseline=1.5), NOT),
        NA: lambda: Case(chosen()[lambda f: f["select"] != "ches_bottom"], NA, why="both ches_top and ches_bottom"),
    },
}
PAIRS = [(cid, v) for cid in REGISTRY for v in CASES.get(cid, {})]


def _judge(claim: Claim, flows: pd.DataFrame, th: DisplacementThresholds | None = None) -> pd.DataFrame:
    study = Study("conformance", (claim,), cuts=((1 / 3, 2 / 3),), thresholds=DisplacementThresholds, pool=STUDY.pool)
    out = evaluate(study, flows, StopRule(), th, sensitivity=False)
    return out[out["subset"] == "all"].reset_index(drop=True)


def check_case(claim: Claim, case: Case) -> None:
    got = _judge(claim, case.flows)
    assert len(got) == 1, got
    assert got["verdict"].iloc[0] == case.expect, f"{claim.id}: {got['verdict'].iloc[0]} ({got['details'].iloc[0]})"
    assert case.why in got["details"].iloc[0]
    rng = np.random.default_rng(1)
    other = case.flows.assign(annotator="someone", score=rng.random(len(case.flows)))
    again = _judge(claim, other.iloc[rng.permutation(len(other))].reset_index(drop=True))
    assert again["verdict"].tolist() == got["verdict"].tolist(), claim.id
    assert again["details"].tolist() == got["details"].tolist(), claim.id  # the intervals too
    np.testing.assert_allclose(again["value"].to_numpy(float), got["value"].to_numpy(float), rtol=1e-9)


def test_every_claim_of_the_study_can_reach_every_verdict():
    assert set(CASES) == set(REGISTRY)
    for cid, cases in CASES.items():
        assert set(cases) == {SUPPORTED, PARTLY, NOT, NA}, cid


@pytest.mark.parametrize(("cid", "verdict"), PAIRS, ids=[f"{c}-{v.replace(' ', '_')}" for c, v in PAIRS])
def test_case(cid, verdict):
    check_case(REGISTRY[cid], CASES[cid][verdict]())


@pytest.mark.parametrize("cid", list(REGISTRY))
def test_not_applicable_outside_the_declared_models(cid):
    got = _judge(REGISTRY[cid], CASES[cid][SUPPORTED]().flows.assign(model="ratio"))
    assert (got["verdict"] == NA).all() and got["details"].str.contains("speaks of the model").all(), cid


@pytest.mark.parametrize(("cid", "column"), [(c, col) for c in REGISTRY for col in REGISTRY[c].columns])
def test_not_applicable_without_a_declared_column(cid, column):
    got = _judge(REGISTRY[cid], CASES[cid][SUPPORTED]().flows.drop(columns=column))
    assert (got["verdict"] == NA).all() and got["details"].str.contains(f"lacks the column.*{column}").all()


#: Values for every threshold, valid in any mix with the defaults, far from them.
FAR = {
    "rho_min": 0.95,
    "share_gap": 0.95,
    "quantile": 0.05,
    "sign_supported": 0.99,
    "sign_partly": 0.98,
    "cross_supported": 0.99,
    "cross_partly": 0.98,
}


@pytest.mark.parametrize(("cid", "verdict"), [p for p in PAIRS if p[1] != NA], ids=lambda v: str(v).replace(" ", "_"))
def test_undeclared_thresholds_do_not_move_the_verdict(cid, verdict):
    claim = REGISTRY[cid]
    assert set(FAR) == {f.name for f in fields(DisplacementThresholds)}
    th = DisplacementThresholds(**{k: v for k, v in FAR.items() if k not in claim.thresholds})
    assert _judge(claim, CASES[cid][verdict]().flows, th)["verdict"].iloc[0] == verdict


def test_declared_thresholds_move_some_verdict():
    """Each claim's own thresholds, set far, change its supported case's verdict (they are read)."""
    for cid, claim in REGISTRY.items():
        th = DisplacementThresholds(**{k: v for k, v in FAR.items() if k in claim.thresholds})
        assert _judge(claim, CASES[cid][SUPPORTED]().flows, th)["verdict"].iloc[0] != SUPPORTED, cid


# -- the interval -------------------------------------------------------------------------------------


def _clustered(rng, k: int, m: int, r: float, shared: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k trainings of m pairs; a training effect ``shared`` in both x and y, and a pair-level correlation r."""
    c = np.repeat(rng.standard_normal(k), m) * shared
    e = rng.multivariate_normal([0, 0], [[1, r], [r, 1]], size=k * m)
    return c + e[:, 0], c + e[:, 1], np.repeat(np.arange(k), m)


def _true_spearman(r: float, shared: float) -> float:
    """The population Spearman of the Gaussian pair (x, y) of :func:`_clustered`: (6/pi) asin(r_xy / 2)."""
    rxy = (shared**2 + r) / (shared**2 + 1)
    return 6 / np.pi * np.arcsin(rxy / 2)


def _coverage(resample_pairs: bool, reps: int = 120) -> float:
    rng = np.random.default_rng(7)
    truth, hits = _true_spearman(0.0, 1.0), 0  # all the correlation comes from the trainings
    for _ in range(reps):
        x, y, units = _clustered(rng, 12, 16, 0.0, 1.0)
        lo, hi = cluster_interval(x, y, np.arange(len(x)) if resample_pairs else units, n_boot=300)
        hits += lo <= truth <= hi
    return hits / reps


def test_the_interval_over_trainings_covers_the_known_correlation():
    """With a shared training effect, resampling trainings covers the truth about 95% of the time
    (0.89 measured: percentile intervals of 12 clusters run a little short); resampling pairs falls
    well below (0.68)."""
    trainings, pairs = _coverage(False), _coverage(True)
    assert trainings >= 0.85, trainings
    assert pairs < trainings - 0.15, (pairs, trainings)


def test_the_vectorised_resamples_equal_concatenating_the_drawn_trainings():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, 40).astype(float), rng.standard_normal(40)  # ties in x
    units = np.repeat(np.arange(8), 5)
    draws = np.random.default_rng(0).integers(0, 8, size=(25, 8))
    ref = [spearman(*(np.concatenate([a[units == u] for u in d]) for a in (x, y))) for d in draws]
    np.testing.assert_allclose(resampled_spearman(x, y, units, 25, 0), ref, rtol=1e-12, atol=1e-12)


def test_one_training_has_no_interval():
    x = np.arange(10.0)
    assert np.isnan(cluster_interval(x, x, np.zeros(10))).all()


def test_trainings_are_told_apart_by_seeds_and_by_a_setting_only_where_needed():
    f = rows(n_trainings=3, n_pairs=4)  # pair_edit_distance varies per pair within a training
    assert len(np.unique(training_ids(f, STUDY.pool))) == 3
    two = pd.concat([f.assign(edit_distance=1), f.assign(edit_distance=3)], ignore_index=True)
    assert len(np.unique(training_ids(two, STUDY.pool))) == 6  # the same seeds at two settings
    assert len(np.unique(training_ids(f.drop(columns="pair"), STUDY.pool))) == len(f)  # a policy model
    # network rows carry their dataset's means, the same on each of a training's rows: they tell apart
    # trainings whose recorded keys are all equal
    same_keys = pd.concat([f.assign(p1_0_mean=0.1), f.assign(p1_0_mean=0.2)], ignore_index=True)
    assert len(np.unique(training_ids(same_keys, STUDY.pool))) == 6


def test_outcome_of_a_policy_model_is_the_log_ratio_of_p_w():
    f = rows(model="features")
    p = Pairs(f, STUDY.pool)
    np.testing.assert_allclose(np.sort(p.dlogpw), np.sort(np.log(f["p1_final"] / f["p1_0"])))


def test_a_policy_models_rows_are_each_a_training_and_their_order_does_not_matter():
    """Every start of logits or features is its own flow: the bootstrap draws rows, in a fixed order."""
    f = rows(model="features", strength=1.5)
    assert Pairs(f, STUDY.pool).n_trainings == len(f)
    check_case(REGISTRY["D1"], Case(f, SUPPORTED))


# -- the registry ---------------------------------------------------------------------------------------


def test_the_registry_holds_both_studies_with_their_own_claims():
    got = studies()
    assert list(got) == list(STUDIES) == ["dpo_field", "displacement"]
    assert [c.id for c in got["displacement"].claims] == ["D1", "D2", "D3", "D4", "D5", "D6"]
    assert not {c.id for c in got["dpo_field"].claims} & {c.id for c in got["displacement"].claims}


def test_a_study_naming_an_unknown_claim_is_refused():
    with pytest.raises(ValueError, match=r"no registered claim.*D9"):
        claims("D1", "D9", registry=REGISTRY)


def test_a_study_module_without_study_or_with_another_name_is_refused():
    with pytest.raises(ValueError, match="must define STUDY"):
        load({"x": "flowsim.analysis.studies.displacement.measures"})
    with pytest.raises(ValueError, match="registered as 'other'"):
        load({"other": ".displacement"})


def test_analysis_judges_every_study_that_applies():
    ratio = make_flows([0.2, 0.6], [0.3, 0.5])
    assert not applies(STUDY, ratio)
    assert set(evaluate_studies(ratio, StopRule(), sensitivity=False)["study"]) == {"dpo_field"}
    net = rows(n_trainings=4, n_pairs=4)
    got = evaluate_studies(net, StopRule(), sensitivity=False)
    assert list(dict.fromkeys(got["study"])) == ["dpo_field", "displacement"] and got.columns[-1] == "study"
    mine = got[got["study"] == "displacement"]
    assert mine["claim"].unique().tolist() == ["D1", "D2", "D3", "D4", "D5", "D6"]
    assert (mine["verdict"] != NA).any()


def test_claims_md_has_a_section_per_study_even_where_none_of_its_claims_applied():
    """A study whose every row is 'not applicable' (value and threshold NaN) still gets its section."""
    got = evaluate_studies(rows(n_trainings=4, n_pairs=4), StopRule(), sensitivity=False)
    mine = got["study"] == "displacement"
    got.loc[mine, ["value", "threshold"]] = np.nan
    got.loc[mine, "verdict"] = NA
    text = studies_markdown(got, lambda s: f"section {s}")
    assert "section dpo_field" in text and "section displacement" in text and "D5" in text


# -- the figure and the report section ------------------------------------------------------------------


def test_the_scatter_is_drawn_for_rows_with_predictors_and_not_for_others(tmp_path):
    from flowsim.plotting.displacement import figure
    from flowsim.plotting.registry import families_for

    assert "displacement" in [f.name for f in families_for(["network"])]
    assert "displacement" not in [f.name for f in families_for(["ratio"])]
    both = pd.concat([rows(), rows(n_trainings=12, n_pairs=1, seed=2)], ignore_index=True)
    out = figure(both, "network", tmp_path / "d.png")
    assert out is not None and out.stat().st_size > 10_000
    assert figure(make_flows([0.2, 0.6], [0.3, 0.5]), "ratio", tmp_path / "r.png") is None


def _results(root, strength: float):
    """A results folder with the study's two experiments, from synthetic rows (analysed)."""
    pool = rows(n_trainings=24, n_pairs=1, strength=strength, seed=1)
    datasets = rows(n_trainings=6, n_pairs=4, strength=strength, cross=1.0, seed=2)
    datasets["init_seed"] += 100  # other trainings than the pool's
    made = {
        "displacement_transformer": pd.concat([pool, datasets], ignore_index=True),
        "displacement_mlp": rows(n_trainings=6, n_pairs=8, strength=strength, cross=1.0, seed=3),
    }
    for name, flows in made.items():
        (root / name).mkdir(parents=True)
        flows.to_csv(root / name / "flows.csv", index=False)
        evaluate_studies(flows, StopRule(), sensitivity=False).to_csv(root / name / "claims.csv", index=False)


def test_the_report_section_is_generated_from_the_tables(tmp_path):
    from flowsim.app.report.common import read_claims
    from flowsim.app.report.displacement import correlations, displacement_section

    _results(tmp_path, strength=3.0)
    text = "\n".join(displacement_section(tmp_path))
    assert "## What predicts likelihood displacement" in text and "| D1 " in text
    assert "quantile protocol, read after the fact" in text and "not Razin et al.'s training" in text
    table = correlations(tmp_path)
    for label, rec in table.iterrows():  # the sentence names each setting's predictor of largest |rho|
        best = max(("ches", "ent_own", "pair_edit_distance"), key=lambda p: abs(rec[p][0]))
        assert f"**{label}**: {best} (" in text, label
    assert "ches in transformer, one-pair trainings (the pool)" in text  # the top CHES quartile loses more
    assert "of the 24 pairs" not in text
    _results(tmp_path / "flat", strength=0.0)
    flat = "\n".join(displacement_section(tmp_path / "flat"))
    assert "ches in transformer, one-pair trainings (the pool)" not in flat  # the sentence follows the table
    # the seed paper's readers see only its rows
    seed = read_claims(tmp_path, "displacement_transformer")
    assert not seed["claim"].str.startswith("D").any() and "study" not in seed.columns
    assert set(read_claims(tmp_path, "displacement_transformer", "displacement")["claim"]) == set(REGISTRY)


def test_the_report_compares_the_selected_datasets_from_the_tables(tmp_path):
    from flowsim.app.report.displacement import displacement_section, selected

    for name, effect in (("strong", 1.5), ("flat", 0.0)):
        (tmp_path / name / "displacement_quantile").mkdir(parents=True)
        chosen(effect=effect, baseline=-effect).to_csv(tmp_path / name / "displacement_quantile" / "flows.csv")
    text = "\n".join(displacement_section(tmp_path / "strong"))
    assert "quantile protocol, done as datasets" in text and "| ches " in text
    table = selected(tmp_path / "strong").set_index("predictor")
    assert table.loc["ches", "trainings"] == "6 / 6" and table["_dlogpw"].tolist() == [True, False, False]
    # the baselines' ends were trained the other way round: their claimed-displacing end loses less
    assert "interval below 0 for: ches;" in text and "above 0 for: ches." in text
    flat = "\n".join(displacement_section(tmp_path / "flat"))
    assert "interval below 0 for: none;" in flat and "above 0 for: none." in flat
