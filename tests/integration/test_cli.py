"""The command line end to end on tiny experiments: run, analyze, plot, field, reproduce."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

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


def test_run_analyze_plot(tmp_path, capsys, monkeypatch):
    exp = write(tmp_path, "tiny", "beta = [0.1, 0.5]")
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 0
    assert "72 flows" in capsys.readouterr().out
    assert main(["analyze", str(out)]) == 0
    err = capsys.readouterr().err  # each step says what it does and how long it took
    steps = (
        "reading flows.csv ...",
        "region tables of 72 flows ...",
        "claims of every study that applies, and their sensitivity ...",
    )
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
    # --quiet: nothing on stderr (the figures, drawn above, are built again but not rendered)
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: Path(path).write_bytes(b""))
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


def _tiny_experiments(folder: Path) -> Path:
    exps = folder / "experiments"
    exps.mkdir()
    # two combinations each: the default figure set (one combination also draws every per-combination file,
    # twice the figures, which is most of a reproduction's time; the per-combination set is test_figure_set's)
    write(exps, "paper", "beta = [0.1, 0.5]")
    write(exps, "standard", 'reference = "initial"\nbeta = [0.1, 0.5]', method="exact")
    write(exps, "smoke", "beta = 0.1")  # skipped by reproduce
    return exps


def _reproduce(*args: str, cwd: Path | None = None, quiet: bool = True) -> subprocess.CompletedProcess:
    flags = ["--quiet"] if quiet else []
    res = subprocess.run(
        [sys.executable, "-m", "flowsim", "reproduce", *flags, *args], capture_output=True, text=True, cwd=cwd
    )
    assert res.returncode == 0, res.stderr
    return res


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_reproduce_and_update_twice_on_a_clean_clone_leave_it_clean(tmp_path):
    """The README's first command between two --update runs: exit 0, "same", and `git status` clean after each.

    Three reproductions (each ~9 s of CPU, most of it figures): the second --update replaces existing
    results as a second `flowsim reproduce` replaces its scratch folder (the same code, with `out` the
    committed folder), and checks more: the kept generation, and that tracked files stay clean.
    """
    from flowsim.app.reproduce import compare_results

    repo = tmp_path / "clone"
    repo.mkdir()
    _tiny_experiments(repo)
    shutil.copy(Path(__file__).parents[2] / ".gitignore", repo / ".gitignore")  # the project's own ignore list
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "empty")
    # --allow-dirty: the developer's tree may have changes; refusing them is tested below
    first = _reproduce("--update", "--allow-dirty", cwd=repo)  # the committed results, as the lead makes them
    results = repo / "results"
    assert "no earlier results to compare with" in first.stdout
    report = (results / "README.md").read_text()
    assert "standard DPO (reference = SFT model)" in report and "figure1.png" in report
    # a subset of the experiments: the report names what it lacks, and reproduce said so before running
    assert "> **Missing:** *How the verdicts change with β* lacks the experiment `beta`" in report
    assert "flowsim: warning: the report will mark sections missing" in first.stderr and "beta (" in first.stderr
    assert not (results / "smoke").exists() and not (results / ".staging").exists()
    assert json.loads((results / "standard" / "meta.json").read_text())["rows"] == 72
    assert "wall_time_s" in json.loads((results / "standard" / "run.json").read_text())
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results")
    assert "results/paper/meta.json" in _git(repo, "ls-files") and "run.json" not in _git(repo, "ls-files")
    res = _reproduce(cwd=repo, quiet=False)
    assert "compared with results: same (" in res.stdout, res.stdout
    assert _git(repo, "status", "--porcelain") == ""
    # the parallel analyse-and-plot parts share one progress bar (the workers' own bars interleaved)
    assert "reproduce: analyse and plot" in res.stderr and "4/4" in res.stderr
    assert ": figures" not in res.stderr and "analyze paper" not in res.stderr
    assert (repo / "runs" / "reproduce" / "paper" / "meta.json").exists()
    again = _reproduce("--update", "--allow-dirty", cwd=repo)  # the same results again: no committed file changes
    assert _git(repo, "status", "--porcelain") == ""
    assert f"compared with {Path('results') / '.previous'}: same (" in again.stdout
    kept = results / ".previous" / "paper" / "flows.csv"  # one generation kept
    assert kept.read_bytes() == (results / "paper" / "flows.csv").read_bytes()
    # a difference is named, file by file
    regions = repo / "results" / "paper" / "regions.csv"
    regions.write_text(regions.read_text().replace("0.", "0.0", 1))
    said = compare_results(repo / "results", repo / "runs" / "reproduce", ["paper", "standard"])
    assert "1 of " in said and "paper/regions.csv: differs" in said


def test_reproduce_refuses_a_dirty_tree_only_for_update(tmp_path, monkeypatch, capsys):
    import flowsim.app.reproduce as rep

    monkeypatch.setattr(rep, "git_commit", lambda: "0123abc-dirty")
    assert main(["reproduce", "--experiments", str(tmp_path), "--results", str(tmp_path / "r"), "--update"]) == 2
    assert "uncommitted changes" in capsys.readouterr().err and not (tmp_path / "r").exists()
    # the default (a scratch folder) goes on: here it stops only at the missing experiment files
    assert main(["reproduce", "--experiments", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "no experiment files" in capsys.readouterr().err


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
