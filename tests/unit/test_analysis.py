"""Region tables, claim rules and verdicts, on flows tables built from the closed form."""

import io

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis.studies import dpo_field as cl
from flowsim.analysis.studies.dpo_field import (
    CLAIMS,
    NOT,
    PARTLY,
    SUPPORTED,
    ClaimThresholds,
    central_difference,
    evaluate_claims,
    predicted_final,
)
from flowsim.analysis.tables import COLUMNS_AFTER_COUNT, check_flows, parameter_columns, region_table
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import VERDICTS, claims_markdown
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import REGIONS

GRID = np.linspace(0.01, 1.0, 30)


@pytest.fixture(scope="module")
def paper():
    return make_flows(GRID, GRID)


@pytest.fixture(scope="module")
def paper_claims(paper):
    return evaluate_claims(paper, StopRule())


def verdict(claims, cid, subset="all"):
    return claims.loc[(claims["claim"] == cid) & (claims["subset"] == subset), "verdict"].tolist()


# -- parameter columns and validation ------------------------------------------------------------


def test_parameter_columns_by_reference_mode():
    assert parameter_columns(make_flows(GRID[:3], GRID[:3])) == ["beta", "ref_w", "ref_l"]
    assert parameter_columns(make_flows(GRID[:3], GRID[:3], reference="initial")) == ["beta"]


def test_parameter_columns_rejects_bad_tables(paper):
    with pytest.raises(ValueError, match="DataFrame"):
        parameter_columns(paper.to_dict())
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['reference'\]"):
        parameter_columns(paper.drop(columns="reference"))
    with pytest.raises(ValueError, match="before p1_0"):
        parameter_columns(paper[["p1_0", "beta", "reference"]])
    unknown = paper.assign(reference=np.where(np.arange(len(paper)) % 2, "fixed", "sometimes"))
    with pytest.raises(ValueError, match=r"reference column must hold only.*'sometimes'"):
        parameter_columns(unknown)


def test_parameter_columns_with_several_reference_modes():
    both = pd.concat([make_flows(GRID[:3], GRID[:3]), make_flows(GRID[:3], GRID[:3], reference="initial")])
    assert parameter_columns(both) == ["beta", "reference"]
    assert parameter_columns(both[both["reference"] == "fixed"]) == ["beta", "ref_w", "ref_l"]


def test_check_flows_names_what_is_wrong(paper):
    with pytest.raises(ValueError, match=r"\['t_w', 't_l'\]"):
        check_flows(paper.drop(columns=["t_w", "t_l"]))
    with pytest.raises(ValueError, match=r"region column.*'middle'"):
        check_flows(paper.assign(region="middle"))
    with pytest.raises(ValueError, match=r"status column.*'done'"):
        check_flows(paper.assign(status="done"))
    with pytest.raises(ValueError, match="no rows"):
        check_flows(paper.iloc[:0])
    with pytest.raises(ValueError, match=r"\['beta', 'ref_w'\]"):
        evaluate_claims(paper.drop(columns="beta").rename(columns={"ref_w": "tau"}), StopRule())
    with pytest.raises(ValueError, match="StopRule"):
        evaluate_claims(paper, {"p2_floor": 1e-6})


# -- region table --------------------------------------------------------------------------------


def test_region_table_shape_order_and_counts():
    flows = make_flows(GRID, GRID, betas=(0.1, 0.5), refs=((1.0, 1.0), (0.5, 0.8)))
    t = region_table(flows)
    assert list(t.columns) == ["beta", "ref_w", "ref_l", "subset", "region", *COLUMNS_AFTER_COUNT]
    assert len(t) == 4 * 2 * 9
    first = t[(t["beta"] == 0.1) & (t["ref_w"] == 0.5)]
    assert first["subset"].tolist() == ["all"] * 9 + ["feasible"] * 9
    assert first["region"].tolist() == list(REGIONS) * 2
    all_ = t[t["subset"] == "all"]
    assert all_["count"].sum() == len(flows)
    assert t.loc[t["subset"] == "feasible", "count"].sum() == flows["feasible"].sum()
    n_status = all_[["n_converged", "n_capped", "n_timeout", "n_failed"]].sum(axis=1)
    assert np.array_equal(n_status, all_["count"])
    # top-right holds no feasible point with the default cuts: a row of zeros and NaNs
    tr = t[(t["subset"] == "feasible") & (t["region"] == "top-right")]
    assert (tr["count"] == 0).all() and tr["t_stop_median"].isna().all()


def test_region_table_statistics_by_hand():
    flows = make_flows(GRID, GRID)
    t = region_table(flows).set_index(["subset", "region"])
    sel = flows[flows["region"] == "center"]
    row = t.loc[("all", "center")]
    assert row["t_stop_median"] == pytest.approx(np.median(sel["t_stop"]))
    assert row["p1_final_q25"] == pytest.approx(np.quantile(sel["p1_final"], 0.25))
    assert row["t_w_median"] == pytest.approx(np.nanmedian(sel["t_w"]))
    assert row["share_feasible"] == pytest.approx(sel["feasible"].mean())
    assert row["share_p1_target"] == pytest.approx(sel["t_w"].notna().mean())


def test_share_l_before_w_counts_never_as_infinity():
    flows = make_flows(GRID[:4], GRID[:4]).iloc[:4].copy()  # four bottom-left rows
    flows["t_w"] = [1.0, np.nan, 2.0, np.nan]
    flows["t_l"] = [2.0, 5.0, np.nan, np.nan]  # w first, l only, w only, neither
    row = region_table(flows).query("subset == 'all' and region == 'bottom-left'").iloc[0]
    assert row["share_l_before_w"] == pytest.approx(0.25)
    assert row["share_p1_target"] == pytest.approx(0.5)


def test_region_table_reads_back_from_csv():
    flows = make_flows(GRID[::3], GRID[::3], reference="initial")
    back = pd.read_csv(io.StringIO(flows.to_csv(index=False)), dtype={"message": str}).fillna({"message": ""})
    pd.testing.assert_frame_equal(region_table(back), region_table(flows))


# -- thresholds and rules ------------------------------------------------------------------------


def test_thresholds_validate_with_named_errors():
    assert ClaimThresholds(**{"share_supported": 0.95, "dominance": 3}).dominance == 3.0
    with pytest.raises(TypeError, match="unexpected keyword"):
        ClaimThresholds(**{"shares": 0.5})
    with pytest.raises(ValueError, match=r"share_partly must be in \(0, 1\]; got 1.5"):
        ClaimThresholds(share_partly=1.5)
    with pytest.raises(ValueError, match="share_supported must be >= share_partly"):
        ClaimThresholds(share_supported=0.4)
    with pytest.raises(ValueError, match="rtol_partly must be >= rtol_supported"):
        ClaimThresholds(rtol_partly=1e-9)
    with pytest.raises(ValueError, match="speed_factor must be a finite number >= 1"):
        ClaimThresholds(speed_factor=0.9)
    with pytest.raises(ValueError, match="stationary_tol"):
        ClaimThresholds(stationary_tol=-1)
    with pytest.raises(TypeError, match="rtol_supported must be a real number"):
        ClaimThresholds(rtol_supported="1e-6")


TH = ClaimThresholds()
NAN = float("nan")
RULE_CASES = [
    (cl.rule_identity, {"worst": 1e-9}, SUPPORTED),
    (cl.rule_identity, {"worst": 1e-4}, PARTLY),
    (cl.rule_identity, {"worst": 0.1}, NOT),
    (cl.rule_identity, {"worst": NAN}, NOT),
    (cl.rule_remark1, {"share_initial": 0.95, "share_final": 0.2}, SUPPORTED),
    (cl.rule_remark1, {"share_initial": 0.5, "share_final": 1.0}, PARTLY),
    (cl.rule_remark1, {"share_initial": 0.5, "share_final": 0.6}, NOT),
    (cl.rule_faster, {"share_net": 0.95, "share_initial": 0.92}, SUPPORTED),
    (cl.rule_faster, {"share_net": 0.95, "share_initial": 0.1}, PARTLY),
    (cl.rule_faster, {"share_net": 0.2, "share_initial": 0.6}, PARTLY),
    (cl.rule_faster, {"share_net": 0.2, "share_initial": 0.4}, NOT),
    (cl.rule_corner, {"share_dominant": 0.95, "speed_ratio": 3.0}, SUPPORTED),
    (cl.rule_corner, {"share_dominant": 0.95, "speed_ratio": 1.5}, PARTLY),
    (cl.rule_corner, {"share_dominant": 0.6, "speed_ratio": 3.0}, PARTLY),
    (cl.rule_corner, {"share_dominant": 0.1, "speed_ratio": 3.0}, NOT),
    (cl.rule_corner, {"share_dominant": NAN, "speed_ratio": NAN}, NOT),
    (cl.rule_saddle, {"speed_ratio": 0.3, "n_stationary": 2}, SUPPORTED),
    (cl.rule_saddle, {"speed_ratio": 0.3, "n_stationary": 0}, PARTLY),
    (cl.rule_saddle, {"speed_ratio": 0.9, "n_stationary": 1}, PARTLY),
    (cl.rule_saddle, {"speed_ratio": 0.9, "n_stationary": 0}, NOT),
    (cl.rule_sensitivity, {"p1_spread": 0.5, "p1_gap_bottom_left": 0.3, "t_stop_ratio_top_right": 2.5}, SUPPORTED),
    (cl.rule_sensitivity, {"p1_spread": 0.5, "p1_gap_bottom_left": 0.3, "t_stop_ratio_top_right": 1.5}, PARTLY),
    (cl.rule_sensitivity, {"p1_spread": 0.1, "p1_gap_bottom_left": 0.0, "t_stop_ratio_top_right": 2.5}, PARTLY),
    (cl.rule_sensitivity, {"p1_spread": 0.1, "p1_gap_bottom_left": 0.0, "t_stop_ratio_top_right": NAN}, NOT),
    (cl.rule_law, {"worst": 1e-12, "n_status_mismatch": 0}, SUPPORTED),
    (cl.rule_law, {"worst": 1e-12, "n_status_mismatch": 3}, PARTLY),
    (cl.rule_law, {"worst": 1e-5, "n_status_mismatch": 0}, PARTLY),
    (cl.rule_law, {"worst": 0.01, "n_status_mismatch": 0}, NOT),
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


def test_thresholds_move_the_verdicts():
    m = {"share_dominant": 0.95, "speed_ratio": 1.5}
    assert cl.rule_corner(m, TH)[0] == PARTLY
    assert cl.rule_corner(m, ClaimThresholds(speed_factor=1.2))[0] == SUPPORTED
    assert cl.rule_corner(m, ClaimThresholds(share_supported=0.99, share_partly=0.97))[0] == NOT


# -- claims on flows -----------------------------------------------------------------------------


def test_claims_table_layout(paper_claims):
    c = paper_claims
    cols = ["claim", "beta", "ref_w", "ref_l", "reference", "subset", "title", "paper", "where", "metric", "value",
            "details", "threshold", "verdict"]  # fmt: skip
    assert list(c.columns) == cols
    assert c["claim"].tolist() == [x.id for x in CLAIMS for _ in range(2)]
    assert c["subset"].tolist() == ["all", "feasible"] * len(CLAIMS)
    assert set(c["verdict"]) <= set(VERDICTS)
    assert c["details"].str.len().min() > 10


def test_paper_setting_verdicts(paper_claims):
    c = paper_claims
    for cid in ("C1", "C2", "C5a", "C6b"):
        assert verdict(c, cid, "all") == verdict(c, cid, "feasible") == [SUPPORTED], cid
    for cid in ("C3", "C4", "C5c", "C6"):
        assert verdict(c, cid, "all") == [PARTLY], cid
    # the top-right corner moves slowly but has no saddle point; and it holds no feasible start
    assert verdict(c, "C5b", "all") == [PARTLY]
    assert verdict(c, "C5b", "feasible") == [NOT]
    row = c[(c["claim"] == "C5b") & (c["subset"] == "feasible")].iloc[0]
    assert np.isnan(row["value"]) and "0 starts in top-right" in row["details"]
    assert "0 stationary points" in row["details"]
    # Remark 1 at the start is true below the diagonal only
    c3 = c[(c["claim"] == "C3") & (c["subset"] == "all")].iloc[0]
    assert c3["value"] == pytest.approx((GRID[:, None] > GRID[None, :]).mean())


def test_claims_flip_with_the_data():
    below = np.array([(a, b) for a in GRID for b in GRID if b < a / 3])  # x1 > 3 x2 everywhere
    c = evaluate_claims(make_flows(points=below), StopRule())
    assert verdict(c, "C3") == [SUPPORTED]
    assert verdict(c, "C4") == [SUPPORTED]
    # a reference that favours p1: p2 falls slower than p1 rises
    c = evaluate_claims(make_flows(GRID, GRID, refs=((0.9, 0.1),)), StopRule())
    assert verdict(c, "C3") == verdict(c, "C4") == [NOT]
    # standard DPO: every start at x = (1, 1), so the corners move in proportion to p0
    c = evaluate_claims(make_flows(GRID, GRID, reference="initial"), StopRule())
    assert verdict(c, "C5a") == verdict(c, "C5c") == [NOT]
    assert verdict(c, "C3") == [PARTLY]


def test_corner_bottom_supported_when_p2_is_small():
    bottom = np.array([(a, b) for a in np.linspace(0.4, 0.9, 8) for b in np.linspace(0.005, 0.1, 8)])
    upper = np.array([(a, b) for a in GRID for b in GRID if b > 0.34])
    c = evaluate_claims(make_flows(points=np.concatenate([bottom, upper])), StopRule())
    assert verdict(c, "C5c") == [SUPPORTED]


def test_law_and_sensitivity_verdicts_from_edited_tables(paper):
    stop = StopRule()
    bent = paper.copy()
    bent["x1_final"] *= 1 + 1e-5
    assert verdict(evaluate_claims(bent, stop), "C6b") == [PARTLY]
    bent["x1_final"] *= 1.01
    assert verdict(evaluate_claims(bent, stop), "C6b") == [NOT]
    slow = paper.copy()
    slow.loc[slow["region"] == "top-right", "t_stop"] *= 10
    assert verdict(evaluate_claims(slow, stop), "C6") == [SUPPORTED]
    flat = paper.assign(p1_final=0.5)
    assert verdict(evaluate_claims(flat, stop), "C6") == [NOT]


def test_timeouts_and_failures_are_left_out_of_the_law(paper):
    f = paper.copy()
    f.loc[:9, "status"] = "failed"
    f.loc[:9, ["x1_final", "x2_final", "p1_final", "p2_final", "t_stop"]] = np.nan
    f.loc[10:19, "status"] = "timeout"
    f.loc[10:19, "x1_final"] = 0.123  # anywhere: a timeout ends off the predicted point
    c = evaluate_claims(f, StopRule())
    assert verdict(c, "C6b") == [SUPPORTED]
    assert "10 timeouts left out" in c.loc[c["claim"] == "C6b", "details"].iloc[0]


def test_empty_feasible_subset_is_not_supported():
    flows = make_flows(np.linspace(0.7, 1, 4), np.linspace(0.7, 1, 4))
    c = evaluate_claims(flows, StopRule())
    feas = c[c["subset"] == "feasible"]
    assert (feas["verdict"] == NOT).all() and feas["value"].isna().all()


def test_several_combinations_and_initial_reference():
    flows = make_flows(GRID[::2], GRID[::2], betas=(0.1, 0.5), reference="initial")
    c = evaluate_claims(flows, StopRule())
    assert len(c) == len(CLAIMS) * 2 * 2
    assert "ref_w" not in c.columns and set(c["beta"]) == {0.1, 0.5}
    assert (c["reference"] == "initial").all()


# -- pieces --------------------------------------------------------------------------------------


def test_predicted_final_matches_the_closed_form(rng):
    refs = np.stack([rng.uniform(0.2, 1, 500), rng.uniform(0.2, 1, 500)], -1)
    x0 = rng.uniform(0.001, 1, (500, 2)) / refs
    x0[:5, 1] = 1e-7 / refs[:5, 1]  # already at the floor
    x0[5:10, 0] = 1 / refs[5:10, 0]  # already at the cap
    stop = StopRule(t_max=1e9)
    res = exact_dpo(x0, beta=0.3, ref_w=refs[:, 0], ref_l=refs[:, 1], stop=stop)
    xf, status = predicted_final(x0, refs, stop)
    assert np.array_equal(status, res["status"])
    np.testing.assert_allclose(xf, np.stack([res["x1_final"], res["x2_final"]], -1), rtol=1e-12, atol=1e-15)


def test_central_difference_on_a_cubic():
    x = np.array([[0.5, 2.0], [1e-3, 3e-4]])
    g = central_difference(lambda y: y[:, 0] ** 3 + y[:, 0] * y[:, 1], x)
    np.testing.assert_allclose(g, np.stack([3 * x[:, 0] ** 2 + x[:, 1], x[:, 0]], -1), rtol=1e-9)


def test_claims_markdown(paper_claims):
    md = claims_markdown(paper_claims, title="Paper setting")
    assert md.startswith("# Paper setting\n")
    for c in CLAIMS:
        assert f"## {c.id}. {c.title}" in md
    # every table row has as many cells as its header: pipes inside cells are escaped
    for block in md.split("\n\n"):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        if rows:
            n = {len(r.replace("\\|", "").split("|")) for r in rows}
            assert len(n) == 1, block
    with pytest.raises(ValueError, match="verdict"):
        claims_markdown(paper_claims.drop(columns="verdict"))


def test_markdown_counts_verdicts_over_combinations():
    flows = make_flows(GRID[::2], GRID[::2], refs=((1.0, 1.0), (0.9, 0.1)))
    md = claims_markdown(evaluate_claims(flows, StopRule()))
    assert "partly supported (1), not supported (1)" in md


def test_law_leaves_out_starts_whose_circle_meets_the_corner():
    # (0.6, 0.8) lies on the unit circle: cap and floor come together and either status is right
    flows = make_flows(np.array([0.3, 0.6]), np.array([0.5, 0.8]))
    corner = np.isclose(flows["p1_0"], 0.6) & np.isclose(flows["p2_0"], 0.8)
    flows.loc[corner, "status"] = "capped" if flows.loc[corner, "status"].iloc[0] == "converged" else "converged"
    c = evaluate_claims(flows, StopRule())
    details = c.loc[(c["claim"] == "C6b") & (c["subset"] == "all"), "details"].iloc[0]
    assert "1 starts on the circle through the corner" in details
    assert "0 with another status" in details
