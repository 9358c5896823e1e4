"""flowsim trace and the TRL callback: per-pair records equal TRL's logged batch means, the report and
figures exist, a resumed training never duplicates a step, and bad input is one line and exit 2.

The fast tests write trace folders through :class:`~flowsim.integrations.folder.TraceWriter` (no TRL);
the TRL tests (marked slow: importing transformers alone takes seconds) train TRL 1.16's DPOTrainer on
a tiny GPT-2 built here (nothing downloaded) and are skipped where the ``trl`` extra is not installed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flowsim.cli import main
from flowsim.integrations.folder import REFERENCE_STEP, TraceDamaged, TraceError, TraceWriter, read_trace

BETA = 0.1


def spec(n: int, beta: float = BETA) -> dict:
    return {
        "format": "flowsim-trace/1",
        "model": "synthetic",
        "beta": beta,
        "loss_type": ["sigmoid"],
        "probe_seed": 0,
        "probe_index": list(range(0, 2 * n, 2)),
        "every": 1,
        "train_rows": 2 * n,
    }


def synthetic_paths(n: int = 6, steps: int = 8, seed: int = 3) -> np.ndarray:
    """Log-probs (steps + 1, n, 2): p_w rises, p_l falls; pair 0 dips below its start first (displaced)."""
    rng = np.random.default_rng(seed)
    start = np.log(rng.uniform(1e-5, 1e-4, (n, 2)))
    t = np.arange(steps + 1)[:, None]
    logp = np.stack([start[:, 0] + 0.05 * t, start[:, 1] - 0.1 * t], -1)
    logp[1:3, 0, 0] = start[0, 0] - 0.2  # pair 0: p_w below its start at steps 1 and 2
    return logp


def write_synthetic(out, n: int = 6, steps: int = 8, finish: bool = True, beta: float = BETA) -> np.ndarray:
    logp = synthetic_paths(n, steps)
    w = TraceWriter(out, spec(n, beta))
    w.open(0)
    index = np.arange(0, 2 * n, 2)
    w.write(REFERENCE_STEP, "reference", index, logp[0])
    for s in range(steps + 1):
        w.write(s, "policy", index, logp[s])
    if finish:
        w.finish({"history": [], "training": {"optim": "adamw_torch"}})
    else:
        w.close()
    return logp


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_trace_rows_report_and_figures(tmp_path, capsys):
    logp = write_synthetic(tmp_path / "run")
    assert run_cli("trace", str(tmp_path / "run"), "--out", str(tmp_path / "out")) == 0
    out = tmp_path / "out"
    rows = pd.read_csv(out / "flows.csv")
    assert len(rows) == 6 and (rows["model"] == "network").all() and (rows["loss"] == "dpo").all()
    np.testing.assert_allclose(rows["p1_0"], np.exp(logp[0, :, 0]), rtol=1e-15)
    np.testing.assert_allclose(rows["p2_final"], np.exp(logp[-1, :, 1]), rtol=1e-15)
    np.testing.assert_allclose(rows["margin_final"], (logp[-1] - logp[0]) @ [1, -1], rtol=1e-12)
    assert rows["displaced"].tolist() == [True] + [False] * 5
    assert rows.loc[0, "p_w_min"] == pytest.approx(np.exp(logp[1, 0, 0])) and rows.loc[0, "t_p_w_min"] == 1
    assert (rows["t_stop"] == 8).all() and (rows["x1_0"] == 1).all()
    p = np.exp(logp)
    np.testing.assert_allclose(rows["max_mass"], p.sum(-1).max(0), rtol=1e-15)
    np.testing.assert_allclose(rows["rest_final"], 1 - p[-1].sum(-1), rtol=1e-15)
    assert (rows["t_sliding"] == 0).all() and rows["t_w"].isna().all()
    path = json.loads(rows.loc[2, "path"])
    assert len(path) == 9 and path[-1] == [8, *logp[-1, 2]]
    record = json.loads((out / "trace.json").read_text())
    assert record["flows_sha256"] == hashlib.sha256((out / "flows.csv").read_bytes()).hexdigest()
    for name in ("regions.csv", "claims.csv", "claims.md", "predicted.csv", "trace.md"):
        assert (out / name).stat().st_size > 0, name
    for name in ("starts.png", "paths_p.png", "paths_x.png"):
        assert (out / "figures" / name).stat().st_size > 10_000, name
    claims = pd.read_csv(out / "claims.csv").set_index(["claim", "subset"])
    assert claims.loc[("LD", "all"), "value"] == pytest.approx(1 / 6)  # pair 0 of 6 displaced
    report = (out / "trace.md").read_text()
    assert "predicted: ratio" in report and "predicted: logits" in report
    # a folder without predictors.csv (as every trace before them): the predictor columns are there, NaN
    assert rows[["ches", "gw_gl", "ent_own", "pair_edit_distance", "top_other_0", "top_other_gain"]].isna().all().all()
    assert "no predictors.csv" in report


def test_explore_opens_a_traced_run(tmp_path, capsys):
    """A tap on a pair draws its recorded path and, beside it, the idealised flow from its start."""
    pytest.importorskip("bokeh", reason="flowsim explore needs bokeh: pip install -e '.[explore]'")
    from bokeh.document import Document

    from flowsim.app.explore import _trace_data
    from flowsim.app.explore.page import Explorer

    logp = write_synthetic(tmp_path / "run")
    _bad(["explore", str(tmp_path / "run")], capsys, "has not been traced yet: run `flowsim trace")
    assert run_cli("trace", str(tmp_path / "run")) == 0
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "trace.json").write_text("{")
    _bad(["explore", str(tmp_path / "copy")], capsys, "trace.json is damaged")
    for given in (tmp_path / "run", tmp_path / "run" / "flowsim", tmp_path / "run" / "flowsim" / "flows.csv"):
        data = _trace_data(given)
        assert data.trace and len(data.groups) == 1 and len(data.groups[0].rows) == 6
    ex = Explorer(data, Document())
    assert ex.plane.x_scale.__class__.__name__ == "LogScale" and len(ex.field.data["x0"]) == 0
    ex.on_tap(SimpleNamespace(x=np.exp(logp[0, 2, 0]) * 1.05, y=np.exp(logp[0, 2, 1]) / 1.05))
    np.testing.assert_allclose(ex.run_path.data["p1"], np.exp(logp[:, 2, 0]), rtol=1e-15)
    np.testing.assert_allclose(ex.run_path.data["t"], np.arange(9))
    compare = np.column_stack([ex.compare_path.data["p1"], ex.compare_path.data["p2"]])
    np.testing.assert_allclose(compare[0], np.exp(logp[0, 2]), rtol=1e-12)  # the idealised flow from its start
    assert compare[-1, 0] > compare[0, 0] and compare[-1, 1] < compare[0, 1]
    assert ex.error.text == "" and "the traced run (recorded)" in ex.info.text
    ex.snap.active = False
    ex._guard(lambda: ex.on_tap(SimpleNamespace(x=2e-5, y=2e-5)))()
    assert "a trace records its pairs&#x27; paths only" in ex.error.text and len(ex.compare_path.data["p1"]) > 1


def test_predicted_flows_start_where_the_pairs_start(tmp_path):
    """The idealised flows run from the pairs' starts and references and stop at the run's median margin."""
    from flowsim.app.trace import ideal_rows, trace_rows

    write_synthetic(tmp_path / "run")
    spec_, df, finished = read_trace(tmp_path / "run")
    rows = trace_rows(spec_, df, finished)
    for model in ("ratio", "logits"):
        ideal, paths = ideal_rows(rows, spec_, model)
        np.testing.assert_allclose(ideal[["p1_0", "p2_0"]], rows[["p1_0", "p2_0"]], rtol=1e-12)
        np.testing.assert_allclose([p[0] for p in paths], rows[["p1_0", "p2_0"]], rtol=1e-9)
        assert (ideal["status"] == "reached_margin").all(), ideal["status"].tolist()
        np.testing.assert_allclose(ideal["margin_final"], np.median(rows["margin_final"]), rtol=1e-6)
        # DPO's gradient in h_w is negative everywhere: on the ratio plane p_w only rises
        if model == "ratio":
            assert not ideal["displaced"].astype(bool).any()


def test_resumed_writer_drops_the_abandoned_steps_and_never_duplicates(tmp_path):
    out, n = tmp_path / "run", 4
    index = np.arange(n)
    first = TraceWriter(out, spec(n))
    first.open(0)
    first.write(REFERENCE_STEP, "reference", index, np.zeros((n, 2)))
    for s in range(6):  # the crashed training got to step 5; its last checkpoint was step 3
        first.write(s, "policy", index, np.full((n, 2), -float(s)))
    first.close()
    (out / ".partial" / "chunk_000002.csv").write_text("step,what\n1,policy\n")  # a damaged chunk (step 1)
    again = TraceWriter(out, spec(n))
    with pytest.warns(TraceDamaged, match="chunk_000002.csv is damaged"):
        kept = again.open(3)
    assert sorted(kept) == [0, 1, 3, 4]  # reference, step 0, steps 2 and 3; 4 and 5 dropped, 1 damaged
    for s in range(3, 8):
        again.write(s, "policy", index, np.full((n, 2), -10.0 - s))
    again.finish({})
    _, df, finished = read_trace(out)
    assert finished and not df.duplicated(["step", "what", "probe"]).any()
    steps = df.loc[df["what"] == "policy"].groupby("step")["logp_w"].first()
    assert steps.index.tolist() == [0, 2, 3, 4, 5, 6, 7]
    assert steps.loc[5] == -15.0 and steps.loc[2] == -2.0  # the resumed run's step 5, the first run's step 2
    with pytest.raises(TraceError, match="holds a finished trace"):
        TraceWriter(out, spec(n)).open(0)


def test_writer_refuses_another_runs_folder(tmp_path):
    write_synthetic(tmp_path / "run", finish=False)
    with pytest.raises(TraceError, match=r"another run.*beta"):
        TraceWriter(tmp_path / "run", spec(6, beta=0.5)).open(4)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.bin").write_text("x")
    with pytest.raises(TraceError, match=r"other is not empty \(it holds model.bin\)"):
        TraceWriter(tmp_path / "other", spec(6)).open(0)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["model.bin"]


def test_an_interrupted_trace_is_traced_and_says_so(tmp_path):
    write_synthetic(tmp_path / "run", finish=False)
    assert run_cli("trace", str(tmp_path / "run")) == 0
    rows = pd.read_csv(tmp_path / "run" / "flowsim" / "flows.csv")
    assert rows["message"].str.contains("interrupted: last recorded step 8").all()


def _bad(argv, capsys, match: str) -> str:
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err, err
    return err


def test_bad_inputs_are_one_line_exit_2_nothing_written(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _bad(["trace", str(tmp_path / "empty"), "--out", str(tmp_path / "o1")], capsys, "is not a flowsim trace folder")
    write_synthetic(tmp_path / "run")
    _bad(
        ["trace", str(tmp_path / "run"), "--beta", "0.5", "--out", str(tmp_path / "o2")],
        capsys,
        "--beta 0.5 disagrees with the run's beta 0.1",
    )
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    (tmp_path / "run" / "meta.json").write_text(json.dumps(meta | {"trace": meta["trace"] | {"beta": "x"}}))
    _bad(["trace", str(tmp_path / "run"), "--out", str(tmp_path / "o2")], capsys, "records no valid beta")
    (tmp_path / "run" / "meta.json").write_text(json.dumps(meta))
    logps = tmp_path / "run" / "logps.csv"
    logps.write_bytes(logps.read_bytes()[:-40])  # truncated
    _bad(["trace", str(tmp_path / "run"), "--out", str(tmp_path / "o3")], capsys, "does not match its meta.json")
    write_synthetic(tmp_path / "crashed", finish=False)
    chunk = tmp_path / "crashed" / ".partial" / "chunk_000004.csv"
    chunk.write_bytes(chunk.read_bytes().replace(b"policy", b"polic"))  # damaged after its record was written
    _bad(["trace", str(tmp_path / "crashed"), "--out", str(tmp_path / "o4")], capsys, "chunk_000004.csv is damaged")
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": [{"step": 1, "loss": 0.7}]}))
    _bad(["trace", str(state), "--out", str(tmp_path / "o5")], capsys, "has no DPO metrics")
    state.write_text(
        json.dumps(
            {
                "log_history": [
                    {"step": 1, "logps/chosen": "x", "logps/rejected": -1, "rewards/chosen": 0, "rewards/rejected": 0}
                ]
            }
        )
    )
    _bad(["trace", str(state), "--out", str(tmp_path / "o5")], capsys, "a logged DPO metric is not a number")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "meta.json").write_text(json.dumps({"experiment": {"name": "paper"}, "rows": 1}))
    _bad(["trace", str(tmp_path / "sweep"), "--out", str(tmp_path / "o6")], capsys, "its meta.json is not a trace's")
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 7))
    write_synthetic(tmp_path / "good")
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    _bad(["trace", str(tmp_path / "good"), "--out", str(keep)], capsys, "holds other files (notes.txt)")
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]


def test_trainer_state_gives_the_geometric_mean_path(tmp_path):
    hist = [
        {
            "step": s,
            "logps/chosen": -10.0 + 0.1 * s,
            "logps/rejected": -10.0 - 0.2 * s,
            "rewards/chosen": 0.01 * s,
            "rewards/rejected": -0.02 * s,
            "loss": 0.69,
        }
        for s in range(1, 6)
    ]
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "trainer_state.json").write_text(json.dumps({"log_history": [*hist, {"step": 5}]}))
    assert run_cli("trace", str(tmp_path / "ckpt"), "--beta", "0.05") == 0
    out = tmp_path / "ckpt" / "flowsim"
    df = pd.read_csv(out / "batch_mean.csv")
    np.testing.assert_allclose(df["gm_x1"], np.exp(0.01 * np.arange(1, 6) / 0.05), rtol=1e-14)
    np.testing.assert_allclose(df["gm_p_l"], np.exp(-10.0 - 0.2 * np.arange(1, 6)), rtol=1e-14)
    text = (out / "batch_mean.md").read_text()
    assert "geometric mean" in text and "need the callback" in text
    assert (out / "figures" / "batch_mean.png").stat().st_size > 10_000


def test_without_the_extra_the_import_names_it(monkeypatch):
    for name in ("trl", "transformers", "torch"):
        monkeypatch.setitem(sys.modules, name, None)  # import of these now fails
    monkeypatch.delitem(sys.modules, "flowsim.integrations.trl", raising=False)
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module("flowsim.integrations.trl")
    assert str(info.value) == 'flowsim.integrations.trl needs TRL and transformers: pip install -e ".[trl]"'


# ---------------------------------------------------------------------------------------
# TRL 1.16's DPOTrainer on a tiny GPT-2


STEPS, PAIRS, BATCH = 20, 16, 4
#: The tests of the module's TRL run: one worker, with the other TRL tests (TRL's imports and the
#: run, ~4 s each, once)
TRL = pytest.mark.xdist_group("trl")


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory):
    """A 20-step DPO run of a 2-layer, width-32 GPT-2 on 16 pairs with the callback (checkpoint at step 10)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    pytest.importorskip("trl", reason='the trl extra is not installed (pip install -e ".[trl]")')
    from flowsim.integrations import tiny
    from flowsim.integrations.trl import trace

    root = tmp_path_factory.mktemp("trl")
    tr = tiny.trainer(
        root / "train", n_pairs=PAIRS, steps=STEPS, batch_size=BATCH, save_strategy="steps", save_steps=10
    )
    cb = trace(tr, root / "trace", pairs=64)
    tr.train()
    return root, tr, cb


def _batch_means(df: pd.DataFrame, t: int) -> dict[str, float]:
    """What TRL logs at step t, from the records: step t's batch (sequential sampler) at step t - 1's policy."""
    rows = ((t - 1) * BATCH) % PAIRS + np.arange(BATCH)
    pol = df[(df["what"] == "policy") & (df["step"] == t - 1)].set_index("index").loc[rows]
    ref = df[df["what"] == "reference"].set_index("index").loc[rows]
    f32 = {k: pol[k].to_numpy(np.float32) for k in ("logp_w", "logp_l")}
    rw = np.float32(BETA) * (f32["logp_w"] - ref["logp_w"].to_numpy(np.float32))
    rl = np.float32(BETA) * (f32["logp_l"] - ref["logp_l"].to_numpy(np.float32))
    mean = lambda v: float(v.mean(dtype=np.float32))
    return {
        "logps/chosen": mean(f32["logp_w"]),
        "logps/rejected": mean(f32["logp_l"]),
        "rewards/chosen": mean(rw),
        "rewards/rejected": mean(rl),
        "rewards/margins": mean(rw - rl),
    }


@pytest.mark.slow
@TRL
def test_per_pair_records_equal_trls_logged_batch_means(trl_run):
    root, tr, cb = trl_run
    assert len(cb.timings) == STEPS + 1  # steps 0..20, each recorded once
    spec_, df, finished = read_trace(root / "trace")
    assert finished and spec_["trl"] == "1.16.0" and spec_["probe_index"] == list(range(PAIRS))
    assert spec_["beta"] == BETA and spec_["loss_type"] == ["sigmoid"] and spec_["dtype"] == "torch.float32"
    logged = [h for h in tr.state.log_history if "logps/chosen" in h]
    assert [h["step"] for h in logged] == list(range(1, STEPS + 1))
    worst = 0.0
    for h in logged:
        for k, v in _batch_means(df, h["step"]).items():
            worst = max(worst, abs(v - h[k]) / max(abs(h[k]), 1e-3))
    assert worst <= 1e-5, worst


@pytest.mark.slow
@TRL
def test_trace_of_the_trl_run(trl_run, capsys):
    root, _, _ = trl_run
    assert run_cli("trace", str(root / "trace")) == 0
    out = root / "trace" / "flowsim"
    rows = pd.read_csv(out / "flows.csv")
    assert len(rows) == PAIRS and (rows["t_stop"] == STEPS).all() and (rows["reference"] == "initial").all()
    assert (rows["engine"] == "trl").all() and rows["message"].isna().all()
    cols = ["ches", "ches_ln", "ches_pre", "ches_ln_pre", "hidden_ip", "gw_sq", "gw_gl", "ent_own", "ent_cross"]
    assert rows[[*cols, "dlogpw_dt0", "pair_edit_distance", "token_overlap"]].notna().all().all()
    assert rows["dlogpw_first"].notna().all()  # AdamW's first step: measured, not comparable to dlogpw_dt0
    claims = pd.read_csv(out / "claims.csv")
    ours = claims[(claims["study"] == "displacement") & (claims["subset"] == "all")].set_index("claim")
    assert ours.loc["D1", "verdict"] != "not applicable" and "pair_edit_distance" in ours.loc["D3", "details"]
    for name in ("trace.md", "claims.md", "predicted.csv", "figures/paths_x.png", "figures/starts.png"):
        assert (out / name).stat().st_size > 0
    _bad(["trace", str(root / "trace"), "--beta", "0.2", "--out", str(root / "o")], capsys, "disagrees")
    assert run_cli("trace", str(root / "train" / "checkpoint-10" / "trainer_state.json")) == 0
    gm = pd.read_csv(root / "train" / "checkpoint-10" / "flowsim" / "batch_mean.csv")
    assert gm["step"].tolist() == list(range(1, 11))


@pytest.mark.slow
@TRL
def test_a_resumed_training_records_each_step_once_and_as_before(trl_run):
    """Crash at step 13 after the checkpoint at 10; resume from it: the trace equals the uninterrupted one."""
    from transformers import TrainerCallback

    from flowsim.integrations import tiny
    from flowsim.integrations.trl import trace

    root, _, _ = trl_run

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 13:
                raise RuntimeError("simulated crash")

    ckpt = root / "train" / "checkpoint-10"
    tr = tiny.trainer(root / "crash", n_pairs=PAIRS, steps=STEPS, batch_size=BATCH)
    cb = trace(tr, root / "resumed", pairs=64)
    tr.add_callback(Crash())
    with pytest.raises(RuntimeError, match="simulated crash"):
        tr.train(resume_from_checkpoint=str(ckpt))
    cb.close()  # a real crash ends the process, and the lock with it
    assert sorted(p.name for p in (root / "resumed" / ".partial").glob("chunk_*.csv"))[-1] == "chunk_000014.csv"
    tr = tiny.trainer(root / "again", n_pairs=PAIRS, steps=STEPS, batch_size=BATCH)
    trace(tr, root / "resumed", pairs=64)
    tr.train(resume_from_checkpoint=str(ckpt))
    _, resumed, _ = read_trace(root / "resumed")
    _, whole, _ = read_trace(root / "trace")
    assert not resumed.duplicated(["step", "what", "probe"]).any()
    assert sorted(resumed.loc[resumed["what"] == "policy", "step"].unique()) == list(range(10, STEPS + 1))
    same = whole[(whole["step"] >= 10) | (whole["what"] == "reference")].reset_index(drop=True)
    np.testing.assert_allclose(resumed[["logp_w", "logp_l"]], same[["logp_w", "logp_l"]], rtol=1e-6)
    # traced from step 10: the starts are step 10's, each pair keeps its own reference, one group of 16
    assert run_cli("trace", str(root / "resumed")) == 0
    rows = pd.read_csv(root / "resumed" / "flowsim" / "flows.csv")
    assert (rows["t_stop"] == STEPS - 10).all() and not np.allclose(rows["x1_0"], 1.0)
    claims = pd.read_csv(root / "resumed" / "flowsim" / "claims.csv").set_index(["claim", "subset"])
    assert claims.loc[("C3", "all"), "details"].startswith(f"{PAIRS} moving flows")
    shutil.rmtree(root / "crash", ignore_errors=True)


@pytest.mark.slow
@TRL
def test_the_overhead_measurement(trl_run, tmp_path):
    from flowsim.integrations import tiny

    r = tiny.overhead(tmp_path, steps=3, pairs=64, repeats=1)
    assert r["pairs"] == 64 and r["plain_s_per_step"] > 0 and r["score_s"] > 0 and r["write_s"] > 0
    assert r["predictors_s"] > 0 and not (tmp_path / "trace-0" / "predictors.csv").exists()
    _, df, _ = read_trace(tmp_path / "trace-0")
    assert df.groupby("step").size().tolist() == [64] * 5  # the reference and steps 0..3, 64 pairs each
