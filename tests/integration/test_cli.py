"""The command line end to end on tiny experiments: run, analyze, plot, field, reproduce."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flowsim.cli import main

TINY = """name = "{name}"
[loss]
{loss}
[grid]
p1 = {{ start = 0.05, stop = 1.0, num = 6 }}
p2 = {{ start = 0.05, stop = 1.0, num = 6 }}
[solver]
method = "{method}"
"""


def write(folder: Path, name: str, loss: str, method: str = "auto") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(TINY.format(name=name, loss=loss, method=method))
    return path


def test_run_analyze_plot(tmp_path, capsys):
    exp = write(tmp_path, "tiny", "beta = [0.1, 0.5]")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 0
    assert "72 flows" in capsys.readouterr().out
    assert main(["analyze", str(out)]) == 0
    err = capsys.readouterr().err  # each step says what it does and how long it took
    steps = ("reading flows.csv ...", "region tables of 72 flows ...", "claims and their sensitivity ...")
    assert all(f"analyze out: {step}" in err for step in steps)
    claims = pd.read_csv(out / "claims.csv")
    assert claims.groupby("claim").size().eq(4).all()  # every claim: 2 betas x 2 subsets
    judged = claims[claims["verdict"] != "not applicable"]
    assert set(judged["verdict"]) == {"supported", "partly supported", "not supported"}  # the run tells them apart
    assert claims.loc[claims["verdict"] == "not applicable", "details"].str.match(r"not applicable: \S").all()
    assert set(claims["subset"]) == {"all", "feasible"}
    assert (out / "claims.md").read_text().strip()
    regions = pd.read_csv(out / "regions.csv")
    assert regions.groupby(["beta", "subset"])["count"].sum().loc[(0.1, "all")] == 36
    assert main(["plot", str(out)]) == 0
    n_figures = len(list((out / "figures").glob("*.png")))
    assert n_figures >= 7 and f"plot out: figures: {n_figures} figure" in capsys.readouterr().err
    assert main(["plot", str(out), "--quiet"]) == 0 and main(["analyze", str(out), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_analyze_without_results_is_a_clear_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "no flows.csv" in capsys.readouterr().err


def test_field(tmp_path):
    out = tmp_path / "f.png"
    assert main(["field", "--beta", "0.5", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["field", "--beta", "-1", "--out", str(out)]) == 2


def test_reproduce_publishes_and_keeps_the_previous_results(tmp_path):
    exps = tmp_path / "experiments"
    exps.mkdir()
    write(exps, "paper", "beta = 0.1")
    write(exps, "standard", 'reference = "initial"\nbeta = [0.1, 0.5]', method="exact")
    write(exps, "smoke", "beta = 0.1")  # skipped by reproduce
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "flowsim",
        "reproduce",
        "--experiments",
        str(exps),
        "--results",
        str(results),
        "--quiet",
        "--allow-dirty",  # the developer's tree may have changes; refusing them is tested below
    ]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    report = (results / "README.md").read_text()
    assert "standard DPO (reference = SFT model)" in report and "figure1.png" in report
    assert not (results / "smoke").exists() and not (results / ".staging").exists()
    assert json.loads((results / "standard" / "meta.json").read_text())["rows"] == 72
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "claims paper: 32 rows in both: same verdicts; values identical" in second.stdout
    assert (results / ".previous" / "paper" / "flows.csv").read_bytes() == (
        results / "paper" / "flows.csv"
    ).read_bytes()


def test_reproduce_refuses_a_dirty_tree(tmp_path, monkeypatch, capsys):
    import flowsim.app.reproduce as rep

    monkeypatch.setattr(rep, "git_commit", lambda: "0123abc-dirty")
    assert main(["reproduce", "--experiments", str(tmp_path), "--results", str(tmp_path / "r")]) == 2
    assert "uncommitted changes" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["run"], ["plot"], ["frobnicate"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2


def test_more_workers_than_usable_cores_warns(tmp_path, capsys, monkeypatch):
    from flowsim.experiment import parallel

    monkeypatch.setattr(parallel, "usable_cpus", lambda: 1)  # as under `taskset -c 0`
    exp = write(tmp_path, "tiny", "beta = 0.1", method="exact")
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--quiet", "--n-jobs", "2"]) == 0
    assert "warning: --n-jobs 2 is more than the 1 cores here" in capsys.readouterr().err
