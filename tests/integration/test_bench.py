"""The benchmark keeps working (a tiny grid, seconds); no timing is asserted: machines are shared."""

import importlib.util
import json
import math

import numpy as np
import pandas as pd

from flowsim.app.bench import baseline_flow, main, points, rel_err, run_child
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo


def test_quick_benchmark_writes_every_line(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["--quick", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert {"scan", "batched_vs_driver", "timed", "optimiser", "machine"} <= set(table["line"])
    assert set(table.loc[table["line"] == "optimiser", "contender"]) == {"gd", "momentum", "adam", "adamw"}
    if importlib.util.find_spec("torch") is not None:  # the network line: trainings/s and steps/s
        net = table[table["line"] == "network"].iloc[0]
        assert net["n"] == 4 and net["flows_per_s"] > 0 and net["value"] > 0
    timed = table[table["line"] == "timed"]
    expected = {
        "ratio": {"naive", "driver", "batched", "closed", "run"},
        "logits": {"driver", "batched", "closed", "run"},
    }
    for problem, contenders in expected.items():
        mine = timed[timed["problem"] == problem]
        assert set(mine["contender"]) == contenders
        assert set(mine["accuracy"]) == {"required", "achieved", "exact"}
        assert (mine["flows_per_s"] > 0).all() and mine["statuses_agree"].all()
        assert set(mine.loc[~mine["contender"].isin(["closed", "run"]), "workers"]) == {1, 2}
        assert (mine.loc[mine["contender"] == "run", "process"] == "whole").all()
        # at equal required accuracy every contender meets the bar against the closed form
        required = mine[mine["accuracy"] == "required"]
        assert (required["worst_rel_err"] <= 1e-6).all()
    check = table[table["line"] == "batched_vs_driver"]
    assert check["statuses_agree"].all() and (check["worst_rel_err"] <= 1e-6).all()
    printed = capsys.readouterr().out
    assert "tolerance scan" in printed and "equal achieved accuracy" in printed and f"written to {out}" in printed


def test_scratch_folder_unless_published(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake = lambda **kw: print(json.dumps({k: str(v) for k, v in kw.items()}))
    monkeypatch.setattr("flowsim.app.bench.report.run", fake)
    main(["--quick"])
    main(["--quick", "--publish"])
    first, second = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert first["publish"] == "False" and second["publish"] == "True"


def test_a_child_run_saves_its_rows(tmp_path, capsys):
    path = tmp_path / "run.npz"
    spec = {
        "problem": "ratio",
        "contender": "batched",
        "num": 4,
        "workers": 1,
        "rtol": 1e-9,
        "out": str(path),
        "backend": "fork",
    }
    assert run_child(spec) == 0
    assert json.loads(capsys.readouterr().out)["compute"] > 0
    with np.load(path) as z:
        p0, _ = points("ratio", 4)
        assert rel_err(z["t_stop"], exact_dpo(p0, beta=0.1)["t_stop"]).max() <= 1e-6


def test_the_baseline_is_the_plain_flow():
    x0 = np.array([[0.3, 0.6], [0.95, 0.5], [0.5, 1e-7], [1.0, 0.3]])
    exact = exact_dpo(x0, beta=0.1)
    got = [baseline_flow(x.tolist(), 0.1, 1e-9, 1e-12) for x in x0]
    assert rel_err([g[0] for g in got], exact["t_stop"]).max() <= 1e-6
    assert [g[2] for g in got] == exact["status"].tolist()
    assert got[2][:2] == got[3][:2] == (0.0, 0)  # already stopped


def test_rel_err_conventions():
    err = rel_err([1.0, 0.0, 2.0, math.nan, 1.0], [1.0, 0.0, 1.0, 1.0, 0.0])
    assert err.tolist() == [0.0, 0.0, 1.0, math.inf, math.inf]
