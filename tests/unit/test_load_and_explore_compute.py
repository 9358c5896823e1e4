"""flowsim.load (a run folder as Python objects) and what the explore page computes, without a browser."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import flowsim
from flowsim.app.analyze import analyze
from flowsim.app.explore import compute
from flowsim.experiment.config import ConfigError
from flowsim.experiment.store import DamagedResults


@pytest.fixture(scope="module")
def folder(tmp_path_factory, small_exact_run):
    """A 2 x 5 x 5 DPO run by the closed form (fast), not yet analysed."""
    return small_exact_run(tmp_path_factory.mktemp("load"), "tiny")


def test_load_gives_the_rows_meta_and_experiment(folder):
    res = flowsim.load(folder)
    assert res.folder == folder and "load" in flowsim.__all__
    raw = pd.read_csv(folder / "flows.csv")
    pd.testing.assert_frame_equal(res.flows.drop(columns="message"), raw.drop(columns="message"))
    assert (res.flows["message"] == "").all()
    meta, run = (json.loads((folder / name).read_text()) for name in ("meta.json", "run.json"))
    assert len(res.flows) == 50 and res.meta == meta | run and "wall_time_s" in res.meta
    assert res.experiment.name == "tiny" and res.experiment.loss_params["beta"] == (0.1, 0.5)
    assert res.claims is None and res.regions is None and "not analysed" in repr(res)
    assert flowsim.load(folder / "flows.csv").folder == folder  # the flows.csv itself names the folder
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.flows = None


def test_load_after_analyze_has_the_claims_and_regions(tmp_path, folder):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(folder, copy)
    analyze(copy)
    res = flowsim.load(copy)
    pd.testing.assert_frame_equal(res.claims, pd.read_csv(copy / "claims.csv"))
    assert set(res.claims["claim"]) >= {"C1", "C6"} and set(res.claims["beta"]) == {0.1, 0.5}
    assert len(res.regions) == len(pd.read_csv(copy / "regions.csv")) and "analysed" in repr(res)


def test_load_refuses_a_damaged_or_missing_folder(tmp_path, folder):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(folder, copy)
    with (copy / "flows.csv").open("a") as fh:
        fh.write("0.1,0.1\n")
    with pytest.raises(DamagedResults, match=r"does not match its meta\.json"):
        flowsim.load(copy)
    with pytest.raises(FileNotFoundError, match=r"holds no flows\.csv"):
        flowsim.load(tmp_path / "nowhere")


def test_load_refuses_a_damaged_claims_table(tmp_path, folder):
    import shutil

    copy = tmp_path / "tiny"
    shutil.copytree(folder, copy)
    (copy / "claims.csv").write_text('claim,value\n"C1,1\n')  # a quote never closed (a cut-short file)
    with pytest.raises(DamagedResults, match=r"claims\.csv cannot be read as a table \(ParserError\)"):
        flowsim.load(copy)


# --- the explore page's computations -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(folder):
    res = flowsim.load(folder)
    row = res.flows.iloc[7]
    combo = res.experiment.combo_of(row) | {"reference": "fixed", "ref_w": 1.0, "ref_l": 1.0}
    return res, row, combo


def test_the_run_setting_round_trips_through_the_page(tiny):
    res, row, combo = tiny
    setting = compute.setting_of(res.experiment, row)
    assert setting == compute.Setting(beta="0.1")
    exp = compute.experiment_of(setting, res.experiment, combo)
    assert exp.parameter_sets() == [combo | {"dynamics": "flow"}]
    assert exp.stop == res.experiment.stop and exp.engine == "auto"  # the page integrates: it draws the path


def test_a_trajectory_is_the_flow_integrate_gives(tiny):
    res, row, combo = tiny
    exp = compute.experiment_of(compute.Setting(beta="0.1"), res.experiment, combo)
    tr = compute.trajectory(exp, exp.parameter_sets()[0], [row.p1_0, row.p2_0])
    want = flowsim.integrate(flowsim.DPO(beta=0.1), [row.p1_0, row.p2_0], stop=exp.stop, options=exp.solver, path=True)
    np.testing.assert_array_equal(np.c_[tr.p1, tr.p2], want.path_x)
    np.testing.assert_array_equal(tr.t, want.path_t)
    assert tr.status == want.status == row.status
    np.testing.assert_allclose(
        [tr.p1[-1], tr.p2[-1], tr.t_stop], [row.p1_final, row.p2_final, row.t_stop], rtol=1e-8
    )  # integrated vs the run's closed form


def test_an_optimiser_trajectory_replays_run_discrete(tiny):
    res, _, combo = tiny
    exp = compute.experiment_of(compute.Setting(dynamics="gd", lr="0.05"), res.experiment, combo)
    tr = compute.trajectory(exp, exp.parameter_sets()[0], [0.3, 0.6])
    from flowsim.dynamics.optimisers import GD, run_discrete
    from flowsim.model.parameterisations import RatioPlane

    rec = run_discrete(flowsim.DPO(0.1), RatioPlane().bind([[0.3, 0.6]], [[1.0, 1.0]]), GD(lr=0.05), exp.stop)
    assert tr.evaluations == rec["steps"][0] and tr.status == rec["status"][0]
    np.testing.assert_allclose([tr.p1[-1], tr.p2[-1]], [rec["p1_final"][0], rec["p2_final"][0]], rtol=1e-12)
    assert tr.t[0] == 0 and tr.t[-1] == pytest.approx(0.05 * rec["steps"][0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"beta": "-1"}, "page: loss.beta must be a number in"),
        ({"beta": "abc"}, "page: loss.beta must be a number; got 'abc'"),
        ({"ref_w": "2"}, "page: loss.ref_w must be in (0, 1]; got 2.0"),
        ({"dynamics": "gd", "lr": "0"}, "page: dynamics.lr must be a finite number > 0; got 0.0"),
        ({"model": "nope"}, "page: model.kind must be one of"),
    ],
)
def test_bad_page_input_gets_flowsims_own_messages(tiny, change, message):
    res, _, combo = tiny
    with pytest.raises(ConfigError) as info:
        compute.experiment_of(dataclasses.replace(compute.Setting(), **change), res.experiment, combo)
    assert str(info.value).startswith(message), str(info.value)


def test_a_start_the_model_cannot_take_is_refused_with_a_reason(tiny):
    res, _, combo = tiny
    exp = compute.experiment_of(compute.Setting(model="logits"), res.experiment, combo)
    with pytest.raises(compute.StartError, match="needs p1 \\+ p2 < 1"):
        compute.trajectory(exp, exp.parameter_sets()[0], [0.7, 0.5])
    with pytest.raises(compute.StartError, match="outside"):
        compute.trajectory(exp, exp.parameter_sets()[0], [1.2, 0.1])


def test_the_field_is_figure_1s_minus_grad_l(tiny):
    # Theorem 1: dx1/dt = beta s / x1, dx2/dt = -beta s / x2, s = x2^b / (x1^b + x2^b); p = ref x
    res, _, combo = tiny
    for ref in ((1.0, 1.0), (0.5, 0.25)):
        c = combo | {"ref_w": ref[0], "ref_l": ref[1]}
        f = compute.field(res.experiment, c, n=9)
        x1, x2, b = f["p1"] / ref[0], f["p2"] / ref[1], 0.1
        s = x2**b / (x1**b + x2**b)
        np.testing.assert_allclose(f["v1"], ref[0] * b * s / x1, rtol=1e-6)
        np.testing.assert_allclose(f["v2"], -ref[1] * b * s / x2, rtol=1e-6)
    a = compute.arrows(f, 9)
    length = np.hypot(a["x1"] - a["x0"], a["y1"] - a["y0"])
    assert np.all(length <= 0.9 / 9 + 1e-12) and np.all(length >= 0.25 / 9 - 1e-12)
    assert np.argmax(length) == np.argmax(f["speed"])


def test_the_heatmap_cells_tile_a_mesh(tiny):
    res, _, _ = tiny
    w, h = compute.cells(res.flows[res.flows.beta == 0.1])
    np.testing.assert_allclose(w, 0.2) and np.testing.assert_allclose(h, 0.2)
    assert "t_stop" in compute.numeric_columns(res.flows) and "region" not in compute.numeric_columns(res.flows)
