"""Every parameterisation, several losses and the optimisers through run, analyze and plot.

Small grids of the shipped experiments' shapes: the rows, the new columns, and that the
tables and figures are made for each (issues #10-#12).
"""

import numpy as np
import pytest

from flowsim.app.analyze import analyze
from flowsim.app.plot import plot
from flowsim.experiment.config import parse_experiment
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.store import read_flows

GRID = {"p1": {"start": 0.1, "stop": 0.9, "num": 4}, "p2": {"start": 0.1, "stop": 0.9, "num": 4}}


def _run(tmp_path, doc):
    exp = parse_experiment({"name": "t", "grid": GRID} | doc)
    out = tmp_path / "run"
    meta = run_sweep(exp, out, n_jobs=1, progress=False)
    return exp, out, meta, read_flows(out)


def test_features_sweep_records_displacement_and_leaves_out_infeasible_starts(tmp_path):
    doc = {"model": {"kind": "features", "cos_wl": [0.0, 0.99], "reference": "initial"}, "stop": {"t_max": 1e4}}
    _, out, meta, flows = _run(tmp_path, doc)
    g = np.linspace(0.1, 0.9, 4)
    keep = int((g[:, None] + g[None, :] < 1).sum())  # the starts a normalised model can take
    assert meta["starts_left_out"] == 16 - keep and len(flows) == 2 * keep
    assert set(flows["model"]) == {"features"} and set(flows["dynamics"]) == {"flow"}
    by = flows.groupby("cos_wl")
    # identical directions (cos 0.99): p_w is displaced; orthogonal features: it is not
    assert by["displaced"].mean()[0.99] == 1.0 and by["displaced"].mean()[0.0] == 0.0
    assert np.all(flows["rest_final"].between(0, 1)) and flows["top_other"].between(2, 9).all()
    written = analyze(out)
    assert all(p.exists() for p in written)
    # the default set and every combination's own files, drawn once (the default set without them,
    # a model-independent choice of plot_results, is tests/integration/test_figure_set.py's)
    figures = {p.name for p in plot(out, every=True)}
    assert {"facet_displaced.png", "paths_all.png"} <= figures
    assert any(f.startswith("displaced_") for f in figures) and any(f.startswith("paths_beta") for f in figures)


def test_ratio_plane_records_where_paths_leave_the_simplex(tmp_path):
    _, _, _, flows = _run(tmp_path, {"loss": {"beta": 0.1}})
    left = flows["max_mass"] > 1
    assert left.any() and (flows.loc[left, "p1_0"] + flows.loc[left, "p2_0"] <= 1).any()  # from feasible starts too
    assert flows["rest_final"].isna().all() and flows["top_other"].isna().all()


def test_losses_side_by_side_on_logits(tmp_path):
    doc = {
        "loss": {"kind": ["dpo", "ipo", "simpo"]},
        "model": {"kind": "logits", "reference": "initial"},
        "stop": {"margin_target": 4.0},
    }
    _, out, _, flows = _run(tmp_path, doc)
    assert list(flows["loss"].unique()) == ["dpo", "ipo", "simpo"]
    assert flows.loc[flows["loss"] == "dpo", "simpo_gamma"].isna().all()  # a parameter dpo does not take
    assert set(flows["status"]) <= {"reached_margin", "stationary"}
    reached = flows["margin_final"][flows["status"] == "reached_margin"].to_numpy()
    assert len(reached) and reached == pytest.approx(4.0, abs=1e-6)
    analyze(out)


def test_optimisers_beside_the_flow(tmp_path):
    doc = {
        "model": {"kind": "logits", "reference": "initial"},
        "dynamics": {"kind": ["flow", "gd", "adam"], "gd": {"lr": 1.0}, "adam": {"lr": 0.01}},
        "stop": {"loss_target": 0.3, "p2_floor": 1e-12},
    }
    _, out, _, flows = _run(tmp_path, doc)
    assert list(flows["dynamics"].unique()) == ["flow", "gd", "adam"]
    assert set(flows["status"]) == {"reached_loss"}
    flow, gd = (flows[flows["dynamics"] == k].reset_index() for k in ("flow", "gd"))
    assert flow["steps"].isna().all() and (gd["steps"] > 0).all()
    np.testing.assert_allclose(gd["t_stop"], gd["steps"] * 1.0)  # t = lr x steps
    np.testing.assert_allclose(gd["p1_final"], flow["p1_final"], rtol=0.05)  # GD at lr 1 stays near the flow
    figures = plot(out)
    assert any(p.name.startswith("paths_overlay_") for p in figures)


@pytest.mark.parametrize("model", [{"kind": "ratio"}, {"kind": "logits", "reference": "initial"}])
def test_the_batched_engine_gives_the_drivers_rows(tmp_path, model):
    doc = {"loss": {"beta": [0.1, 0.5]}, "model": model}
    _, _, _, driver = _run(tmp_path / "d", doc)
    _, _, _, batched = _run(tmp_path / "b", doc | {"solver": {"engine": "batched"}})
    assert (driver["status"] == batched["status"]).all()
    for k in ("t_stop", "p1_final", "p2_final", "max_mass"):
        np.testing.assert_allclose(batched[k], driver[k], rtol=1e-9, err_msg=k)
