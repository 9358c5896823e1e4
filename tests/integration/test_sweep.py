"""Sweeps: the CSV schema, rows independent of workers and chunks, resume after a real kill,
failed rows, the exact path, and the dask backend on a LocalCluster."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flowsim.dynamics.engines.driver as driver_engine
import flowsim.experiment.sweep as sweep_mod
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.record import FlowResult
from flowsim.experiment.config import load_experiment, parse_experiment
from flowsim.experiment.execute import SweepError, run_sweep
from flowsim.experiment.store import read_flows

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments" / "smoke.toml"
COLUMNS = [
    "beta",
    "f_divergence",
    "alpha",
    "label_smoothing",
    "ref_w",
    "ref_l",
    "p1_0",
    "p2_0",
    "x1_0",
    "x2_0",
    "region",
    "feasible",
    "status",
    "t_stop",
    "p1_final",
    "p2_final",
    "x1_final",
    "x2_final",
    "loss_0",
    "loss_final",
    "t_w",
    "t_l",
    "nfev",
    "p_w_min",
    "t_p_w_min",
    "displaced",
    "max_mass",
    "margin_final",
    "rest_final",
    "top_other",
    "p_top_other",
    "steps",
    "t_sliding",
    "top_other_gain",
    "loss",
    "model",
    "dynamics",
]


def small(**over):
    doc = {
        "name": "small",
        "loss": {"beta": [0.1, 0.5]},
        "grid": {"p1": {"start": 0.05, "stop": 1.0, "num": 6}, "p2": {"start": 0.05, "stop": 1.0, "num": 5}},
    }
    for k, v in over.items():
        doc[k] = v
    return parse_experiment(doc)


@pytest.fixture(scope="module")
def smoke_serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "serial"
    meta = run_sweep(load_experiment(SMOKE), out, n_jobs=1, chunk_size=1000, progress=False)
    return out, meta


def test_csv_schema_and_meta(smoke_serial):
    out, meta = smoke_serial
    df = read_flows(out)
    assert list(df.columns)[: len(COLUMNS)] == COLUMNS
    assert list(df.columns)[len(COLUMNS) :] == ["reference", "message", "engine"]
    assert set(df["engine"]) == {"batched"}  # the default for DPO on the ratio plane
    assert meta["counts_by_engine"] == {"batched": len(df)}
    assert len(df) == 2 * 12 * 12 == meta["rows"]
    # the smoke grid's DPO flows end on p_l's floor or p_w's cap, both seen (each row: test_sweep_agrees_...)
    assert set(df["status"]) == {"converged", "capped"}
    counts = df["status"].value_counts()
    assert meta["counts_by_status"] == counts.reindex(meta["counts_by_status"], fill_value=0).to_dict()
    assert (df["nfev"] > 0).sum() > 0.9 * len(df)  # integrated, not the closed form
    saved = json.loads((out / "meta.json").read_text())
    assert (
        saved["counts_by_status"]
        == df["status"].value_counts().reindex(saved["counts_by_status"], fill_value=0).to_dict()
    )
    assert saved["experiment"]["solver"]["method"] == "DOP853" and saved["experiment"]["stop"]["t_max"] == 1e4
    for key in ("versions", "git_commit"):  # what the results depend on: committed with them
        assert key in saved
    run = json.loads((out / "run.json").read_text())  # how this run went: never committed
    for key in ("started", "finished", "wall_time_s", "n_jobs", "machine"):
        assert key in run and key not in saved and meta[key] == run[key]
    assert not (out / ".partial").exists()


def test_rows_identical_across_workers_and_chunks(smoke_serial, tmp_path):
    out, _ = smoke_serial
    for n_jobs, chunk in [(2, 7), (2, 50), (1, 13)]:
        other = tmp_path / f"j{n_jobs}c{chunk}"
        run_sweep(load_experiment(SMOKE), other, n_jobs=n_jobs, chunk_size=chunk, progress=False)
        assert (other / "flows.csv").read_bytes() == (out / "flows.csv").read_bytes(), (n_jobs, chunk)


def test_sweep_agrees_with_the_exact_flow(smoke_serial):
    df = read_flows(smoke_serial[0])
    ex = exact_dpo(df[["x1_0", "x2_0"]].to_numpy(), beta=df["beta"].to_numpy())
    assert (df["status"].to_numpy() == ex["status"]).all()
    for k, tol in [("t_stop", 1e-5), ("t_w", 1e-5), ("t_l", 1e-5), ("x1_final", 1e-6), ("x2_final", 1e-6)]:
        np.testing.assert_allclose(df[k], ex[k], rtol=tol, atol=0, equal_nan=True, err_msg=k)


def test_exact_method_rows(tmp_path):
    exp = small(solver={"engine": "exact"})
    run_sweep(exp, tmp_path / "e", n_jobs=1, progress=False)
    df = read_flows(tmp_path / "e")
    assert (df["nfev"] == 0).all() and len(df) == 60
    integrated = tmp_path / "i"
    run_sweep(small(), integrated, n_jobs=1, progress=False)
    di = read_flows(integrated)
    np.testing.assert_allclose(di["t_stop"], df["t_stop"], rtol=1e-5)


def test_reference_initial_starts_every_flow_at_one_one(tmp_path):
    exp = small(loss={"reference": "initial", "beta": [0.1, 0.5]})
    run_sweep(exp, tmp_path / "s", n_jobs=2, progress=False)
    df = read_flows(tmp_path / "s")
    np.testing.assert_array_equal(df[["x1_0", "x2_0"]], 1.0)
    np.testing.assert_array_equal(df["ref_w"], df["p1_0"])
    np.testing.assert_array_equal(df["ref_l"], df["p2_0"])
    assert (df["reference"] == "initial").all()
    ex = exact_dpo(np.ones((len(df), 2)), beta=df["beta"], ref_w=df["ref_w"], ref_l=df["ref_l"])
    assert (df["status"].to_numpy() == ex["status"]).all()
    for k, tol in [("t_stop", 1e-5), ("t_w", 1e-5), ("t_l", 1e-5), ("p1_final", 1e-6), ("p2_final", 1e-6)]:
        np.testing.assert_allclose(df[k], ex[k], rtol=tol, equal_nan=True, err_msg=k)
    # the cap at x1 = 1/p1_0: SFT models with p1_0 > 1/sqrt(2) end capped at p1 = 1
    capped = df["status"] == "capped"
    np.testing.assert_array_equal(capped, df["p1_0"] ** 2 > 1 / (2 - 1e-12 / df["p2_0"] ** 2))


def test_a_failing_flow_never_stops_the_sweep(tmp_path, monkeypatch):
    real = driver_engine.integrate

    def flaky(loss, *a, policy, **k):
        x0 = policy.theta0
        if abs(x0[0] - 0.05) < 1e-12 and abs(x0[1] - 0.05) < 1e-12:
            raise RuntimeError("solver exploded")
        if abs(x0[0] - 1.0) < 1e-12 and abs(x0[1] - 0.05) < 1e-12:
            return FlowResult.failed("Required step size is less than spacing between numbers.")
        return real(loss, *a, policy=policy, **k)

    monkeypatch.setattr(driver_engine, "integrate", flaky)
    exp = small(solver={"engine": "driver"})  # the per-start path (the batched one: tests/unit/test_batched.py)
    meta = run_sweep(exp, tmp_path / "f", n_jobs=1, progress=False)  # n_jobs=1 runs in this process
    df = read_flows(tmp_path / "f")
    failed = df[df["status"] == "failed"]
    assert len(failed) == 4 and meta["counts_by_status"]["failed"] == 4
    assert set(failed["message"]) == {
        "RuntimeError: solver exploded",
        "Required step size is less than spacing between numbers.",
    }
    assert (df["status"] != "failed").sum() == 56


def test_never_overwrites(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SweepError, match="not empty"):
        run_sweep(small(), out, n_jobs=1, progress=False)
    assert (out / "notes.txt").read_text() == "mine"
    run_sweep(small(), tmp_path / "done", n_jobs=1, progress=False)
    with pytest.raises(SweepError, match="already holds a finished sweep"):
        run_sweep(small(), tmp_path / "done", n_jobs=1, progress=False, resume=True)
    with pytest.raises(SweepError, match="nothing to resume"):
        run_sweep(small(), tmp_path / "fresh", n_jobs=1, progress=False, resume=True)


def test_a_failure_before_the_first_write_removes_only_a_folder_it_made(tmp_path, monkeypatch):
    from flowsim.experiment.store import RunFolder

    def prepare(self, *a, **k):  # under the lock, before anything is written
        raise SweepError("injected")

    monkeypatch.setattr(RunFolder, "prepare", prepare)
    with pytest.raises(SweepError, match="injected"):
        run_sweep(small(), tmp_path / "fresh", n_jobs=1, progress=False)
    assert not (tmp_path / "fresh").exists()  # made by the run, left empty: removed again
    (tmp_path / "mine").mkdir()
    with pytest.raises(SweepError, match="injected"):
        run_sweep(small(), tmp_path / "mine", n_jobs=1, progress=False)
    assert (tmp_path / "mine").is_dir()  # there before: kept


def test_resume_after_a_real_kill_gives_an_identical_file(tmp_path):
    exp_file = tmp_path / "kill.toml"
    exp_file.write_text(
        'name = "kill"\n[loss]\nbeta = [0.1, 0.3]\n'
        "[grid]\np1 = {start = 0.02, stop = 1.0, num = 14}\np2 = {start = 0.02, stop = 1.0, num = 14}\n"
    )
    cmd = [sys.executable, "-m", "flowsim", "run", str(exp_file), "--n-jobs", "2", "--chunk-size", "10", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], start_new_session=True)
    partial = killed / ".partial"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(partial.glob("chunk_*.csv"))) < 8:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the main process and its loky workers, mid-sweep
    proc.wait()
    n_done = len(list(partial.glob("chunk_*.csv")))
    assert 8 <= n_done < 40, "the kill should land mid-sweep"  # 2 x 14 x 14 flows: 40 chunks
    assert not (killed / "flows.csv").exists()
    # without --resume the folder is refused; with it the sweep completes
    assert subprocess.run([*cmd, "--out", str(killed)], capture_output=True).returncode == 2
    assert subprocess.run([*cmd, "--out", str(killed), "--resume"]).returncode == 0
    whole = tmp_path / "whole"
    assert subprocess.run([*cmd, "--out", str(whole)]).returncode == 0
    assert (killed / "flows.csv").read_bytes() == (whole / "flows.csv").read_bytes()
    assert json.loads((killed / "run.json").read_text())["resumed"] is True


def test_dask_backend_on_a_local_cluster(tmp_path, smoke_serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run_sweep(
            load_experiment(SMOKE),
            tmp_path / "d",
            backend="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
            chunk_size=20,
        )
    assert (tmp_path / "d" / "flows.csv").read_bytes() == (smoke_serial[0] / "flows.csv").read_bytes()
    meta = json.loads((tmp_path / "d" / "run.json").read_text())  # how the run went
    assert meta["backend"] == "dask"


def test_read_flows_keeps_types(smoke_serial):
    df = read_flows(smoke_serial[0])
    assert df["feasible"].dtype == bool and df["nfev"].dtype.kind == "i"
    assert isinstance(df, pd.DataFrame) and (df["message"] == "").all()


def test_resume_keeps_the_first_runs_chunk_size(tmp_path):
    # chunk files are numbered, so a resume with other chunks would drop rows: it reuses the recorded size
    exp, out = small(), tmp_path / "c"
    run_sweep(exp, tmp_path / "whole", n_jobs=1, progress=False)
    partial = out / ".partial"
    partial.mkdir(parents=True)
    (partial / "experiment.json").write_text(json.dumps(exp.as_dict(), sort_keys=True))
    (partial / "chunk_size").write_text("7")
    # simulate an interruption: only the first three chunks of 7 rows were written
    for k, df in enumerate(sweep_mod.run_chunk(exp, c) for c in sweep_mod.chunks(exp, 7)):
        if k < 3:
            (partial / f"chunk_{k:06d}.csv").write_text(df.to_csv(index=False))
    with pytest.raises(SweepError, match="started with 7"):
        run_sweep(exp, out, n_jobs=1, chunk_size=50, progress=False, resume=True)
    run_sweep(exp, out, n_jobs=2, progress=False, resume=True)  # default chunk size would differ
    assert (out / "flows.csv").read_bytes() == (tmp_path / "whole" / "flows.csv").read_bytes()


def test_bad_output_and_workers_are_clear_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SweepError, match="is a file"):
        run_sweep(small(), tmp_path / "file", n_jobs=1, progress=False)
    with pytest.raises(ValueError, match="n_jobs"):
        run_sweep(small(), tmp_path / "o", n_jobs=0, progress=False)
    assert not (tmp_path / "o").exists()
