"""A traced training run on the explore page: the pairs' starts, each pair's recorded path, and beside it
the idealised flow from its start (by default DPO on the ratio plane at the run's beta, reference = the start).

The page reads ``flowsim trace``'s output (its flows.csv, checked against trace.json).  Sequence
probabilities are small, so the plane is drawn on log axes around the starts and paths, without
the unit square's regions or field; the run's path is the recorded one (t in optimiser steps),
the compared one is computed as for any start (t in flow time).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsim.app.explore import compute
from flowsim.app.explore.compute import Setting, Trajectory
from flowsim.experiment.config import parse_experiment
from flowsim.integrations.folder import TraceError
from flowsim.model.losses import LOSSES


class RecordedSetting:
    """The run's "setting" on the page: the recorded paths (a label for the page's table)."""

    def label(self) -> str:
        return "the traced run (recorded)"


def trace_output(folder: Path) -> Path:
    """``flowsim trace``'s output for a trace folder (or the output itself); TraceError if there is none yet."""
    for out in (folder, folder / "flowsim"):
        if (out / "trace.json").is_file():
            return out
    raise TraceError(f"{folder} has not been traced yet: run `flowsim trace {folder}` first, then explore it")


def read_output(out: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(flows.csv, trace.json) of a trace output, flows.csv checked against the sha256 trace.json records."""
    try:
        record = json.loads((out / "trace.json").read_text())
        beta = float(record["trace"]["beta"])
    except (ValueError, KeyError, TypeError):
        raise TraceError(f"{out / 'trace.json'} is damaged: run `flowsim trace` again") from None
    data = (out / "flows.csv").read_bytes() if (out / "flows.csv").is_file() else b""
    if hashlib.sha256(data).hexdigest() != record.get("flows_sha256") or not beta > 0:
        raise TraceError(f"{out / 'flows.csv'} does not match its trace.json: run `flowsim trace` again")
    from flowsim.experiment.store import read_flows

    return read_flows(out / "flows.csv"), record


def setting(flows: pd.DataFrame, beta: float):
    """(experiment, combination, page setting) the traced pairs are compared with by default: the idealised flow
    of the run's loss (DPO if flowsim has none of it) on the ratio plane, reference = the start, stopped at the
    run's median margin, as ``flowsim trace`` computes it."""
    from flowsim.app.trace import PLACEHOLDER_GRID, ideal_stop

    loss = str(flows["loss"].iloc[0])
    loss = loss if loss in LOSSES else "dpo"
    exp = parse_experiment(
        {
            "name": "explore-trace",
            "loss": {"kind": loss, "beta": beta, "reference": "initial"},
            "model": {"kind": "ratio"},
            "stop": ideal_stop(flows).as_dict(),
            "grid": PLACEHOLDER_GRID,
        },
        source=compute.SOURCE,
    )
    return exp, exp.parameter_sets()[0], Setting(model="ratio", loss=loss, beta=f"{beta:g}", reference="initial")


def recorded_path(row: pd.Series) -> np.ndarray:
    """A row's recorded path (m, 3): step, p_w, p_l."""
    path = np.array(json.loads(row["path"]), dtype=float)
    return np.column_stack([path[:, 0], np.exp(path[:, 1:])])


def observed(row: pd.Series | None) -> Trajectory:
    """The recorded path of a snapped pair as a trajectory; ValueError without one."""
    if row is None:
        raise ValueError("a trace records its pairs' paths only: tick 'snap clicks to the run's starts'")
    path = recorded_path(row)
    return Trajectory(
        path[:, 1],
        path[:, 2],
        path[:, 0],
        str(row["status"]),
        float(row["t_stop"]),
        int(row["steps"]),
        0.0,
        str(row.get("message", "") or ""),
    )


def axes(data) -> dict[str, Any]:
    """Log axes around the starts and the recorded paths (padded by a factor 2)."""
    rows = data.groups[0].rows
    p = np.concatenate([recorded_path(r)[:, 1:] for _, r in rows.iterrows()])
    lo, hi = p.min(axis=0) / 2, np.minimum(p.max(axis=0) * 2, 1.0)
    return {
        "x_axis_type": "log",
        "y_axis_type": "log",
        "x_range": (float(lo[0]), float(hi[0])),
        "y_range": (float(lo[1]), float(hi[1])),
    }
