"""The network model end to end: a sweep of trainings into a run folder, resumed, and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from flowsim.analysis.tables import region_table  # noqa: E402
from flowsim.experiment.config import ConfigError, parse_experiment  # noqa: E402
from flowsim.experiment.execute import run_sweep  # noqa: E402
from flowsim.experiment.store import RunFolder, read_flows  # noqa: E402
from flowsim.experiment.sweep import chunks, n_rows, run_chunk  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

EXTRA = Network.extra_columns

SMALL = {"kind": "network", "reference": "initial", "vocab": 8, "width": 8, "sft_steps": 60, "sft_lr": 0.05}
DOC = {
    "name": "net",
    "loss": {"kind": ["dpo", "ipo"], "beta": 0.5},
    "model": SMALL | {"n_pairs": [1, 4]},
    "dynamics": {"kind": ["gd", "adam"], "gd": {"lr": 0.05}, "adam": {"lr": 0.002}},
    "stop": {"max_steps": 80, "p2_floor": 1e-12},
}


def test_a_sweep_of_trainings_is_a_run_folder_whose_rows_do_not_depend_on_workers(tmp_path):
    exp = parse_experiment(DOC)
    meta = run_sweep(exp, tmp_path / "a", n_jobs=2, progress=False)
    flows = read_flows(tmp_path / "a")
    # 2 losses x 2 sizes x 2 optimisers trainings; a row per pair
    assert meta["rows"] == len(flows) == n_rows(exp) == 2 * (1 + 4) * 2
    assert set(flows["model"]) == {"network"}
    # no loss or margin target: a training ends converged (every p_l <= the floor), stationary or by the clock,
    # and a pair is "converged" where its own p_l is under the floor, else its training's status
    ends = set(flows["train_status"])
    assert ends <= {"timeout", "converged", "stationary"} and "timeout" in ends
    assert (flows.loc[flows["train_status"] == "timeout", "steps"] == 80).all()
    pair = np.where(flows["p2_final"] <= 1e-12, "converged", flows["train_status"])
    assert flows["status"].tolist() == pair.tolist()
    assert set(EXTRA) <= set(flows.columns)
    four = flows[flows["n_pairs"] == 4]
    assert sorted(set(four["pair"])) == [0, 1, 2, 3]
    means = four.groupby(["loss", "dynamics"])["p1_0"].mean()
    np.testing.assert_allclose(means.to_numpy(), four.groupby(["loss", "dynamics"])["p1_0_mean"].first())
    assert np.all(flows["x1_0"].round(12) == 1.0)  # the reference is each pair's SFT checkpoint
    # the existing region tables read network rows: every row counted once, in its start's region
    table = region_table(flows)
    every = table[table["subset"] == "all"]
    assert every["count"].sum() == len(flows) and every["n_timeout"].sum() == (flows["status"] == "timeout").sum()
    counts = every.groupby("region")["count"].sum()
    assert counts[counts > 0].to_dict() == flows["region"].value_counts().to_dict()
    assert "share_l_faster_0" in table  # the field recorded at the start, a network's
    again = run_sweep(exp, tmp_path / "c", n_jobs=1, chunk_size=1, progress=False)
    assert again["flows_sha256"] == meta["flows_sha256"]  # rows do not depend on the workers


def test_an_interrupted_network_sweep_resumes_to_the_same_rows(tmp_path, monkeypatch):
    exp = parse_experiment(DOC | {"loss": {"kind": "dpo", "beta": 0.5}, "model": SMALL | {"n_pairs": [1, 4]}})
    whole = run_sweep(exp, tmp_path / "whole", n_jobs=1, progress=False)
    real, written = RunFolder.write_chunk, []

    def write_chunk(self, index, *a, **k):  # interrupted once two trainings are written
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(index)
        return real(self, index, *a, **k)

    monkeypatch.setattr(RunFolder, "write_chunk", write_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(exp, tmp_path / "cut", n_jobs=1, progress=False)
    monkeypatch.setattr(RunFolder, "write_chunk", real)
    assert len(sorted((tmp_path / "cut" / ".partial").glob("chunk_*.json"))) == 2
    resumed = run_sweep(exp, tmp_path / "cut", n_jobs=1, resume=True, progress=False)
    assert resumed["flows_sha256"] == whole["flows_sha256"] and resumed["rows"] == whole["rows"] == 2 * (1 + 4)


def test_sft_targets_come_from_the_grid():
    doc = {
        "name": "t",
        "model": SMALL | {"sft": "target", "sft_steps": 200, "path_points": 3},
        "dynamics": {"kind": "gd", "lr": 0.05},
        "grid": {"p1": {"start": 0.2, "stop": 0.6, "num": 2}, "p2": {"start": 0.1, "stop": 0.3, "num": 2}},
        "stop": {"max_steps": 5},
    }
    exp = parse_experiment(doc)
    df = run_chunk(exp, next(chunks(exp, 16)))
    assert len(df) == 4
    np.testing.assert_allclose(df[["p1_0", "p2_0"]], df[["target_w", "target_l"]], rtol=0.1)
    for _, row in df.iterrows():  # the trajectory: start, middle and stop, as [t, log p_w, log p_l]
        path = np.array(json.loads(row["path"]))
        assert path.shape == (3, 3) and path[0, 0] == 0.0 and path[-1, 0] == row["t_stop"]
        np.testing.assert_allclose(path[0, 1:], [row["logp_w0"], row["logp_l0"]], rtol=1e-12)
        np.testing.assert_allclose(path[-1, 1:], [row["logp_w_final"], row["logp_l_final"]], rtol=1e-12)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"dynamics": {"kind": "flow"}}, "dynamics.kind has no network version"),
        ({"model": SMALL | {"n_prompts": 3}}, "model.n_prompts must be <= n_pairs = 1"),
        (
            {"grid": {"p1": {"start": 0.2, "stop": 0.6, "num": 2}, "p2": {"start": 0.1, "stop": 0.3, "num": 2}}},
            'grid is read only by model.sft = "target"',
        ),
        ({"model": SMALL | {"sft": "target"}}, 'grid is required with model.sft = "target"'),
    ],
)
def test_network_experiments_are_validated(patch, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment({"name": "t", "model": SMALL, "dynamics": {"kind": "gd"}} | patch)


def test_without_torch_the_cli_exits_2_naming_the_extra(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text('name = "n"\n[model]\nkind = "network"\n[dynamics]\nkind = "gd"\n')
    # torch made unimportable: a meta-path finder that refuses it, installed before flowsim runs
    code = (
        "import sys, importlib.abc\n"
        "class No(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, No())\n"
        "import importlib.util\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'torch' else _f(name, *a)\n"
        "from flowsim.cli import main\n"
        f"sys.exit(main(['run', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    code = code.replace("import importlib.util\n", "import importlib.util\n_f = importlib.util.find_spec\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install -e ".[nn]"' in lines[0] and "model.kind" in lines[0], out.stderr


def test_reference_modes_on_a_network():
    # "initial": pi_ref = each pair's SFT checkpoint (x0 = 1); "none": pi_ref = 1 (x0 = p0)
    doc = {
        "name": "t",
        "model": SMALL | {"n_pairs": 3, "sft_steps": 10, "reference": ["initial", "none"]},
        "dynamics": {"kind": "gd", "lr": 0.05},
        "stop": {"max_steps": 3},
    }
    exp = parse_experiment(doc)
    rows = {c.combo["reference"]: run_chunk(exp, c) for c in chunks(exp, 16)}
    np.testing.assert_allclose(rows["initial"][["x1_0", "x2_0"]], 1.0, rtol=1e-12)
    np.testing.assert_allclose(rows["none"][["x1_0", "x2_0"]].to_numpy(), rows["none"][["p1_0", "p2_0"]].to_numpy())
    np.testing.assert_allclose(rows["none"][["ref_w", "ref_l"]], 1.0)
    # the same SFT checkpoint either way; only the loss's reference differs
    np.testing.assert_array_equal(rows["none"]["logp_w0"], rows["initial"]["logp_w0"])


def test_a_network_run_is_analysed_and_plotted(tmp_path, capsys, monkeypatch):
    """analyze: every claim a verdict or "not applicable" with its reason, C4 and C8 reading the recorded
    field; plot: the network's own families (starts maps, trajectories), not the grid heatmaps, with the
    replicate seeds pooled in each panel (as the analysis pools them)."""
    import flowsim.plotting.results as results
    from flowsim.app.analyze import analyze
    from flowsim.app.plot import plot

    doc = {
        **DOC,
        "loss": {"kind": "dpo", "beta": 0.5},
        "dynamics": {"kind": "gd", "gd": {"lr": 0.05}},
        "model": SMALL
        | {"n_pairs": 4, "edit_distance": [1, 2], "init_seed": [0, 1], "path_points": 8, "sft": "target"},
        "grid": {"p1": {"start": 0.2, "stop": 0.4, "num": 2}, "p2": {"start": 0.3, "stop": 0.5, "num": 2}},
    }
    run_sweep(parse_experiment(doc), tmp_path, n_jobs=1, progress=False)
    analyze(tmp_path)
    panels = []
    real = results.panels_of
    monkeypatch.setattr(results, "panels_of", lambda flows, params: panels.append(params) or real(flows, params))
    claims = pd.read_csv(tmp_path / "claims.csv")
    na = claims[claims["verdict"] == "not applicable"]
    assert na["details"].str.match(r"not applicable: \S").all()
    judged = set(claims.loc[claims["verdict"] != "not applicable", "claim"])
    assert {"C3", "C6", "C9", "C12", "LD"} <= judged  # C9 across edit_distance, the network's axis
    c4 = claims[(claims["claim"] == "C4") & (claims["verdict"] != "not applicable")]
    assert len(c4) and not c4["details"].str.contains("at t = 0: n/a").any()  # the field, read from the rows
    names = sorted(p.name for p in plot(tmp_path))
    assert "trajectories.png" in names and "starts_p1_final.png" in names
    assert "edit_distance" in panels[0] and "init_seed" not in panels[0]
    assert not any(n.startswith(("p1_final_", "basin_", "paths_", "facet_")) for n in names)
    pytest.importorskip("bokeh")
    from flowsim.cli import main

    assert main(["explore", str(tmp_path)]) == 2  # the page recomputes policy flows, which a network is not
    assert "is a run of trained networks" in capsys.readouterr().err
