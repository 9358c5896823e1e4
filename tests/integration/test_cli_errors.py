"""The CLI's exit statuses on bad input and a bad environment (issue #14): one line, no
traceback, naming the file, key or path and what to do, and nothing left on disk by a start
that failed; 70 and the traceback for a bug."""

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest

import flowsim.cli as cli
from flowsim.cli import main

TINY = """name = "tiny"
[loss]
beta = 0.1
[grid]
p1 = {start = 0.05, stop = 1.0, num = 5}
p2 = {start = 0.05, stop = 1.0, num = 5}
[solver]
engine = "exact"
"""


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("flowsim: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_experiment_file_that_is_a_folder_or_not_utf8(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path}: is a folder, not an experiment file" in error_line(capsys)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}: not UTF-8 text" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_output_under_a_file(tmp_path, tiny, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["run", str(tiny), "--out", str(tmp_path / "f" / "sub"), "--quiet"]) == 2
    assert "f is a file, not a folder; choose another --out" in error_line(capsys)


def test_unreachable_scheduler_fails_fast_and_creates_nothing(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    argv = ["run", str(tiny), "--out", str(out), "--quiet"]
    assert main([*argv, "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1"]) == 2
    line = error_line(capsys)
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:1 within 1 s" in line
    assert not out.exists()
    assert main([*argv, "--backend", "dask"]) == 2
    assert "needs a scheduler address" in error_line(capsys)
    assert not out.exists()
    # the corrected retry is not blocked by anything the failed starts left
    assert main([*argv, "--n-jobs", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["flows.csv", "meta.json", "run.json"]


def test_figures_that_is_a_file(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 0
    (out / "figures").write_text("not a folder")
    capsys.readouterr()
    assert main(["plot", str(out)]) == 2
    assert f"{out / 'figures'}: a file of that name is in the way" in error_line(capsys)


def test_non_numeric_t_stop_in_analyze(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    assert main(["run", str(tiny), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 0
    hand = tmp_path / "hand"
    hand.mkdir()
    flows = pd.read_csv(out / "flows.csv", dtype={"message": str})
    flows["t_stop"] = flows["t_stop"].astype(object)
    flows.loc[3, "t_stop"] = "soon"
    flows.to_csv(hand / "flows.csv", index=False)  # hand-made: no meta.json
    capsys.readouterr()
    assert main(["analyze", str(hand)]) == 2
    err = capsys.readouterr().err
    assert "flowsim: warning:" in err and "no meta.json" in err and "Traceback" not in err
    assert "column 't_stop' holds a non-number ('soon' in data row 4)" in err


def bug_line(capsys) -> tuple[str, Path]:
    """The one line of an internal error, and the file it says the traceback was saved to."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowsim: internal error ("), err
    saved = re.search(r"traceback saved to (\S+);", lines[0])
    assert saved, lines[0]
    return lines[0], Path(saved.group(1))


def test_a_bug_exits_70_with_the_traceback(tmp_path, monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("an internal inconsistency")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli, "cmd_analyze", broken)
    assert main(["analyze", str(tmp_path)]) == cli.EX_SOFTWARE == 70
    line, path = bug_line(capsys)
    assert "(RuntimeError: an internal inconsistency)" in line and "bug in flowsim" in line
    assert path.parent == tmp_path
    text = path.read_text()
    assert "Traceback" in text and "in broken" in text and "RuntimeError: an internal inconsistency" in text


@pytest.mark.parametrize("exc", [ValueError("a numerical slip"), ZeroDivisionError("float division by zero")])
def test_a_value_error_inside_flowsim_is_a_bug_not_bad_input(tmp_path, monkeypatch, capsys, exc):
    # a ValueError that flowsim did not raise as a UserError is a bug: exit 70, not 2 (issue #26)
    import flowsim.app.analyze

    def results_folder(path):
        raise exc

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(flowsim.app.analyze, "results_folder", results_folder)
    assert main(["analyze", str(tmp_path)]) == 70
    line, path = bug_line(capsys)
    assert f"({type(exc).__name__}: {exc})" in line
    assert f"{type(exc).__name__}: {exc}" in path.read_text() and "in results_folder" in path.read_text()


def test_a_bug_whose_traceback_cannot_be_saved_prints_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # no such folder: the file cannot be made
    monkeypatch.setattr(cli, "cmd_analyze", lambda args: 1 / 0)
    assert main(["analyze", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err
    last = err.splitlines()[-1]
    assert last.startswith("flowsim: internal error (ZeroDivisionError: division by zero); traceback above")


def test_a_bug_in_the_benchmark_exits_70_too(tmp_path, monkeypatch, capsys):
    import flowsim.app.bench

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(flowsim.app.bench, "main", lambda argv: {}[argv[0]])
    assert main(["bench", "--quick"]) == 70
    line, path = bug_line(capsys)
    assert "(KeyError: '--quick')" in line and "KeyError" in path.read_text()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--n-jobs", "0"], "n_jobs must be a whole number of workers >= 1"),
        (["--chunk-size", "0"], "chunk_size must be >= 1; got 0"),
        (["--scheduler-timeout", "-1", "--backend", "dask"], "the scheduler timeout must be a number of seconds > 0"),
        (["--scheduler", "tcp://127.0.0.1:1", "--backend", "fork"], "--scheduler is for the dask backend"),
    ],
)
def test_bad_options_are_user_errors(tmp_path, tiny, capsys, argv, says):
    assert main(["run", str(tiny), "--out", str(tmp_path / "o"), "--quiet", *argv]) == 2
    assert says in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_missing_results_folder_is_a_user_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path)]) == 2
    assert f"{tmp_path} holds no flows.csv" in error_line(capsys)


def test_the_user_errors_share_one_base():
    # the CLI maps exactly these to exit 2; each stays the ValueError (or RuntimeError,
    # FileNotFoundError) it was, so callers' except clauses still hold
    from flowsim._validation import ParamError, ParamTypeError
    from flowsim.app.explore.compute import StartError
    from flowsim.errors import InputNotFound, UserError
    from flowsim.experiment.store import DamagedResults, SweepError
    from flowsim.experiment.table import ConfigError

    for cls in (ParamError, ParamTypeError, ConfigError, SweepError, DamagedResults, StartError, InputNotFound):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError), cls
    assert issubclass(SweepError, RuntimeError) and issubclass(InputNotFound, FileNotFoundError)
    assert issubclass(ParamTypeError, TypeError)


def test_the_exit_statuses_are_documented():
    doc = cli.__doc__
    for code in ("0 ", "1 ", "2 ", "70 ", "130 "):
        assert f"\n    {code}" in doc, code
