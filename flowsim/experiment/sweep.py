"""Grids x parameters -> rows of the flows table, in chunks: pure compute, no files.

A chunk is a contiguous block of rows of one parameter combination; :func:`run_chunk`
computes it (in a worker process) by the engine the experiment's ``[solver] engine`` gives the
combination (:mod:`flowsim.dynamics.engines`), and :func:`frame` makes the engine's record
arrays flows.csv rows.  Rows are computed
independently, so they do not depend on the chunk size, the number of workers or
interruptions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from flowsim.dynamics.engines import AUTO, ENGINES, choose
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS
from flowsim.experiment.config import Experiment
from flowsim.experiment.regions import feasible, region_labels
from flowsim.experiment.schema import NULLABLE_INT, columns
from flowsim.model.objective import Objective


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A contiguous block of rows: one parameter combination, starts and their references."""

    index: int
    combo: dict[str, Any]
    p0: np.ndarray  # (n, 2)
    ref: np.ndarray  # (n, 2)


#: The start columns an engine may record itself (a network's SFT lands off its target).
ENGINE_STARTS = ("p1_0", "p2_0", "x1_0", "x2_0", "ref_w", "ref_l", "loss_0")
#: Grid points examined at a time when counting the starts a normalised model can take.
SCAN = 1 << 20


def kept(exp: Experiment) -> np.ndarray | None:
    """Indices of the grid points a normalised model can take (p_w0 + p_l0 < 1), or None for all.

    The ratio plane takes every point of the square; a normalised model needs room for the
    other responses.  Scanned block by block, so only the indices are held.
    """
    if not exp.model_class.normalised:
        return None
    n = len(exp.grid)
    parts = []
    for lo in range(0, n, SCAN):
        p = exp.grid.points(lo, lo + SCAN)
        parts.append(lo + np.flatnonzero(p[:, 0] + p[:, 1] < 1.0))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def starts(exp: Experiment, index: np.ndarray | None = None) -> tuple[int, int]:
    """(starts the model takes, grid points it leaves out)."""
    index = kept(exp) if index is None else index
    n = len(exp.grid)
    return (n, 0) if index is None else (len(index), n - len(index))


def n_rows(exp: Experiment) -> int:
    """Rows of the flows table: combinations x starts (x pairs, for a network)."""
    return sum(exp.split(c)[1].rows_per_start() for c in exp.parameter_sets()) * starts(exp)[0]


def chunks(exp: Experiment, chunk_size: int, index: np.ndarray | None = None) -> Iterator[Chunk]:
    """The sweep's rows in order (parameter combinations outer, grid inner), in blocks, made lazily.

    ``index`` is :func:`kept`'s (computed here if not given); each chunk's points are made
    when it is reached, so memory does not grow with the number of rows.
    """
    index = kept(exp) if index is None else index
    n, _ = starts(exp, index)
    exp.model_class.prepare_workers()  # once, here, before the workers fork (a network: torch)
    k = 0
    for combo in exp.parameter_sets():
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            p0 = exp.grid.points(lo, hi) if index is None else exp.grid.points_at(index[lo:hi])
            yield Chunk(k, combo, p0, references(combo, p0))
            k += 1


def references(combo: Mapping[str, Any], p0: np.ndarray) -> np.ndarray:
    """The references of starts ``p0`` (..., 2) under a combination's reference mode."""
    p0 = np.asarray(p0, dtype=float)
    if combo["reference"] == "initial":
        return p0.copy()
    if combo["reference"] == "none":
        return np.ones_like(p0)
    return np.broadcast_to(np.array([combo["ref_w"], combo["ref_l"]], dtype=float), p0.shape).copy()


def run_chunk(exp: Experiment, chunk: Chunk) -> pd.DataFrame:
    """Compute one chunk's rows by the engine of its combination (:meth:`Experiment.engine_for`)."""
    task = exp.task(chunk.combo)
    engine = ENGINES[exp.engine_for(chunk.combo)]
    res = engine.run(task, chunk.p0, chunk.ref)
    return frame(exp, chunk, task, res, engine.name)


def paths(task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of starts p0 (n, 2) with their paths (``task.path`` points), by the engine "auto" picks for it.

    An engine that records no paths refuses such a task, so "auto" gives the driver for the flow
    and the discrete runner for an optimiser (:func:`flowsim.dynamics.engines.choose`).
    """
    return choose(AUTO, task).run(task, p0, ref)


def first_rate(task, policy) -> np.ndarray:
    """``dlogpw_first`` of starts bound in ``policy``: the change of log p_w over the optimiser's first
    step divided by its lr (measured: one step taken), or the flow's d log p_w/dt at t = 0 (the field)."""
    theta = np.asarray(policy.theta0, dtype=float)
    grad = Objective(task.loss, policy).grad(theta)
    if task.optimiser is None:
        return -np.sum(policy.vjp(theta, np.array([1.0, 0.0])) * grad, axis=-1)
    opt = task.optimiser
    with np.errstate(all="ignore"):
        theta1, _ = opt.step(theta, grad, opt.init(theta), 1)
        return (policy.log_probs(theta1)[..., 0] - policy.log_probs(theta)[..., 0]) / opt.lr


def frame(exp: Experiment, chunk: Chunk, task, res: dict[str, np.ndarray], engine: str) -> pd.DataFrame:
    """An engine's rows of a chunk as flows.csv rows: the parameters, the start, the record, the model's columns.

    A row's start is the chunk's (``res["start"]`` says which, for a model of several rows per
    start); the start columns the engine records (a network's SFT lands off its target) are its own.
    """
    start = res.get("start", np.arange(len(chunk.p0)))
    p0, ref = chunk.p0[start], chunk.ref[start]
    n = len(start)
    known = {"p1_0": p0[:, 0], "p2_0": p0[:, 1], "ref_w": ref[:, 0], "ref_l": ref[:, 1]}
    if "x1_0" not in res:  # a model of independent starts: its policy knows them
        policy = task.model.bind(p0, ref)
        x0 = policy.ratios(policy.theta0)
        known |= {"x1_0": x0[:, 0], "x2_0": x0[:, 1], "loss_0": Objective(task.loss, policy).value(policy.theta0)}
        if task.model.probe_columns:  # the predictors of displacement, in closed form, and the first step's
            res = res | task.model.start_columns(p0, ref, task.loss) | {"dlogpw_first": first_rate(task, policy)}
    known |= {k: res[k] for k in ENGINE_STARTS if k in res}
    # the columns gathered in one dict, then one frame: a column inserted at a time cost a fifth of a
    # small chunk's time (pandas re-blocks on each insert)
    # every loss parameter column; empty where this chunk's loss does not take the parameter
    cols: dict[str, Any] = {k: np.full(n, chunk.combo.get(k, np.nan)) for k in exp.loss_params}
    cols["ref_w"], cols["ref_l"] = known["ref_w"], known["ref_l"]
    cols |= {k: chunk.combo[k] for k in exp.model_params}
    # empty for the flow and for optimisers without the parameter
    cols |= {k: chunk.combo.get(k, np.nan) for k in exp.dynamics_params}
    starts_ = np.stack([known["p1_0"], known["p2_0"]], -1)
    cols |= {k: known[k] for k in ("p1_0", "p2_0", "x1_0", "x2_0")}
    cols["region"] = region_labels(starts_, exp.p1_cuts, exp.p2_cuts)
    cols["feasible"] = feasible(starts_)
    for k in (*RESULT_FIELDS, *PATH_FIELDS):
        cols[k] = pd.array(np.round(res[k]), dtype="Int64") if k in NULLABLE_INT else res[k]
    cols["loss_0"] = known["loss_0"]
    cols["loss"], cols["model"], cols["dynamics"] = task.loss.kind, exp.model_kind, chunk.combo["dynamics"]
    cols["reference"] = chunk.combo["reference"]
    cols["engine"] = res.get("engine", engine)  # an engine names the rows it handed to another
    extra = exp.model_class.extra_columns
    cols |= {k: res[k] for k in extra}
    df = pd.DataFrame(cols, index=pd.RangeIndex(n))
    return df[[*columns(exp), *extra]]
