"""Verdict rules each way, the sensitivity family, and the verdict matrix across settings."""

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis import sensitivity as sens
from flowsim.analysis.claims import REGISTRY
from flowsim.analysis.claims.c4_remark2 import rule_faster
from flowsim.analysis.claims.c5b_top_right import rule_saddle
from flowsim.analysis.claims.c6_remark3 import rule_sensitivity
from flowsim.analysis.claims.c6b_conservation import rule_law
from flowsim.analysis.claims.c7_vanish import rule_vanish
from flowsim.analysis.claims.c9_similar import rule_similar
from flowsim.analysis.claims.c10_reference import rule_stretch
from flowsim.analysis.claims.c11_stationary import rule_stuck
from flowsim.analysis.claims.c12_simplex import rule_simplex
from flowsim.analysis.claims.ld_displacement import rule_displaced
from flowsim.analysis.claims.rules import rule_corner, rule_identity, rule_share
from flowsim.analysis.studies.dpo_field import CLAIMS, ClaimThresholds, evaluate_claims
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import (
    NA,
    NOT,
    PARTLY,
    SUPPORTED,
    VERDICTS,
    Claim,
    claims_markdown,
    conclusions,
    failed_note,
    failed_rows,
    verdict_matrix,
)
from flowsim.dynamics.record import StopRule

TH = ClaimThresholds()
NAN = float("nan")
GRID = np.linspace(0.01, 1.0, 20)

RULE_CASES = [
    (rule_identity, {"worst": 1e-9}, SUPPORTED),
    (rule_identity, {"worst": 1e-4}, PARTLY),
    (rule_identity, {"worst": 0.1}, NOT),
    (rule_identity, {"worst": NAN}, NOT),
    (rule_share, {"share": 0.95}, SUPPORTED),
    (rule_share, {"share": 0.6}, PARTLY),
    (rule_share, {"share": 0.2}, NOT),
    (rule_faster, {"share_first": 0.95, "share_initial": 0.92}, SUPPORTED),
    (rule_faster, {"share_first": 0.95, "share_initial": NAN}, SUPPORTED),
    (rule_faster, {"share_first": 0.95, "share_initial": 0.1}, PARTLY),
    (rule_faster, {"share_first": 0.2, "share_initial": 0.6}, PARTLY),
    (rule_faster, {"share_first": 0.2, "share_initial": 0.4}, NOT),
    (rule_corner, {"share_dominant": 0.95, "speed_ratio": 3.0}, SUPPORTED),
    (rule_corner, {"share_dominant": 0.95, "speed_ratio": 1.5}, PARTLY),
    (rule_corner, {"share_dominant": 0.6, "speed_ratio": 3.0}, PARTLY),
    (rule_corner, {"share_dominant": 0.1, "speed_ratio": 3.0}, NOT),
    (rule_saddle, {"speed_ratio": 0.3, "n_stationary": 2}, SUPPORTED),
    (rule_saddle, {"speed_ratio": 0.3, "n_stationary": NAN}, PARTLY),
    (rule_saddle, {"speed_ratio": 0.9, "n_stationary": 1}, PARTLY),
    (rule_saddle, {"speed_ratio": 0.9, "n_stationary": 0}, NOT),
    (rule_sensitivity, {"p1_spread": 0.5, "p1_gap_bottom_left": 0.3, "t_stop_ratio_top_right": 2.5}, SUPPORTED),
    (rule_sensitivity, {"p1_spread": 0.5, "p1_gap_bottom_left": 0.3, "t_stop_ratio_top_right": 1.5}, PARTLY),
    (rule_sensitivity, {"p1_spread": 0.1, "p1_gap_bottom_left": 0.0, "t_stop_ratio_top_right": NAN}, NOT),
    (rule_law, {"worst": 1e-12, "n_status_mismatch": 0}, SUPPORTED),
    (rule_law, {"worst": 1e-12, "n_status_mismatch": 3}, PARTLY),
    (rule_law, {"worst": 0.01, "n_status_mismatch": 0}, NOT),
    (rule_vanish, {"grad_ratio": 0.1}, SUPPORTED),
    (rule_vanish, {"grad_ratio": 0.8}, PARTLY),
    (rule_vanish, {"grad_ratio": 1.0}, NOT),
    (rule_vanish, {"grad_ratio": NAN}, NOT),
    (rule_similar, {"p1_drop": 0.5, "displaced_rise": 0.4}, SUPPORTED),
    (rule_similar, {"p1_drop": 0.5, "displaced_rise": 0.0}, PARTLY),
    (rule_similar, {"p1_drop": -0.1, "displaced_rise": 0.0}, NOT),
    (rule_stretch, {"share": 0.95, "stretch_dev": 1e-9}, SUPPORTED),
    (rule_stretch, {"share": 0.95, "stretch_dev": 0.1}, PARTLY),
    (rule_stretch, {"share": 0.1, "stretch_dev": 0.0}, PARTLY),
    (rule_stretch, {"share": 0.1, "stretch_dev": NAN}, NOT),
    (rule_stuck, {"share_stationary": 0.2, "n_mesh": NAN}, SUPPORTED),
    (rule_stuck, {"share_stationary": 0.0, "n_mesh": 3}, SUPPORTED),
    (rule_stuck, {"share_stationary": 0.01, "n_mesh": 0}, PARTLY),
    (rule_stuck, {"share_stationary": 0.0, "n_mesh": 0}, NOT),
    (rule_simplex, {"share_left": 0.0}, SUPPORTED),
    (rule_simplex, {"share_left": 0.05}, PARTLY),
    (rule_simplex, {"share_left": 0.5}, NOT),
    (rule_displaced, {"share_displaced": 0.6}, SUPPORTED),
    (rule_displaced, {"share_displaced": 0.2}, PARTLY),
    (rule_displaced, {"share_displaced": 0.05}, NOT),
    (rule_displaced, {"share_displaced": NAN}, NOT),
]


@pytest.mark.parametrize(("rule", "metrics", "expected"), RULE_CASES)
def test_rules_give_every_verdict(rule, metrics, expected):
    got, text = rule(metrics, TH)
    assert got == expected
    assert "supported" in text


def test_every_rule_reaches_every_verdict():
    seen = {(r.__name__, v) for r, _, v in RULE_CASES}
    for rule in {c.rule for c in CLAIMS}:
        assert {v for name, v in seen if name == rule.__name__} == {SUPPORTED, PARTLY, NOT}, rule.__name__


def test_every_claim_says_what_would_make_it_fail():
    for c in REGISTRY.values():
        assert c.paper and c.where and c.metric, c.id
        assert "Fails if" in (c.measure.__doc__ or ""), c.id


def test_thresholds_move_the_verdicts():
    m = {"share_dominant": 0.95, "speed_ratio": 1.5}
    assert rule_corner(m, TH)[0] == PARTLY
    assert rule_corner(m, ClaimThresholds(speed_factor=1.2))[0] == SUPPORTED
    assert rule_corner(m, ClaimThresholds(share_supported=0.99, share_partly=0.97))[0] == NOT


def test_claims_declare_where_they_apply():
    by = REGISTRY
    assert by["C1"].not_applicable("ratio", "dpo") is None
    assert "not logits" in by["C1"].not_applicable("logits", "dpo")
    assert "not ipo" in by["C6b"].not_applicable("ratio", "ipo")
    assert by["C9"].not_applicable("features", "ipo") is None
    assert by["C12"].not_applicable("logits", "orpo") is None
    assert NA in VERDICTS
    text = {"id": "X", "title": "t", "paper": "p", "where": "w", "metric": "m", "rule": rule_share, "measure": len}
    assert Claim(**text, models=("ratio",)).not_applicable("features", "dpo")
    with pytest.raises(ValueError, match="models must name the models"):
        Claim(**text, models=())
    with pytest.raises(ValueError, match="which thresholds does not declare"):
        Claim(**text, models=("ratio",), reads=("dominance",))
    with pytest.raises(TypeError, match="positional"):  # keyword-only: five strings in a row are easy to swap
        Claim("X", "t", "p", "w", "m", rule_share, len, models=("ratio",))
    for bad in ({"columns": ("p1_0", "")}, {"thresholds": (1,)}, {"columns": ["p1_0"]}, {"across": ("beta", "")}):
        with pytest.raises(ValueError, match=f"claim X: {next(iter(bad))} must be a tuple of names"):
            Claim(**text, models=("ratio",), **bad)


def test_the_failed_note_counts_the_first_claims_groups():
    claims = pd.DataFrame(
        {
            "claim": ["C1", "C1", "C1", "C2"],
            "subset": ["all", "feasible", "all", "all"],
            "n_failed": [2, 1, 1, 9],
            "n_rows": [100, 50, 100, 200],
        }
    )
    assert failed_rows(claims) == (3, 200)  # C1's two groups over all the rows
    assert failed_note(claims).startswith("**3 of 200 flows failed** (1.5%).")
    assert failed_note(claims.assign(n_failed=0)) == "" and failed_rows(claims.drop(columns="n_rows")) == (0, 0)


# -- the sensitivity family ----------------------------------------------------------------------


def test_family_is_fixed_and_complete():
    variants, skipped = sens.family(TH)
    names = [v.name for v in variants]
    assert names[:3] == ["cuts 0.2", "cuts 0.25", "cuts 0.333"]
    assert [v.cuts for v in variants[:3]] == [(0.2, 0.8), (0.25, 0.75), (1 / 3, 2 / 3)]
    assert len(variants) == 3 + 2 * len(TH.as_dict()) and not skipped
    by = {v.name: v.thresholds for v in variants}
    assert by["speed_factor x0.5"].speed_factor == 1.0 and by["speed_factor x2"].speed_factor == 4.0
    assert by["p1_gap x2"].p1_gap == pytest.approx(0.4)
    # shares: the odds halved and doubled, so they stay shares
    assert by["share_supported odds x0.5"].share_supported == pytest.approx(9 / 11)
    assert by["share_supported odds x2"].share_supported == pytest.approx(18 / 19)
    assert by["share_partly odds x2"].share_partly == pytest.approx(2 / 3)
    # an alternative the thresholds reject is left out and named
    _, skipped = sens.family(ClaimThresholds(share_supported=0.6, share_partly=0.55))
    assert skipped == ["share_supported odds x0.5", "share_partly odds x2"]


def test_robustness_text():
    assert sens.robustness(SUPPORTED, {"a": SUPPORTED, "b": SUPPORTED}) == "robust"
    assert sens.robustness(SUPPORTED, {"a": PARTLY, "b": SUPPORTED}) == "fragile (flips under a: partly supported)"


def _row(c, cid, subset="all"):
    return c[(c["claim"] == cid) & (c["subset"] == subset)].iloc[0]


def test_sensitivity_flips_a_fragile_verdict():
    # C5b on the paper's square: the top-right median speed is 0.38 of the rest's, under 1/2
    # (slow) but not under 1/4: doubling speed_factor flips it
    c = evaluate_claims(make_flows(GRID, GRID), StopRule())
    row = _row(c, "C5b")
    assert row["verdict"] == PARTLY
    assert row["robustness"].startswith("fragile (flips under")
    assert "speed_factor x2: not supported" in row["robustness"]
    assert _row(c, "C1")["robustness"] == "robust"
    # the flip is real: the same table under the doubled threshold gives the named verdict
    again = evaluate_claims(make_flows(GRID, GRID), StopRule(), ClaimThresholds(speed_factor=4.0), sensitivity=False)
    assert _row(again, "C5b")["verdict"] == NOT
    assert (again["robustness"] == "robust").all()


def test_region_cuts_flip_a_verdict():
    # C8 with ref_w = 0.5: on the left third p_l moves faster at 60% of starts (partly); with
    # the left cut at 0.2 or 0.25 only starts nearer the edge count, where p_w moves faster
    c = evaluate_claims(make_flows(GRID, GRID, refs=((0.5, 1.0),)), StopRule())
    row = _row(c, "C8")
    assert row["verdict"] == PARTLY
    assert "cuts 0.2: not supported; cuts 0.25: not supported" in row["robustness"]
    assert "cuts 0.333" not in row["robustness"]  # the thirds are the flows' own regions


# -- across settings -----------------------------------------------------------------------------


def _claims(verdicts, model="ratio", robust=None):
    ids = list(verdicts)
    return pd.DataFrame(
        {
            "claim": ids,
            "subset": "all",
            "title": [f"title {i}" for i in ids],
            "verdict": list(verdicts.values()),
            "robustness": [(robust or {}).get(i, "robust") for i in ids],
            "model": model,
        }
    )


def test_verdict_matrix_and_conclusions():
    tables = {
        "ratio free": _claims({"A": SUPPORTED, "B": SUPPORTED, "C": NOT, "D": PARTLY, "E": NA}),
        "ratio standard": _claims(
            {"A": SUPPORTED, "B": SUPPORTED, "C": NOT, "D": SUPPORTED, "E": NA},
            robust={"D": "fragile (flips under cuts 0.2: partly supported)"},
        ),
        "logits": _claims({"A": SUPPORTED, "B": NOT, "C": NA, "D": NOT, "E": NA}, model="logits"),
    }
    m = verdict_matrix(tables)
    assert list(m.columns) == ["statement", "ratio free", "ratio standard", "logits"]
    assert m.loc["A", "logits"] == "supported, robust"
    assert m.loc["D", "ratio standard"] == "supported, fragile"
    assert m.loc["E", "logits"] == NA
    assert m.attrs["models"] == {"ratio free": ["ratio"], "ratio standard": ["ratio"], "logits": ["logits"]}
    text = conclusions(m)
    assert text.splitlines()[0] == "Across 3 settings: `ratio free`; `ratio standard`; `logits`."
    assert item(text, "Holds in every setting where it applies") == ["A (title A) in 3 settings"]
    assert item(text, "Holds only on the ratio plane") == ["B (title B)"]
    assert item(text, "Holds nowhere") == ["C (title C)"]
    assert item(text, "Between these") == ["D (holds in 1 of 3)"]
    assert item(text, "Not applicable in any setting") == ["E"]
    assert text.splitlines()[-1].startswith("1 of the 15 cells are fragile")
    assert "region cuts 0.2, 0.25, 1/3" in text.splitlines()[-1]
    # no ratio-plane setting (or nothing but): no such group to speak of; the family as the caller names it
    for ratio in ([], ["ratio free", "ratio standard", "logits"]):
        text = conclusions(m, ratio_settings=ratio, family="each threshold halved and doubled")
        assert "ratio plane" not in text and text.splitlines()[-1].endswith("(each threshold halved and doubled).")


def item(text: str, label: str) -> list[str]:
    """The entries of the list item ``label`` of :func:`conclusions`' text (separated by '; ')."""
    (line,) = [row for row in text.splitlines() if row.startswith(f"- **{label}**")]
    return line.split("**", 2)[2].split(": ", 1)[1].removesuffix(".").split("; ")


def test_conclusions_keep_names_with_commas_apart():
    tables = {name: _claims({"A": SUPPORTED, "B": NOT}) for name in ("ratio, standard", "ratio, references swept")}
    tables["logits, standard"] = _claims({"A": SUPPORTED, "B": SUPPORTED}, model="logits")
    text = conclusions(verdict_matrix(tables))
    names = text.splitlines()[0].removeprefix("Across 3 settings: ").removesuffix(".").split("; ")
    assert names == ["`ratio, standard`", "`ratio, references swept`", "`logits, standard`"]
    assert item(text, "Holds in every setting where it applies") == ["A (title A) in 3 settings"]
    assert item(text, "Between these") == ["B (holds in 1 of 3)"]
    assert text.count("\n- **") == 5  # one list item per group of claims


def test_verdict_matrix_counts_mixed_combinations_and_splits():
    t = pd.concat([_claims({"A": SUPPORTED}).assign(loss="dpo"), _claims({"A": NOT}).assign(loss="ipo")])
    m = verdict_matrix({"losses": t})
    assert m.loc["A", "losses"] == "supported (1/2); not supported (1/2), robust"
    t2 = pd.concat([t.iloc[:1], t.iloc[1:].assign(robustness="fragile (flips under cuts 0.2: supported)")])
    assert verdict_matrix({"losses": t2}).loc["A", "losses"].endswith(", fragile")  # one fragile row marks the cell
    m = verdict_matrix({"losses": t}, split={"losses": "loss"})
    assert list(m.columns) == ["statement", "losses: dpo", "losses: ipo"]
    assert m.loc["A", "losses: ipo"] == "not supported, robust"
    with pytest.raises(ValueError, match="evaluate_claims"):
        verdict_matrix({"x": pd.DataFrame({"a": [1]})})


def test_verdict_matrix_from_evaluated_tables():
    free = evaluate_claims(make_flows(GRID, GRID), StopRule())
    std = evaluate_claims(make_flows(GRID, GRID, reference="initial"), StopRule())
    m = verdict_matrix({"ratio reference-free": free, "ratio standard": std})
    assert m.index.tolist() == [c.id for c in CLAIMS]
    assert m.loc["C1", "ratio standard"] == "supported, robust"
    assert m.loc["C3", "ratio reference-free"].startswith(NOT)
    assert m.loc["C3", "ratio standard"].startswith(SUPPORTED)
    text = conclusions(m)
    every = item(text, "Holds in every setting where it applies")
    assert "C1 (Theorem 1: the partial derivatives) in 2 settings" in every
    md = claims_markdown(std)
    assert "| robustness |" in md


def test_conclusions_leave_out_combinations_where_a_claim_does_not_apply():
    t = pd.concat([_claims({"A": SUPPORTED}).assign(loss="dpo"), _claims({"A": NA}).assign(loss="ipo")])
    m = verdict_matrix({"losses": t, "ratio": _claims({"A": SUPPORTED})})
    assert m.loc["A", "losses"] == "supported (1/2); not applicable (1/2), robust"
    assert item(conclusions(m), "Holds in every setting where it applies") == ["A (title A) in 2 settings"]


def test_reference_claim_on_a_reference_sweep():
    c = evaluate_claims(make_flows(GRID, GRID, refs=((1.0, 1.0), (0.5, 1.0), (0.5, 0.5))), StopRule())
    row = _row(c, "C10")
    assert np.isnan(row["ref_w"]) and row["verdict"] == PARTLY
    assert row["details"].startswith("3 references; claims whose verdict changes with the reference: C3")
    # references scaling both responses alike: dp/dt is exactly a stretch (to rounding)
    c = evaluate_claims(make_flows(GRID, GRID, betas=(1.0,), refs=((1.0, 1.0), (0.5, 0.5))), StopRule())
    dev = float(_row(c, "C10", "feasible")["details"].split("rescaling within ")[1].split(" ")[0])
    assert dev < 1e-12


def test_verdict_matrix_selects_a_combination_and_keeps_claims_across_it():
    t = pd.concat(
        [
            _claims({"A": SUPPORTED}).assign(cos_wl=0.0),
            _claims({"A": NOT}).assign(cos_wl=0.9),
            _claims({"S": PARTLY}).assign(cos_wl=np.nan),
        ]
    )
    m = verdict_matrix({"features cos 0.9": t}, select={"features cos 0.9": {"cos_wl": 0.9}})
    assert m["features cos 0.9"].to_dict() == {"A": "not supported, robust", "S": "partly supported, robust"}
    with pytest.raises(ValueError, match="lacks"):
        verdict_matrix({"x": t}, select={"x": {"K": 10}})


def test_claims_markdown_shows_each_combination_beside_the_pooled_summary():
    """Two betas: the summary pools them, the table by combination has a row per beta with its letters."""
    claims = evaluate_claims(
        make_flows(np.linspace(0.05, 0.95, 8), np.linspace(0.05, 0.95, 8), betas=(0.1, 1.0)),
        StopRule(),
        sensitivity=False,
    )
    text = claims_markdown(claims)
    head = next(line for line in text.splitlines() if line.startswith("| beta | C1 |"))
    rows = text.splitlines()[text.splitlines().index(head) + 2 :][:3]
    assert [r.split(" | ")[0] for r in rows[:2]] == ["| 0.1", "| 1"] and not rows[2].startswith("|")
    ld = claims[(claims["claim"] == "LD") & (claims["subset"] == "all")]
    assert set(ld["verdict"]) == {"not applicable"}  # DPO on the ratio plane: p_w cannot fall
    assert ld["details"].str.startswith("not applicable: impossible by construction (dpo is a function").all()
    assert rows[0].endswith("| – |")  # LD is the last column
    one = claims_markdown(claims[claims["beta"] == 0.1])
    assert "Verdicts per combination" not in one  # one combination: nothing to split


def test_across_as_a_mapping_must_name_some_of_the_claims_models():
    text = {"id": "X", "title": "t", "paper": "p", "where": "w", "metric": "m", "rule": rule_share, "measure": len}
    assert Claim(**text, models=("ratio",), across={"ratio": ("beta",)}).across == {"ratio": ("beta",)}
    for bad in ({}, {"logits": ("beta",)}):
        with pytest.raises(ValueError, match="claim X: across must map some of its models"):
            Claim(**text, models=("ratio",), across=bad)


def test_a_split_on_a_column_the_table_lacks_keeps_one_column():
    t = pd.concat([_claims({"A": SUPPORTED}).assign(loss="dpo"), _claims({"A": NOT}).assign(loss="ipo")])
    m = verdict_matrix({"losses": t}, split={"losses": "beta"})
    assert list(m.columns) == ["statement", "losses"]


def test_rows_marked_as_computed_with_failed_rows_left_out():
    """failed_left_out counts the failed rows a verdict left out: NaN (no count) and 0 mark nothing."""
    from flowsim.analysis.verdicts import _left_out

    claims = pd.DataFrame({"failed_left_out": [np.nan, 0.0, 1.0, 3.0]})
    assert _left_out(claims).tolist() == [False, False, True, True]
    assert _left_out(claims.drop(columns="failed_left_out")).tolist() == [False] * 4


def test_the_letters_of_a_combination():
    """One letter per row (S, P, N, –), * where fragile; a combination without rows reads –."""
    from flowsim.analysis.verdicts import _letters

    rows = pd.DataFrame({"verdict": [SUPPORTED, NOT, PARTLY], "robustness": ["robust", "fragile (cuts)", "robust"]})
    assert _letters(rows) == "S N* P"
    assert _letters(rows.drop(columns="robustness")) == "S N P"
    assert _letters(rows.iloc[:0]) == "–"
