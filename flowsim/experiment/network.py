"""Network experiments: ``[model] kind = "network"`` through the sweep, the store and resume.

A sweep's combination (loss x reference x model fields x optimiser) and a grid point make one
*training*: the dataset of ``n_pairs`` pairs is generated, the network initialised, fine-tuned
by the SFT stage (whose checkpoint is the start), then trained on the preference loss
(:mod:`flowsim.dynamics.training`).  It writes one row per pair in the flows.csv schema, with
p1_0, p2_0 = where SFT left that pair (p_w0, p_l0), so regions, tables and heatmaps read them as
any start, plus the columns of :data:`EXTRA` (the pair's index, the dataset's means, the SFT
objective, the target, the field at the start -- ``dp1_dt_0``, ``dp2_dt_0``: d(p_w, p_l)/dt of the
pair at t = 0 under the gradient flow of the full-batch mean loss, whatever the optimiser, and
``grad_norm_0``: the dataset's |grad_theta L| there (:func:`~flowsim.dynamics.training.initial_field`;
the claims read the field from these columns, as :attr:`Network.field_columns` declares) -- and with
``path_points`` > 0 the pair's trajectory as JSON).

The grid is read only by ``sft = "target"``: each grid point (p1, p2) is the target every pair
of the dataset is fine-tuned towards (and p1_0, p2_0 record where it actually landed).  The other
SFT kinds ignore the grid, which then defaults to a single point (one training per combination;
replicate with ``init_seed`` / ``data_seed`` lists).  The reference modes are the other models':
"initial" is the standard one (pi_ref = the SFT checkpoint, per pair), "none" is pi_ref = 1,
"fixed" the constants ref_w, ref_l.  The flow has no network version: a small-lr ``gd`` is its
stand-in (``tests/unit/test_network_flow.py`` measures the first-order agreement).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import numpy as np
import pandas as pd

from flowsim._validation import ParamError
from flowsim.experiment.grids import Axis, Grid
from flowsim.experiment.regions import feasible, region_labels
from flowsim.experiment.schema import NULLABLE_INT, columns

#: Columns a network row adds after the flows.csv columns.
EXTRA = ("pair", "logp_w0", "logp_l0", "logp_w_final", "logp_l_final", "p1_0_mean", "p2_0_mean",
         "p1_final_mean", "p2_final_mean", "displaced_frac", "loss_0_mean", "loss_final_mean", "train_status",
         "sft_objective", "target_w", "target_l", "dp1_dt_0", "dp2_dt_0", "grad_norm_0", "path")  # fmt: skip
#: The grid of an experiment whose SFT does not read it: one point (ignored).
ONE_POINT = Grid(kind="mesh", p1=Axis(0.5, 1.0, 1), p2=Axis(0.25, 1.0, 1))


def finish(exp, doc: dict[str, Any], fail) -> Any:
    """Check a parsed network experiment (rules between fields, dynamics, grid); return it completed.

    ``fail(key, value, rule)`` raises the configuration's error for a key.
    """
    from flowsim.model.parameterisations.network import Network

    for combo in _product(exp.model_params):
        try:
            Network(**combo).check_relations()
        except ParamError as exc:
            fail(f"model.{exc.key}", exc.value, exc.rule)
    if any(kind == "flow" for kind, _ in exp.dynamics):
        fail("dynamics.kind", "flow", "has no network version: train with an optimiser (gd, momentum, adam, adamw); "
             "a small-lr gd is the flow's stand-in")  # fmt: skip
    targets = "target" in exp.model_params.get("sft", ("chosen",))
    if "grid" not in doc:
        if targets:
            fail("grid", None, 'is required with model.sft = "target": its points are the SFT targets (p_w0, p_l0)')
        return dataclasses.replace(exp, grid=ONE_POINT)
    if not targets and len(exp.grid) > 1:
        fail("grid", exp.grid.as_dict(), 'is read only by model.sft = "target" (its points are the SFT targets); '
             "leave it out, or replicate trainings with model.init_seed / model.data_seed lists")  # fmt: skip
    return exp


def _product(params) -> list[dict[str, Any]]:
    return [dict(zip(params, c, strict=True)) for c in itertools.product(*params.values())]


def warm_up() -> None:
    """Import torch and what its optimisers import on first use (torch._dynamo), single-threaded.

    Called in the sweep's own process before its workers fork, so that they inherit the modules
    instead of each paying for them: 2.6-3.8 s for ``import torch`` and 2.5-3.1 s for the first
    optimiser step, measured on the shared 2-core machine under load.
    """
    import torch

    torch.set_num_threads(1)  # before any torch op: forked children must not inherit a thread pool
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    p.sum().backward()
    opt.step()


def network_columns(exp) -> list[str]:
    """A network run's flows.csv header: the flows columns, then :data:`EXTRA`."""
    return [*columns(exp), *EXTRA]


def _log_ref(mode: str, combo: dict[str, Any], logp0: np.ndarray) -> np.ndarray:
    if mode == "initial":
        return logp0.copy()
    if mode == "none":
        return np.zeros_like(logp0)
    return np.broadcast_to(np.log([combo["ref_w"], combo["ref_l"]]), logp0.shape).copy()


def train_one(exp, combo: dict[str, Any], target: np.ndarray):
    """One training of a combination (SFT towards ``target`` if asked).

    Returns (spec, SFT objective, log_ref, record, (dp/dt at the start (n, 2), |grad L| there)).
    """
    import torch

    from flowsim.dynamics.pretraining import pretrain
    from flowsim.dynamics.training import initial_field, sft, train_pairs
    from flowsim.model.network.archs import build
    from flowsim.model.network.data import make_pairs
    from flowsim.model.parameterisations.network import Network

    torch.set_num_threads(1)  # one training per worker process; threads only cost at this size
    loss = _loss(exp, combo)
    spec = Network(**{k: combo[k] for k in exp.model_params})
    net, batch = build(spec, make_pairs(spec))
    pretrain(net, spec)  # nothing unless pretrain_steps > 0
    sft_value = sft(net, batch, spec, target=target)
    with torch.no_grad():
        logp0 = batch.log_probs(net).numpy().copy()
    log_ref = _log_ref(combo["reference"], combo, logp0)
    field = initial_field(net, batch, loss, log_ref)
    rec = train_pairs(net, batch, loss, exp.optimiser(combo), exp.stop, log_ref, batch_size=spec.batch_size,
                      batch_seed=spec.batch_seed, path=spec.path_points > 0)  # fmt: skip
    return spec, sft_value, log_ref, rec, field


def _loss(exp, combo):
    from flowsim.model.losses import LOSSES

    kind = combo.get("loss", exp.losses[0][0])
    return LOSSES[kind](**{k: combo[k] for k in dict(exp.losses)[kind]})


def run_network_chunk(exp, chunk) -> pd.DataFrame:
    """The rows of one chunk: a training per grid point (one point unless sft = "target"), a row per pair."""
    targets = chunk.combo.get("sft") == "target"
    parts = [_rows(exp, chunk.combo, chunk.p0[i] if targets else None) for i in range(len(chunk.p0))]
    return pd.concat(parts, ignore_index=True)


def path_column(rec, points: int, lr: float) -> list[str]:
    """Each pair's trajectory as JSON: [[t, log pi(y_w), log pi(y_l)], ...] at ``points`` steps ('' if 0)."""
    if not points:
        return [""] * len(rec.logp)
    k = np.unique(np.round(np.linspace(0, rec.steps, points)).astype(int))
    return [json.dumps([[float(i * lr), *map(float, rec.path_logp[i, j])] for i in k]) for j in range(len(rec.logp))]


def _rows(exp, combo: dict[str, Any], target: np.ndarray | None) -> pd.DataFrame:
    spec, sft_value, log_ref, rec, (v0, gnorm0) = train_one(exp, combo, target)
    n = spec.n_pairs
    p0, p = np.exp(rec.logp0), np.exp(rec.logp)
    df = pd.DataFrame({k: np.full(n, combo.get(k, np.nan)) for k in exp.loss_params})
    ref = np.exp(log_ref)
    df["ref_w"], df["ref_l"] = ref[:, 0], ref[:, 1]
    for k in exp.model_params:
        df[k] = combo[k]
    for k in exp.dynamics_params:
        df[k] = combo.get(k, np.nan)
    df["p1_0"], df["p2_0"] = p0[:, 0], p0[:, 1]
    x0 = np.exp(rec.logp0 - log_ref)
    df["x1_0"], df["x2_0"] = x0[:, 0], x0[:, 1]
    df["region"] = region_labels(p0, exp.p1_cuts, exp.p2_cuts)
    df["feasible"] = feasible(p0)
    x = np.exp(rec.h)
    record = {"status": rec.status, "t_stop": np.full(n, rec.t_stop), "p1_final": p[:, 0], "p2_final": p[:, 1],
              "x1_final": x[:, 0], "x2_final": x[:, 1], "loss_0": rec.loss_0, "loss_final": rec.loss_final,
              "t_w": rec.t_w, "t_l": rec.t_l, "nfev": np.full(n, rec.steps), "p_w_min": rec.p_w_min,
              "t_p_w_min": rec.t_p_w_min, "displaced": rec.displaced, "max_mass": rec.max_mass,
              "margin_final": rec.h[:, 0] - rec.h[:, 1], "rest_final": 1.0 - p[:, 0] - p[:, 1],
              "top_other": np.full(n, np.nan), "p_top_other": np.full(n, np.nan), "steps": np.full(n, rec.steps),
              "loss": combo["loss"], "model": "network", "dynamics": combo["dynamics"],
              "reference": combo["reference"], "message": rec.message, "engine": "torch"}  # fmt: skip
    for k, v in record.items():
        df[k] = pd.array(np.round(v), dtype="Int64") if k in NULLABLE_INT else v
    extra = {"pair": np.arange(n), "logp_w0": rec.logp0[:, 0], "logp_l0": rec.logp0[:, 1],
             "logp_w_final": rec.logp[:, 0], "logp_l_final": rec.logp[:, 1], "p1_0_mean": p0[:, 0].mean(),
             "p2_0_mean": p0[:, 1].mean(), "p1_final_mean": p[:, 0].mean(), "p2_final_mean": p[:, 1].mean(),
             "displaced_frac": rec.displaced.mean(), "loss_0_mean": rec.loss_0.mean(),
             "loss_final_mean": rec.loss_final.mean(), "train_status": rec.train_status, "sft_objective": sft_value,
             "target_w": np.nan if target is None else target[0],
             "target_l": np.nan if target is None else target[1], "dp1_dt_0": v0[:, 0], "dp2_dt_0": v0[:, 1],
             "grad_norm_0": np.full(n, gnorm0),
             "path": path_column(rec, spec.path_points, exp.optimiser(combo).lr)}  # fmt: skip
    for k, v in extra.items():
        df[k] = v
    return df[network_columns(exp)]


__all__ = ["EXTRA", "finish", "network_columns", "run_network_chunk", "train_one", "warm_up"]
