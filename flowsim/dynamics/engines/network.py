"""The ``network`` engine: trainings of a small causal LM (:mod:`flowsim.dynamics.training`, torch).

A start (a grid point) makes one *training*: the dataset of ``n_pairs`` pairs is generated, the
network initialised, fine-tuned by the SFT stage (towards the start itself with ``sft =
"target"``; the other SFT kinds ignore it), whose checkpoint is the start of the preference
stage, then trained with the task's optimiser.  It returns one row per pair (``start`` says
whose), with p1_0, p2_0 = where SFT left that pair, and the network's own columns
(``Network.extra_columns``).  The reference modes are the other
models': "initial" is pi_ref = the SFT checkpoint per pair, "none" pi_ref = 1, "fixed" the
starts' references.
"""

from __future__ import annotations

import json

import numpy as np

from flowsim.dynamics.engines.base import Engine, Task

#: Trainings in one ensemble: a chunk's starts are trained MAX_MEMBERS at a time.  Throughput has
#: levelled off well below it (docs/explanation/transformer.md) and the stack's memory (parameters,
#: gradients, two Adam moments, activations) stays in tens of MB for the transformer at this size.
MAX_MEMBERS = 64


class Network(Engine):
    """Full-batch or mini-batch training of the network with a torch optimiser (the optimiser's twin)."""

    name = "network"
    flow = False
    models = frozenset({"network"})

    def refuses(self, task: Task) -> str | None:
        if task.path:
            return "records each pair's path in its rows (the model's path_points), not as parameters"
        return None

    def run(self, task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
        if task.model.pool:  # each member keeps its own pairs after SFT; an ensemble's stack shares one batch
            return run_loop(task, p0, ref)
        targets = task.model.sft == "target"
        parts: list[dict[str, np.ndarray]] = []
        for lo in range(0, len(p0), MAX_MEMBERS):
            hi = min(lo + MAX_MEMBERS, len(p0))
            parts += ensemble_rows(task, [p0[i] if targets else None for i in range(lo, hi)], ref[lo:hi])
        out = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
        out["start"] = np.repeat(np.arange(len(p0)), task.model.n_pairs)
        return out


def run_loop(task: Task, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of :meth:`Network.run` computed one training at a time (:func:`train_one`): the reference."""
    targets = task.model.sft == "target"
    parts = [_rows(task, p0[i] if targets else None, ref[i]) for i in range(len(p0))]
    out = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    out["start"] = np.repeat(np.arange(len(p0)), task.model.n_pairs)
    return out


def _log_ref(mode: str, ref: np.ndarray, logp0: np.ndarray) -> np.ndarray:
    if mode == "initial":
        return logp0.copy()
    if mode == "none":
        return np.zeros_like(logp0)
    return np.broadcast_to(np.log(ref), logp0.shape).copy()


def train_one(task: Task, target: np.ndarray | None, ref: np.ndarray | None = None):
    """One training (SFT towards ``target`` if asked), references from ``task.reference`` (and ``ref``).

    Returns (SFT objective, log_ref, record, (dp/dt at the start (n, 2), |grad L| there), the
    predictors of :mod:`flowsim.model.network.probes` per pair).
    """
    import torch

    from flowsim.dynamics.pretraining import pretrain
    from flowsim.dynamics.training import initial_field, sft, train_pairs
    from flowsim.model.network.archs import build
    from flowsim.model.network.data import make_pairs
    from flowsim.model.network.probes import Members, end_probes, member, start_probes
    from flowsim.model.network.select import select_pairs

    torch.set_num_threads(1)  # one training per worker process; threads only cost at this size
    spec = task.model
    net, batch = build(spec, make_pairs(spec))
    pretrain(net, spec)  # nothing unless pretrain_steps > 0
    sft_value = sft(net, batch, spec, target=target)
    batch = select_pairs(net, batch, spec)  # with a pool: its selected pairs, ranked at the DPO start
    with torch.no_grad():
        logp0 = batch.log_probs(net).numpy().copy()
    log_ref = _log_ref(task.reference, np.ones(2) if ref is None else ref, logp0)
    field = initial_field(net, batch, task.loss, log_ref)
    # before the preference stage moves net: the probes of one member (E = 1), as the ensemble's
    probes = start_probes(Members.of(net), batch, spec, task.loss, log_ref[None])
    rec = train_pairs(
        net,
        batch,
        task.loss,
        task.optimiser,
        task.stop,
        log_ref,
        batch_size=spec.batch_size,
        batch_seed=spec.batch_seed,
        path=spec.path_points > 0,
    )
    logp1 = _first_step(rec)[None]
    probes = end_probes(Members.of(net), spec, batch.data, probes, rec.logp0[None], logp1, task.optimiser.lr)
    return sft_value, log_ref, rec, field, member(probes, 0)


def _first_step(rec) -> np.ndarray:
    """log pi after the record's first optimiser step (n, 2), NaN if it took none (the probes' ``logp1``)."""
    return np.full_like(rec.logp0, np.nan) if rec.logp1 is None else rec.logp1


def path_column(rec, points: int, lr: float) -> list[str]:
    """Each pair's trajectory as JSON: [[t, log pi(y_w), log pi(y_l)], ...] at ``points`` steps ('' if 0)."""
    if not points:
        return [""] * len(rec.logp)
    k = np.unique(np.round(np.linspace(0, rec.steps, points)).astype(int))
    return [json.dumps([[float(i * lr), *map(float, rec.path_logp[i, j])] for i in k]) for j in range(len(rec.logp))]


def ensemble_rows(task: Task, targets: list, refs: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The rows of E trainings of one task (one per target; the same network and data) as one ensemble.

    Pretraining once (every member shares the initialisation and the data; the process keeps it,
    :func:`~flowsim.dynamics.pretraining.pretrain`), SFT of the stacked members
    (:func:`~flowsim.dynamics.ensemble.sft_ensemble`),
    the references and the field at every member's start
    (:func:`~flowsim.dynamics.ensemble.initial_fields`), the probes' start columns of all members at
    once, then the preference stage of the stack with each member's own stop
    (:func:`~flowsim.dynamics.ensemble.train_pairs_ensemble`), then the probes' end columns of all
    members at once (:mod:`flowsim.model.network.probes`, over the members' stacked parameters).  Equal to
    :func:`run_loop`'s rows to 1e-10 (tests/unit/test_ensemble.py).
    """
    import torch

    from flowsim.dynamics.ensemble import Stack, initial_fields, sft_ensemble, train_pairs_ensemble
    from flowsim.dynamics.pretraining import pretrain
    from flowsim.model.network.archs import build
    from flowsim.model.network.data import make_pairs
    from flowsim.model.network.probes import Members, end_probes, member, start_probes
    from flowsim.model.parameterisations.network import resolve_device

    torch.set_num_threads(1)  # one chunk per worker process; threads only cost at this size
    spec, n_members = task.model, len(targets)
    net, batch = build(spec, make_pairs(spec))
    pretrain(net, spec)  # nothing unless pretrain_steps > 0
    stack = Stack([net] * n_members, [batch] * n_members, device=resolve_device(spec.device))
    sft_values = sft_ensemble(stack, [spec] * n_members, targets)
    with torch.no_grad():
        logp0 = stack.log_probs().cpu().numpy()
    log_refs = np.array([_log_ref(task.reference, r, lp) for r, lp in zip(refs, logp0, strict=True)])
    _, v0, gnorm0 = initial_fields(stack, task.loss, log_refs)
    sft_params = {k: v.detach().clone() for k, v in stack.params.items()}  # the stack moves on, members leave it
    starts = start_probes(Members(net, sft_params), batch, spec, task.loss, log_refs)  # every member's at once
    finals: dict[int, torch.Tensor] = {}
    recs = train_pairs_ensemble(
        stack,
        task.loss,
        task.optimiser,
        task.stop,
        log_refs,
        batch_size=spec.batch_size,
        batch_seeds=[spec.batch_seed] * n_members,
        path=spec.path_points > 0,
        finals=finals,
    )
    # each member where it stopped: its final trainable row, the frozen parameters as at the start
    final = sft_params | stack.unflatten(torch.stack([finals[i] for i in range(n_members)]).to(stack.device))
    logp0, logp1 = (np.array([f(rec) for rec in recs]) for f in (lambda r: r.logp0, _first_step))
    probes = end_probes(Members(net, final), spec, batch.data, starts, logp0, logp1, task.optimiser.lr)
    return [
        _rows_of(task, targets[i], sft_values[i], log_refs[i], rec, (v0[i], gnorm0[i]), member(probes, i))
        for i, rec in enumerate(recs)
    ]


def _rows(task: Task, target: np.ndarray | None, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of one training (:func:`train_one`)."""
    return _rows_of(task, target, *train_one(task, target, ref))


def _rows_of(task: Task, target, sft_value, log_ref, rec, field, probes) -> dict[str, np.ndarray]:
    """The rows of one training: the record, the start columns, the network's own columns (the probes')."""
    v0, gnorm0 = field
    n = task.model.n_pairs
    p0, p, x0, x = np.exp(rec.logp0), np.exp(rec.logp), np.exp(rec.logp0 - log_ref), np.exp(rec.h)
    full = np.full
    record = {
        "status": rec.status,
        "t_stop": full(n, rec.t_stop),
        "p1_final": p[:, 0],
        "p2_final": p[:, 1],
        "x1_final": x[:, 0],
        "x2_final": x[:, 1],
        "loss_final": rec.loss_final,
        "nfev": full(n, rec.steps),
        **rec.columns(),
        "steps": full(n, rec.steps),
        "message": full(n, rec.message, dtype=object),
        "engine": full(n, "network", dtype=object),
    }
    start = {
        "p1_0": p0[:, 0],
        "p2_0": p0[:, 1],
        "x1_0": x0[:, 0],
        "x2_0": x0[:, 1],
        "loss_0": rec.loss_0,
        "ref_w": np.exp(log_ref)[:, 0],
        "ref_l": np.exp(log_ref)[:, 1],
    }
    extra = {
        "pair": np.arange(n),
        "logp_w0": rec.logp0[:, 0],
        "logp_l0": rec.logp0[:, 1],
        "logp_w_final": rec.logp[:, 0],
        "logp_l_final": rec.logp[:, 1],
        "p1_0_mean": p0[:, 0].mean(),
        "p2_0_mean": p0[:, 1].mean(),
        "p1_final_mean": p[:, 0].mean(),
        "p2_final_mean": p[:, 1].mean(),
        "displaced_frac": record["displaced"].mean(),
        "loss_0_mean": rec.loss_0.mean(),
        "loss_final_mean": rec.loss_final.mean(),
        "train_status": rec.train_status,
        "sft_objective": sft_value,
        "target_w": np.nan if target is None else target[0],
        "target_l": np.nan if target is None else target[1],
        "dp1_dt_0": v0[:, 0],
        "dp2_dt_0": v0[:, 1],
        "grad_norm_0": full(n, gnorm0),
        "path": np.array(path_column(rec, task.model.path_points, task.optimiser.lr), dtype=object),
        **probes,
    }
    return {
        k: np.broadcast_to(v, (n,)).copy() if np.ndim(v) == 0 else np.asarray(v)
        for k, v in (record | start | extra).items()
    }


__all__ = ["MAX_MEMBERS", "Network", "ensemble_rows", "path_column", "run_loop", "train_one"]
