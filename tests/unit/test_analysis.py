"""Region tables, claim rules and verdicts, on flows tables built from the closed form."""

import io

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis.claims.c6b_conservation import predicted_final
from flowsim.analysis.claims.measures import central_difference
from flowsim.analysis.studies.dpo_field import CLAIMS, ClaimThresholds, evaluate_claims
from flowsim.analysis.tables import COLUMNS_AFTER_COUNT, check_flows, parameter_columns, region_table
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import NA, NOT, PARTLY, SUPPORTED, VERDICTS, claims_markdown, failed_rows
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
    with pytest.raises(ValueError, match=r"\['ref_w'\]"):
        evaluate_claims(paper.rename(columns={"ref_w": "tau"}), StopRule())
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


# -- claims on flows -----------------------------------------------------------------------------


def test_claims_table_layout(paper_claims):
    c = paper_claims
    cols = [
        "claim",
        "beta",
        "f_divergence",
        "alpha",
        "label_smoothing",
        "ref_w",
        "ref_l",
        "reference",
        "subset",
        "title",
        "paper",
        "where",
        "metric",
        "value",
        "low",
        "high",
        "details",
        "threshold",
        "verdict",
        "uncertain",
        "robustness",
        "n_rows",
        "n_failed",
        "failed_left_out",
        "n_seeds",
        "intervals",
        "model",
        "loss",
    ]
    assert list(c.columns) == [col for col in cols if col in c.columns or col not in _LOSS_EXTRA]
    assert c["claim"].tolist() == [x.id for x in CLAIMS for _ in range(2)]
    assert c["subset"].tolist() == ["all", "feasible"] * len(CLAIMS)
    assert set(c["verdict"]) <= set(VERDICTS)
    assert c["details"].str.len().min() > 10
    assert (c["n_failed"] == 0).all() and (c.loc[c["subset"] == "all", "n_rows"] == len(GRID) ** 2).all()


_LOSS_EXTRA = ("f_divergence", "alpha", "label_smoothing")


def test_paper_setting_verdicts(paper_claims):
    c = paper_claims
    for cid in ("C1", "C2"):
        assert verdict(c, cid, "all") == verdict(c, cid, "feasible") == [SUPPORTED], cid
    # with a reference of 1, x1 = p1 <= 1: Remark 1's argument (x1 ends above 1) fails
    for cid in ("C3", "C5a", "C7", "C8", "C11", "C12"):
        assert verdict(c, cid, "all") == [NOT], cid
    for cid in ("C4", "C5b", "C5c", "C6"):
        assert verdict(c, cid, "all") == [PARTLY], cid
    # the top-right corner holds no feasible start: no evidence, not "not supported"
    assert verdict(c, "C5b", "feasible") == [NA]
    row = c[(c["claim"] == "C5b") & (c["subset"] == "feasible")].iloc[0]
    assert np.isnan(row["value"]) and "0 starts in top-right" in row["details"]
    # the conservation law on closed-form rows is true by construction
    assert verdict(c, "C6b") == [NA]
    assert "by construction" in c.loc[c["claim"] == "C6b", "details"].iloc[0]
    # one reference, one model: the claims across combinations have no evidence
    assert verdict(c, "C9") == verdict(c, "C10") == [NA]


def test_claims_flip_with_the_data():
    # a reference that favours p1: p2 falls slower than p1 rises
    c = evaluate_claims(make_flows(GRID, GRID, refs=((0.9, 0.1),)), StopRule())
    assert verdict(c, "C4") == [NOT]
    # standard DPO: every start at x = (1, 1), x1 rises above 1 and x2 falls below it
    c = evaluate_claims(make_flows(GRID, GRID, reference="initial"), StopRule())
    assert verdict(c, "C3") == [SUPPORTED]
    assert verdict(c, "C5c") == [NOT]


def test_corner_bottom_supported_when_p2_is_small():
    bottom = np.array([(a, b) for a in np.linspace(0.4, 0.9, 8) for b in np.linspace(0.005, 0.1, 8)])
    upper = np.array([(a, b) for a in GRID for b in GRID if b > 0.34])
    c = evaluate_claims(make_flows(points=np.concatenate([bottom, upper])), StopRule())
    assert verdict(c, "C5c") == [SUPPORTED]


def _integrated(flows):
    """The closed-form rows marked as integrated (nfev > 0), so that C6b reads them."""
    return flows.assign(nfev=7)


def test_law_and_sensitivity_verdicts_from_edited_tables(paper):
    stop = StopRule()
    assert verdict(evaluate_claims(_integrated(paper), stop), "C6b") == [SUPPORTED]
    bent = _integrated(paper)
    bent["x1_final"] *= 1 + 1e-5
    assert verdict(evaluate_claims(bent, stop), "C6b") == [PARTLY]
    bent["x1_final"] *= 1.01
    assert verdict(evaluate_claims(bent, stop), "C6b") == [NOT]
    slow = paper.copy()
    slow.loc[slow["region"] == "top-right", "t_stop"] *= 10
    assert verdict(evaluate_claims(slow, stop), "C6") == [SUPPORTED]
    flat = paper.assign(p1_final=0.5)
    assert verdict(evaluate_claims(flat, stop), "C6") == [NOT]


def test_law_reads_only_integrated_rows(paper):
    mixed = paper.copy()
    mixed.loc[: len(paper) // 2, "nfev"] = 11
    mixed.loc[len(paper) // 2 + 1 :, "x1_final"] = 0.5  # closed-form rows: not read
    c = evaluate_claims(mixed, StopRule())
    assert verdict(c, "C6b") == [SUPPORTED]
    assert f"{len(paper) - len(paper) // 2 - 1} closed-form rows" in c.loc[c["claim"] == "C6b", "details"].iloc[0]


def test_few_failures_are_left_out_and_counted(paper):
    f = _integrated(paper)
    f.loc[:8, "status"] = "failed"  # 9 of 900 rows: 1%, not more
    f.loc[:8, ["x1_final", "x2_final", "p1_final", "p2_final", "t_stop"]] = np.nan
    f.loc[10:19, "status"] = "timeout"
    f.loc[10:19, "x1_final"] = 0.123  # anywhere: a timeout ends off the predicted point
    c = evaluate_claims(f, StopRule())
    assert verdict(c, "C6b") == [SUPPORTED]
    details = c.loc[c["claim"] == "C6b", "details"].iloc[0]
    assert "10 timeouts left out" in details and details.startswith("9 failed rows left out")
    assert (c.loc[c["subset"] == "all", "n_failed"] == 9).all()


def test_verdicts_computed_with_failed_rows_are_marked(paper):
    f = _integrated(paper)
    f.loc[:2, "status"] = "failed"  # 3 of 900 rows: every claim on the flows is still judged
    f.loc[:2, ["x1_final", "x2_final", "p1_final", "p2_final", "t_stop"]] = np.nan
    c = evaluate_claims(f, StopRule())
    judged = c[(c["subset"] == "all") & (c["verdict"] != NA)].set_index("claim")
    on_flows = [k for k in judged.index if k not in ("C1", "C2")]  # the identities read no outcome
    assert (judged.loc[on_flows, "failed_left_out"] == 3).all()
    assert (judged.loc[["C1", "C2"], "failed_left_out"] == 0).all()
    assert judged.loc[on_flows, "details"].str.startswith("3 failed rows left out").all()
    assert (c.loc[c["verdict"] == NA, "failed_left_out"] == 0).all()
    assert (evaluate_claims(paper, StopRule())["failed_left_out"] == 0).all()
    md = claims_markdown(c)
    head, sections = md.split("\n## ", 1)
    assert "marked † (claims.csv: column failed_left_out)" in head
    assert "| not supported, robust, † 1 with failed rows left out |" in head  # C3, per subset
    c3 = sections.split("## C4.")[0]
    assert c3.count("**not supported** † |") == 2  # the failed starts are feasible: both subsets
    c1 = md.split("## C1.")[1].split("## C2.")[0]
    assert "†" not in c1


def test_many_failures_make_the_claims_not_applicable(paper):
    f = paper.copy()
    f.loc[:99, "status"] = "failed"  # 100 of 900 rows
    c = evaluate_claims(f, StopRule())
    all_ = c[c["subset"] == "all"]
    reads_flows = all_[~all_["claim"].isin(["C1", "C2", "C9", "C10"])]
    assert (reads_flows["verdict"] == NA).all()
    assert reads_flows["details"].str.contains("100 of 900 rows failed").all()
    assert verdict(c, "C1") == [SUPPORTED]  # the identities read the starts only


def test_empty_feasible_subset_is_not_applicable():
    flows = make_flows(np.linspace(0.7, 1, 4), np.linspace(0.7, 1, 4))
    c = evaluate_claims(flows, StopRule())
    feas = c[c["subset"] == "feasible"]
    assert (feas["verdict"] == NA).all() and feas["value"].isna().all()


def test_several_combinations_and_initial_reference():
    flows = make_flows(GRID[::2], GRID[::2], betas=(0.1, 0.5), reference="initial")
    c = evaluate_claims(flows, StopRule())
    assert len(c) == len(CLAIMS) * 2 * 2
    assert "ref_w" not in c.columns and set(c["beta"]) == {0.1, 0.5}
    assert (c["reference"] == "initial").all()


def test_other_models_and_losses_are_not_applicable_without_their_field(paper):
    c = evaluate_claims(paper.assign(model="logits"), StopRule())
    for cid in ("C1", "C2", "C6b"):  # the claims about the ratio plane
        assert verdict(c, cid) == [NA]
        assert "speaks of the model(s) ratio, not logits" in c.loc[c["claim"] == cid, "details"].iloc[0]
    # the field of another model needs the experiment
    assert verdict(c, "C8") == [NA]
    assert "needs the experiment" in c.loc[c["claim"] == "C8", "details"].iloc[0]
    # claims on the flows' outcomes need no field
    assert verdict(c, "C3") == [NOT]
    c = evaluate_claims(paper.assign(loss="ipo"), StopRule())
    assert verdict(c, "C1") == [NA] and "not ipo" in c.loc[c["claim"] == "C1", "details"].iloc[0]


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
    assert "failed" not in md.split("##")[0]


def test_markdown_says_how_many_rows_failed(paper):
    f = paper.copy()
    f.loc[:99, "status"] = "failed"
    c = evaluate_claims(f, StopRule())
    assert failed_rows(c) == (100, 900)
    head = claims_markdown(c).split("## ")[0]
    assert "**100 of 900 flows failed** (11.1%)" in head


def test_law_leaves_out_starts_whose_circle_meets_the_corner():
    # (0.6, 0.8) lies on the unit circle: cap and floor come together and either status is right
    flows = _integrated(make_flows(np.array([0.3, 0.6]), np.array([0.5, 0.8])))
    corner = np.isclose(flows["p1_0"], 0.6) & np.isclose(flows["p2_0"], 0.8)
    flows.loc[corner, "status"] = "capped" if flows.loc[corner, "status"].iloc[0] == "converged" else "converged"
    c = evaluate_claims(flows, StopRule())
    details = c.loc[(c["claim"] == "C6b") & (c["subset"] == "all"), "details"].iloc[0]
    assert "1 starts on the circle through the corner" in details
    assert "0 with another status" in details


def test_reproduce_comparison_reads_the_reports_commit_as_provenance(tmp_path):
    """A report that differs only in the commit it names is the same report; any other change differs."""
    from flowsim.app.reproduce import compare_results

    line = "Produced by `flowsim reproduce` (flowsim 0.2.0, commit `{}`). Every number below ..."
    for root, commit in ((tmp_path / "old", "c78233a4424838c001f31fcbe262a178d43b4a72"), (tmp_path / "new", "ef0486f")):
        root.mkdir()
        (root / "README.md").write_text(line.format(commit))
        for figure in ("figure1.png", "figure1_log.png"):
            (root / figure).write_bytes(b"png")
    assert "same (3 files identical)" in compare_results(tmp_path / "old", tmp_path / "new", [])
    (tmp_path / "new" / "README.md").write_text(line.format("ef0486f").replace("Every", "Each"))
    assert "README.md: differs" in compare_results(tmp_path / "old", tmp_path / "new", [])


def test_reproduce_comparison_counts_a_report_file_missing_on_both_sides_as_no_difference(tmp_path):
    """A report file neither run made is no difference; one the old results had is 'not made this time'."""
    from flowsim.app.reproduce import compare_results

    for root in (tmp_path / "old", tmp_path / "new"):
        root.mkdir()
        (root / "README.md").write_text("report")
    assert "same (1 files identical)" in compare_results(tmp_path / "old", tmp_path / "new", [])
    (tmp_path / "old" / "figure1.png").write_bytes(b"png")
    said = compare_results(tmp_path / "old", tmp_path / "new", [])
    assert "figure1.png: not made this time" in said and "0 new, 1 not made" in said
