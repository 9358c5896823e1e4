"""``flowsim trace trainer_state.json``: the batch-mean path of a TRL DPO run that had no callback.

TRL logs, per logging step, the batch means of log pi(y|x) (``logps/chosen``, ``logps/rejected``)
and of beta * log(pi / pi_ref) (``rewards/chosen``, ``rewards/rejected``).  A mean of logs is the
log of a geometric mean, so the path drawn is that of exp(mean log x), not of any pair nor of the
mean probability; each point is also a mean over that step's batch, a different one at each step
unless the batch is the whole dataset.  Per-pair questions (was this pair displaced, where did SFT
leave it) need the callback (:mod:`flowsim.integrations.trl`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from flowsim.app.trace.output import out_folder
from flowsim.experiment.store import write_atomic
from flowsim.integrations.folder import TraceError

#: TRL's default beta, used when none is given (trainer_state.json does not record it).
TRL_DEFAULT_BETA = 0.1
KEYS = ("logps/chosen", "logps/rejected", "rewards/chosen", "rewards/rejected")


def read_state(path: Path) -> pd.DataFrame:
    """The DPO metrics of a trainer_state.json's log_history, one row per logged step; TraceError otherwise."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TraceError(f"{path} cannot be read as a trainer_state.json ({exc})") from None
    history = doc.get("log_history") if isinstance(doc, dict) else None
    if not isinstance(history, list):
        raise TraceError(f"{path} is not a trainer_state.json (no log_history list)")
    rows = [
        {"step": h["step"], **{k: h[k] for k in KEYS}}
        for h in history
        if isinstance(h, dict) and "step" in h and all(k in h for k in KEYS)
    ]
    if not rows:
        raise TraceError(
            f"{path} has no DPO metrics (log_history entries with {', '.join(KEYS)}): not a TRL "
            "DPO run, or it logged none"
        )
    df = pd.DataFrame(rows)
    try:
        values = df[list(KEYS)].to_numpy(float)
    except (TypeError, ValueError):
        raise TraceError(f"{path}: a logged DPO metric is not a number") from None
    if not np.isfinite(values).all():
        raise TraceError(f"{path}: a logged DPO metric is not a finite number (a diverged run?)")
    return df


def batch_path(df: pd.DataFrame, beta: float) -> pd.DataFrame:
    """Geometric means along the run: p_w, p_l (from logps/*) and x1, x2 (from rewards/* / beta)."""
    return pd.DataFrame(
        {
            "step": df["step"],
            "gm_p_w": np.exp(df["logps/chosen"]),
            "gm_p_l": np.exp(df["logps/rejected"]),
            "gm_x1": np.exp(df["rewards/chosen"] / beta),
            "gm_x2": np.exp(df["rewards/rejected"] / beta),
        }
    )


def batch_figure(path_df: pd.DataFrame, beta: float, out: Path) -> Path:
    from flowsim.app.trace.figures import limits, x_axes
    from flowsim.plotting.style import save

    fig = Figure(figsize=(11, 5))
    a, b = fig.add_axes((0.07, 0.12, 0.38, 0.78)), fig.add_axes((0.57, 0.12, 0.38, 0.78))
    x = np.log(path_df[["gm_x1", "gm_x2"]].to_numpy(float))
    lo, hi = limits(x)
    x_axes(a, beta, lo, hi, what="mean ")
    a.plot(x[:, 0], x[:, 1], "-o", color="#D55E00", ms=2.5, lw=1.2)
    p = path_df[["gm_p_w", "gm_p_l"]].to_numpy(float)
    b.plot(p[:, 0], p[:, 1], "-o", color="#0072B2", ms=2.5, lw=1.2)
    b.set_xscale("log")
    b.set_yscale("log")
    b.xaxis.set_minor_formatter(NullFormatter())
    b.yaxis.set_minor_formatter(NullFormatter())
    a.set_title(f"batch means of log x (rewards / β, β = {beta:g}); grey: the DPO field", fontsize=9)
    b.set_xlabel("geometric mean of p_w, exp(logps/chosen)")
    b.set_ylabel("geometric mean of p_l, exp(logps/rejected)")
    b.set_title("batch means in (p_w, p_l): not any pair's path (each step its own batch)", fontsize=9)
    return save(fig, out)


def batch_mean(state: Path, out: Path, beta: float | None) -> list[Path]:
    """Write batch_mean.csv, batch_mean.md and figures/batch_mean.png for a trainer_state.json."""
    df = read_state(state)
    b = TRL_DEFAULT_BETA if beta is None else float(beta)
    if not (np.isfinite(b) and b > 0):
        raise TraceError(f"--beta must be a finite number > 0; got {beta}")
    folder = out_folder(out)
    path_df = batch_path(df, b)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    written = [folder / "batch_mean.csv", folder / "batch_mean.md"]
    write_atomic(written[0], path_df.to_csv(index=False, float_format="%.17g"))
    fig = batch_figure(path_df, b, folder / "figures" / "batch_mean.png")
    first, last = path_df.iloc[0], path_df.iloc[-1]
    said = "given" if beta is not None else "TRL's default: trainer_state.json does not record beta; pass --beta"
    text = (
        f"# Batch-mean path of `{state}`\n\n{len(df)} logged steps ({int(first['step'])}..{int(last['step'])}); "
        f"beta {b:g} ({said}).\n\n**Caveat.** TRL logs batch means of log-probabilities and of beta log-ratios. "
        "A mean of logs is the log of a geometric mean: the path below is that of exp(mean log x), not of any pair "
        "nor of the mean probability, and each point averages that step's batch (a different one each step "
        "unless the batch is the whole dataset). Per-pair questions -- was a pair displaced, did p_l fall faster "
        "than p_w rose, where did SFT leave each pair -- need the callback: "
        "`from flowsim.integrations.trl import trace; trace(trainer, OUT)`.\n\n"
        f"| | first step | last step |\n|---|---|---|\n"
        f"| geometric mean x1 (chosen) | {first['gm_x1']:.4g} | {last['gm_x1']:.4g} |\n"
        f"| geometric mean x2 (rejected) | {first['gm_x2']:.4g} | {last['gm_x2']:.4g} |\n"
        f"| geometric mean p_w | {first['gm_p_w']:.4g} | {last['gm_p_w']:.4g} |\n"
        f"| geometric mean p_l | {first['gm_p_l']:.4g} | {last['gm_p_l']:.4g} |\n\n"
        f"Figure: `figures/{fig.name}`; the values: `batch_mean.csv`.\n"
    )
    write_atomic(written[1], text)
    return [*written, fig]
