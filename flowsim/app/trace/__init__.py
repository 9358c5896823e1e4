"""``flowsim trace``: a TRL DPO run on the paper's plane, beside what the theory predicted from its starts.

From a trace folder (:mod:`flowsim.integrations.trl`) it writes, into ``OUT`` (default
``RUN/flowsim``):

* ``flows.csv`` -- one row per probe pair in the flows.csv schema (a ``network`` row: the pairs
  share parameters; reference ``initial``: each pair has its own, the recorded one; status
  ``timeout``: the training stopped by its own step count): p_w, p_l at the first and last
  recorded step, ``t`` = optimiser steps
  (``t_stop`` the steps between them; ``t_w``, ``t_l`` the first step p_w >= p1_target and
  p_l <= p2_target of flowsim's default stop rule), ``p_w_min``, ``displaced``, ``margin_final``,
  the log-probs, the observed rate over the first recorded interval (``dp1_dt_0``, ``dp2_dt_0``,
  per step: the field the claims read) and the path as JSON ``[[step, log p_w, log p_l], ...]``;
* ``regions.csv``, ``claims.csv``, ``claims.md`` -- the region tables and the claims that read
  rows, judged as for a sweep (:func:`flowsim.analysis.studies.evaluate_studies`: the seed
  paper's, and each other study whose columns the rows have, such as the displacement study's
  on the predictors);
* ``predicted.csv`` and the predicted-vs-observed table -- the idealised flows of the same loss
  and beta from the same starts and references, on the ratio plane and on the softmax logits,
  computed by flowsim's sweep (:func:`flowsim.experiment.sweep.run_chunk`), stopped at the
  median implicit reward margin the run reached (so both are compared at the same margin);
* ``figures/`` -- the starts, each pair's path in (p_w, p_l) and on the (x1, x2) plane with
  the idealised paths and the field, and ``trace.md``, the report; ``trace.json`` records the
  source and the sha256 of flows.csv.

The rows also carry the probe pairs' predictors of displacement
(:data:`flowsim.model.probes.START_PROBES`, the columns of the network's rows), read from the
trace folder's ``predictors.csv`` (:func:`predictor_columns`); NaN where the folder has none (a
trace recorded before they were, or with ``predictors=False``).  ``top_other_0`` and
``top_other_gain`` are NaN for a trace: a language model's most likely other completion is
neither enumerable nor well defined (its length is free).

From a plain ``trainer_state.json`` (no callback) it draws the batch-mean path from TRL's
``logps/*`` and ``rewards/*`` -- a mean of log-ratios is the log of a geometric mean, and per-pair
questions need the callback -- into ``batch_mean.md`` and ``figures/batch_mean.png``.

Every check of the input is made before anything is written; bad input raises
:class:`~flowsim.integrations.folder.TraceError` (one line, exit 2 from the command line).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsim.app.trace.output import out_folder
from flowsim.dynamics.record import PathTrack, StopRule, finish_rows
from flowsim.experiment.regions import REGIONS, feasible, region_labels
from flowsim.experiment.schema import LEADING, PROVENANCE
from flowsim.experiment.store import write_atomic
from flowsim.integrations.folder import LOGPS as LOGPS_NAME
from flowsim.integrations.folder import TraceError, read_predictors, read_trace
from flowsim.integrations.losses import TRL_LOSSES, flowsim_loss  # noqa: F401 (re-exported: the trace's loss)
from flowsim.model.probes import START_PROBES

#: Columns a trace row adds after the flows.csv columns (as a network row's, where they mean the same).
EXTRA = (
    "pair",
    "index",
    "logp_w0",
    "logp_l0",
    "logp_w_final",
    "logp_l_final",
    "dp1_dt_0",
    "dp2_dt_0",
    "grad_norm_0",
    "path",
)
#: The idealised models the run is set beside.
IDEAL_MODELS = ("ratio", "logits")
#: The grid of the idealised flows' experiment, never swept: their starts are the run's.
PLACEHOLDER_GRID = {"p1": {"start": 0.2, "stop": 0.4, "num": 2}, "p2": {"start": 0.2, "stop": 0.4, "num": 2}}


# ---------------------------------------------------------------------------------------
# Input


def _beta_check(beta: float | None, recorded: float, source: str) -> float:
    if beta is not None and not math.isclose(beta, recorded, rel_tol=1e-9):
        raise TraceError(
            f"--beta {beta:g} disagrees with the run's beta {recorded:g} (recorded in {source}); "
            "leave --beta out to use the run's"
        )
    return recorded


# ---------------------------------------------------------------------------------------
# Rows


def pair_paths(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps (m,), log-probs (n, m, 2) of the policy, reference log-probs (n, 2), training rows (n,))."""
    ref = df[df["what"] == "reference"].sort_values("probe")
    pol = df[df["what"] == "policy"]
    steps = np.sort(pol["step"].unique())
    n = len(ref)
    logp = np.empty((n, len(steps), 2))
    for j, (_, g) in enumerate(pol.groupby("step", sort=True)):
        g = g.sort_values("probe")
        logp[:, j] = g[["logp_w", "logp_l"]].to_numpy(float)
    return steps, logp, ref[["logp_w", "logp_l"]].to_numpy(float), ref["index"].to_numpy(int)


def _path_record(steps: np.ndarray, logp: np.ndarray, log_ref: np.ndarray, stop: StopRule) -> dict[str, Any]:
    """The result and path columns of each pair's recorded path (the record's own :func:`finish_rows`)."""
    p = np.exp(logp)
    t = (steps - steps[0]).astype(float)
    track = PathTrack(p[:, 0], stop)
    for j in range(1, len(steps)):  # the recorded steps are the path's points
        track.visit(t[j], p[:, j])
        track.cross(t[j], p[:, j])
    h = logp - log_ref[:, None, :]
    n = len(p)
    # the other sequences' total, 1 - p_w - p_l, without the cancellation near p_w + p_l = 1
    rest = -np.expm1(np.logaddexp(logp[:, -1, 0], logp[:, -1, 1]))
    path = finish_rows(p[:, -1], h[:, -1], t[-1], track, rest=rest)
    return {
        "status": np.full(n, "timeout"),
        "t_stop": np.full(n, t[-1]),
        "p1_final": p[:, -1, 0],
        "p2_final": p[:, -1, 1],
        "x1_final": np.exp(h[:, -1, 0]),
        "x2_final": np.exp(h[:, -1, 1]),
        "nfev": np.full(n, len(steps)),
        **path,
        "top_other": pd.array([pd.NA] * n, dtype="Int64"),
        "steps": pd.array(np.full(n, int(steps[-1])), dtype="Int64"),
    }


def predictor_columns(
    spec: dict[str, Any], steps: np.ndarray, logp: np.ndarray, predictors: pd.DataFrame | None, record: dict
) -> dict[str, np.ndarray]:
    """The columns of :data:`~flowsim.model.probes.START_PROBES` of the probe pairs (NaN where not recorded).

    ``predictors`` (a trace's predictors.csv, by probe) are used when computed at the trace's first
    recorded step.  ``dlogpw_first`` is measured: (log pi(y_w) after the first optimiser step - at the
    start) / that step's lr, where both steps are recorded and the callback noted the lr (an Adam
    step is normalised, so it is comparable to ``dlogpw_dt0`` only for SGD).
    """
    n = logp.shape[0]
    out = {k: np.full(n, np.nan) for k in START_PROBES}
    if predictors is not None and int(record.get("step", -1)) == int(steps[0]) and len(predictors) == n:
        for k in START_PROBES:
            if k in predictors.columns:
                out[k] = predictors[k].to_numpy(float)
    training = spec.get("training", {})
    lr, start = training.get("first_step_lr"), training.get("first_step_from")
    if len(steps) > 1 and steps[1] == steps[0] + 1 and lr and start == steps[0]:
        out["dlogpw_first"] = (logp[:, 1, 0] - logp[:, 0, 0]) / float(lr)
    return out


def trace_rows(
    spec: dict[str, Any],
    df: pd.DataFrame,
    finished: bool,
    predictors: pd.DataFrame | None = None,
    record: dict | None = None,
) -> pd.DataFrame:
    """One row per probe pair in the flows.csv schema (see the module docstring).

    ``predictors`` and their ``record``: :func:`flowsim.integrations.folder.read_predictors` (None: NaN).
    """
    steps, logp, log_ref, index = pair_paths(df)
    stop, n = StopRule(), len(index)
    p0, ref = np.exp(logp[:, 0]), np.exp(log_ref)
    loss, _ = flowsim_loss(spec)
    kind = loss.kind if loss is not None else "trl:" + "+".join(spec.get("loss_type", ["?"]))
    out = pd.DataFrame(
        {
            "beta": np.full(n, float(spec["beta"])),
            "ref_w": ref[:, 0],
            "ref_l": ref[:, 1],
            "p1_0": p0[:, 0],
            "p2_0": p0[:, 1],
            "x1_0": np.exp(logp[:, 0, 0] - log_ref[:, 0]),
            "x2_0": np.exp(logp[:, 0, 1] - log_ref[:, 1]),
            "region": region_labels(p0),
            "feasible": feasible(p0),
        }
    )
    rec = _path_record(steps, logp, log_ref, stop)
    h0, hf = logp[:, 0] - log_ref, logp[:, -1] - log_ref
    nan = np.full(n, np.nan)
    rec["loss_0"] = loss.value(h0, log_ref) if loss is not None else nan
    rec["loss_final"] = loss.value(hf, log_ref) if loss is not None else nan
    training = spec.get("training", {})
    # "initial": each pair has its own reference (the recorded one), so the pairs form one group; x_0 = 1
    # where the reference is the first recorded policy (a trace from step 0 with ref_model = the start)
    rec.update(
        {
            "loss": kind,
            "model": "network",
            "dynamics": str(training.get("optim", "trl")),
            "reference": "initial",
            "message": "" if finished else f"trace interrupted: last recorded step {int(steps[-1])}",
        }
    )
    for k in LEADING:
        if k in rec:
            out[k] = rec[k]
    out["engine"] = "trl"
    dt = float(steps[1] - steps[0]) if len(steps) > 1 else np.nan
    rate = (np.exp(logp[:, 1]) - p0) / dt if len(steps) > 1 else np.full((n, 2), np.nan)
    extra = {
        "pair": np.arange(n),
        "index": index,
        "logp_w0": logp[:, 0, 0],
        "logp_l0": logp[:, 0, 1],
        "logp_w_final": logp[:, -1, 0],
        "logp_l_final": logp[:, -1, 1],
        "dp1_dt_0": rate[:, 0],
        "dp2_dt_0": rate[:, 1],
        "grad_norm_0": nan,
        "path": [json.dumps([[int(s), *map(float, logp[i, j])] for j, s in enumerate(steps)]) for i in range(n)],
    }
    extra |= predictor_columns(spec, steps, logp, predictors, record or {})
    for k, v in extra.items():
        out[k] = v
    return out[["beta", "ref_w", "ref_l", *LEADING, *PROVENANCE, *EXTRA, *START_PROBES]]


# ---------------------------------------------------------------------------------------
# What the theory predicted


def ideal_stop(rows: pd.DataFrame) -> StopRule:
    """The idealised flows' stop: the median implicit reward margin the run reached (if it rose), and a
    floor on p_l a thousand times below the lowest start (sequence probabilities are small)."""
    floor = min(1e-6, float(rows["p2_0"].min()) * 1e-3)
    margin = float(np.median(rows["margin_final"]))
    target = margin if margin > 0 else None
    return StopRule(p2_floor=floor, p2_target=max(floor, StopRule().p2_target), margin_target=target)


def ideal_rows(rows: pd.DataFrame, spec: dict[str, Any], model: str) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The idealised flows of ``model`` from the rows' starts and references: (rows, paths (k, 2) in p)."""
    from flowsim.experiment.config import parse_experiment
    from flowsim.experiment.sweep import Chunk, paths, run_chunk

    loss, _ = flowsim_loss(spec)
    stop = ideal_stop(rows)
    doc = {
        "name": f"trace-ideal-{model}",
        "loss": {"kind": loss.kind, "beta": float(spec["beta"])},
        "model": {"kind": model},
        "stop": stop.as_dict(),
        "grid": PLACEHOLDER_GRID,
    }
    exp = parse_experiment(doc, source="flowsim trace")
    combo = exp.parameter_sets()[0]
    p0 = rows[["p1_0", "p2_0"]].to_numpy(float)
    ref = rows[["ref_w", "ref_l"]].to_numpy(float)
    df = run_chunk(exp, Chunk(0, combo, p0, ref))
    df.insert(0, "pair", rows["pair"].to_numpy())
    policy = exp.split(combo)[1].bind(p0, ref)
    res = paths(exp.task(combo, path=120), p0, ref)  # the engine that records paths (the driver, for a flow)
    out = [
        policy.row(i).probs(np.asarray(x, dtype=float))[:, :2] if x is not None else np.empty((0, 2))
        for i, x in enumerate(res["path_x"])
    ]
    return df, out


def _shares(df: pd.DataFrame) -> dict[str, float]:
    dw = np.log(df["p1_final"] / df["p1_0"])
    dl = np.log(df["p2_final"] / df["p2_0"])
    disp = df["displaced"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return {
        "pairs": len(df),
        "share displaced (p_w fell below its start)": float(disp.mean()),
        "share ending with p_w below its start": float((dw < 0).mean()),
        "share where p_l fell by more than p_w rose (in log)": float(((dl < 0) & (-dl > np.abs(dw))).mean()),
        "median final p_w / p_w0": float(np.exp(np.median(dw))),
        "median final p_l / p_l0": float(np.exp(np.median(dl))),
        "median final margin h_w - h_l": float(np.median(df["margin_final"])),
    }


def predicted_table(rows: pd.DataFrame, ideal: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Observed beside each idealised model: the shares, and the median final p_w / p_w0 by region."""
    cols = {"observed (TRL run)": rows, **{f"predicted: {m}": d for m, d in ideal.items()}}
    out = pd.DataFrame({k: _shares(d) for k, d in cols.items()})
    for r in REGIONS:
        sel = rows["region"].to_numpy() == r
        if sel.any():
            out.loc[f"median final p_w / p_w0, {r} starts ({int(sel.sum())})"] = [
                float(np.median(d["p1_final"].to_numpy()[sel] / d["p1_0"].to_numpy()[sel])) for d in cols.values()
            ]
    return out


# ---------------------------------------------------------------------------------------
# The command


def trace(run: str | Path, out: str | Path | None = None, beta: float | None = None) -> list[Path]:
    """Trace ``run`` (a trace folder, or a TRL ``trainer_state.json`` / a folder holding one) into ``out``.

    Returns the paths written.  TraceError (nothing written) for input that is not a trace,
    a damaged one, a trainer_state.json without DPO metrics, or a ``beta`` other than the run's.
    """
    run = Path(run)
    if run.is_file() or (run.is_dir() and (run / "trainer_state.json").is_file() and not _is_trace(run)):
        from flowsim.app.trace.batch import batch_mean

        state = run if run.is_file() else run / "trainer_state.json"
        return batch_mean(state, Path(out) if out else state.parent / "flowsim", beta)
    spec, df, finished = read_trace(run)
    _beta_check(beta, float(spec["beta"]), str(run / "meta.json"))
    folder = out_folder(Path(out) if out else run / "flowsim")
    predictors, record = read_predictors(run)
    rows = trace_rows(spec, df, finished, predictors, record)
    return write_trace(folder, run, spec, rows, record)


def _is_trace(folder: Path) -> bool:
    return (folder / "meta.json").is_file() or (folder / ".partial" / "experiment.json").is_file()


def traced(path: str | Path) -> Path | None:
    """The trace folder behind ``path`` (a trace folder, or ``flowsim trace``'s output, or its flows.csv), or None."""
    path = Path(path)
    folder = path.parent if path.name == "flows.csv" else path
    if (folder / "trace.json").is_file():
        return folder
    if (folder / ".partial" / "experiment.json").is_file() or (folder / LOGPS_NAME).is_file():
        return folder
    return None


def write_trace(
    folder: Path, run: Path, spec: dict[str, Any], rows: pd.DataFrame, predictors: dict | None = None
) -> list[Path]:
    """Compute the analysis and the idealised flows, then write every output of a trace folder.

    ``predictors``: the record of the trace's predictors (:func:`~flowsim.integrations.folder.read_predictors`).
    """
    from flowsim.analysis.studies import evaluate_studies
    from flowsim.analysis.tables import region_table
    from flowsim.app.trace.figures import trace_figures

    loss, why = flowsim_loss(spec)
    ideal, paths = {}, {}
    if loss is not None:
        for m in IDEAL_MODELS:
            ideal[m], paths[m] = ideal_rows(rows, spec, m)
    claims = evaluate_studies(rows, StopRule())  # the paper's, and each study whose columns a trace has
    table = predicted_table(rows, ideal)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "flows.csv"]
    data = rows.to_csv(index=False, float_format="%.17g").encode()
    write_atomic(written[0], data)
    record = {
        "source": str(run.resolve()),
        "trace": {k: v for k, v in spec.items() if k != "history"},
        "rows": len(rows),
        "flows_bytes": len(data),
        "flows_sha256": hashlib.sha256(data).hexdigest(),
    }
    write_atomic(folder / "trace.json", json.dumps(record, indent=1, default=str) + "\n")
    region_table(rows).to_csv(folder / "regions.csv", index=False)
    claims.to_csv(folder / "claims.csv", index=False)
    write_atomic(folder / "claims.md", _claims_markdown(claims, run.name))
    written += [folder / n for n in ("trace.json", "regions.csv", "claims.csv", "claims.md")]
    if ideal:
        pd.concat([d.assign(ideal_model=m) for m, d in ideal.items()], ignore_index=True).to_csv(
            folder / "predicted.csv", index=False
        )
        written.append(folder / "predicted.csv")
    figs = trace_figures(rows, paths, float(spec["beta"]), folder / "figures")
    report = _report(run, spec, rows, table, claims, why, figs, folder, predictors or {})
    write_atomic(folder / "trace.md", report)
    return [*written, *figs, folder / "trace.md"]


def _claims_markdown(claims: pd.DataFrame, name: str) -> str:
    """claims.md: the seed paper's claims, then each other study that applied (as ``flowsim analyze``)."""
    from flowsim.analysis.studies import PRIMARY, studies_markdown

    what = {PRIMARY: "The paper's claims"}
    return studies_markdown(
        claims, lambda s: f"{what.get(s, f'The claims of the study `{s}`')}, measured on the trace of {name}"
    )


def _predictor_lines(record: dict, rows: pd.DataFrame) -> list[str]:
    """The report's paragraph on the predictors of displacement (docs/explanation/predictors.md)."""
    if not record:
        return [
            "The trace folder has no predictors.csv (recorded before they were, or with predictors=False): "
            "the predictor columns of flows.csv are NaN.",
            "",
        ]
    gram = record.get("gram") or {}
    notes = [record[k] for k in ("hidden_note", "rates_note", "gradient_note") if record.get(k)]
    used = rows["ches"].notna().any()
    return [
        f"Computed by the callback at step {record.get('step')} (predictors.csv), "
        + ("and in flows.csv's columns" if used else "but not used: the rows start at another step")
        + f": CHES on hidden_states[-1] and before the final norm ({record.get('final_norm') or 'none found'}); "
        f"the gradient terms over {gram.get('parameters', '?')} trainable parameters "
        f"(Gram matrix {gram.get('mode', '-')}, {gram.get('gradients', '?')} gradients); "
        "the rates per unit lr of one full-batch gradient step on the probe set under"
        f" {record.get('loss') or 'no flowsim loss'}." + (f" Notes: {'; '.join(notes)}." if notes else ""),
        "",
    ]


def _report(run, spec, rows, table, claims, why, figs, folder, predictors) -> str:
    from flowsim.analysis.verdicts import NA

    n, steps = len(rows), int(rows["steps"].iloc[0])
    lines = [
        f"# Trace of `{run.name}`",
        "",
        f"{n} probe pairs of {spec.get('train_rows', '?')} training pairs (probe seed {spec.get('probe_seed')}), "
        f"model `{spec.get('model')}` ({spec.get('model_class')}, {spec.get('dtype')}), TRL {spec.get('trl')}, "
        f"loss {'+'.join(spec.get('loss_type', []))}, beta {spec['beta']:g}, reference: {spec.get('reference')}; "
        f"recorded every {spec.get('every')} steps up to step {steps}.",
        "",
        "Time is the optimiser step. Sequence probabilities are products over tokens, so p_w and p_l are small "
        "and most starts sit in the bottom-left region of the paper's plane; the ratios x = p / p_ref do not "
        "depend on that scale.",
        "",
        "## What the theory predicted, and what happened",
        "",
    ]
    if table.shape[1] > 1:
        stop = ideal_stop(rows)
        at = (
            f"h_w - h_l = {stop.margin_target:.4g}"
            if stop.margin_target is not None
            else "none: the margin did not rise; they run to their stop rule"
        )
        lines += [
            "The idealised flows start from each pair's (p_w0, p_l0) with its reference, same loss and beta, "
            f"and stop at the run's median implicit reward margin ({at}).",
            "",
        ]
    else:
        lines += [f"No idealised flow: {why}.", ""]
    lines += [table.to_markdown(floatfmt=".4g"), "", "## Claims that read rows", ""]
    judged = claims[(claims["subset"] == "all") & (claims["verdict"] != NA)]
    lines += [
        judged[["study", "claim", "verdict", "value", "details"]].to_markdown(index=False, floatfmt=".4g")
        if len(judged)
        else "none applies",
        "",
        "Every claim, with why the others do not apply: `claims.md`.",
        "",
        "## Predictors of displacement",
        "",
        *_predictor_lines(predictors, rows),
        "## Figures",
        "",
        *[f"- `{p.relative_to(folder)}`" for p in figs],
        "",
    ]
    return "\n".join(lines)
