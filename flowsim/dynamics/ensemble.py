r"""Many trainings of one network shape at once: SFT and the preference stage as one batched ensemble.

E networks (one architecture and size; any initialisations, e.g. seeds x SFT starts) and their E
datasets (one shape; any contents) train together.  Their parameters are stacked on a leading
member axis (:class:`Stack`); log pi of every member's pairs is one batched forward -- the
module's own stacked forward where it has one (the transformer's hand-written GPT-2 over batched
parameter tensors, :mod:`flowsim.model.network.stacked`), else ``vmap`` of ``functional_call``
over the member axis -- and one backward pass fills every member's gradient, which one
``torch.optim`` optimiser steps.  SGD, momentum, Adam and AdamW are elementwise with a step count
shared by the members, so stepping the stack is stepping each member alone.

:func:`train_pairs_ensemble` is :func:`flowsim.dynamics.training.train_pairs` for E members: each
member's dataset stops at the first step where its own condition holds (the same tests, in the
same precedence), with its own t_stop, status and record.  A member that stops leaves the stack
before the step (its parameters, gradients and optimiser state are cut out: :meth:`Stack.keep`),
so it costs nothing more and cannot change the others; the members still training have all
taken the same number of steps, so Adam's shared step count is each one's own.  Mini-batches are
per member (each its own seeded :class:`~flowsim.dynamics.training._Batches`): the loss of the
rows a member draws is applied through a mask, exactly the gradient of its batch's mean loss.
tests/unit/test_ensemble.py: the records equal ``train_pairs``' one at a time to 1e-10.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from flowsim.dynamics.optimisers import Optimiser, step_limit
from flowsim.dynamics.optimisers.adam import Adam
from flowsim.dynamics.record import PathTrack, StopRule
from flowsim.dynamics.training import PairRecord, _Batches, sft_weights
from flowsim.model.losses.base import Loss
from flowsim.model.network.module import DTYPE

#: The tensor attributes of each batch type that hold a dataset (stacked over the members).
BATCH_TENSORS = {"PairBatch": ("ctx", "tokens"), "SequenceBatch": ("ids",)}


class Stack:
    """E members of one architecture as stacked tensors (E, ...), with their datasets.

    The trainable parameters live in one leaf tensor ``flat`` (E, P), each parameter a view of its
    columns (:attr:`params`), so that an optimiser steps one tensor instead of one per parameter
    (elementwise, so the same numbers; at these sizes the per-tensor calls were a quarter of a step).
    ``net`` is any member (its structure is used, not its values); ``template`` any member's batch.
    A parameter is trainable in the stack when it is in the first member (all members share the
    architecture, and so which parts ``train`` names).
    """

    def __init__(self, nets: list[torch.nn.Module], batches: list, device: str = "cpu") -> None:
        self.net, self.template, self.device = nets[0], batches[0], device
        named = [dict(n.named_parameters()) for n in nets]
        stacked = {k: torch.stack([m[k].detach() for m in named]).to(device) for k in named[0]}
        self.names = [k for k, p in named[0].items() if p.requires_grad]
        self.shapes = {k: stacked[k].shape[1:] for k in self.names}
        n = len(nets)
        self.flat = torch.cat([stacked[k].reshape(n, -1) for k in self.names], dim=1).requires_grad_(True)
        self.frozen = {k: v for k, v in stacked.items() if k not in self.shapes}
        bufs = [dict(n.named_buffers()) for n in nets]
        self.buffers = {k: torch.stack([b[k] for b in bufs]).to(device) for k in bufs[0]}
        names = BATCH_TENSORS[type(batches[0]).__name__]
        self.data = {k: torch.stack([getattr(b, k) for b in batches]).to(device) for k in names}
        self.stacked = getattr(type(self.net), "stacked_forward", None)

    def __len__(self) -> int:
        return self.flat.shape[0]

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Every parameter by name (E, ...): the trainable ones views of :attr:`flat`."""
        return dict(self.frozen) | self.unflatten(self.flat)

    def trainable(self) -> list[torch.Tensor]:
        return [self.flat]

    def forward(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of every member's inputs x (E, ...): the module's stacked forward, or vmap of it."""
        params = self.params if params is None else params
        if self.stacked is not None:
            return self.stacked(self.net, params, x)

        def member(p, b, xm):
            return torch.func.functional_call(self.net, (p, b), (xm,))

        return torch.func.vmap(member)(params, self.buffers, x)

    def log_probs(self, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """log pi(y_w|x), log pi(y_l|x) of every member's pairs, shape (E, n, 2).

        ``params`` replaces some of the stack's parameters (e.g. the trainable ones, for forward-mode AD).
        """
        view = copy.copy(self.template)
        view.__dict__.update(self.data)
        full = self.params if params is None else self.params | params
        if BATCH_TENSORS[type(view).__name__] == ("ids",):
            return view.log_probs(lambda x: _but_last(self.forward(x[..., :-1], full)))
        return view.log_probs(lambda x: self.forward(x, full))

    def keep(self, rows: np.ndarray, opt=None, optimiser: Optimiser | None = None):
        """Keep only the members ``rows`` (positions in the stack): parameters, gradients, data and,
        given ``opt`` (the optimiser over :meth:`trainable`), its state; returns the new optimiser."""
        idx = torch.as_tensor(rows, device=self.device)
        old = self.flat
        self.flat = old.detach()[idx].clone().requires_grad_(True)
        if old.grad is not None:
            self.flat.grad = old.grad[idx].clone()
        self.frozen = {k: v[idx] for k, v in self.frozen.items()}
        self.buffers = {k: b[idx] for k, b in self.buffers.items()}
        self.data = {k: d[idx] for k, d in self.data.items()}
        if opt is None:
            return None
        fresh = optimiser.torch(self.trainable())
        fresh.state[self.flat] = {
            name: (v if not torch.is_tensor(v) else v[idx].clone() if v.ndim > 0 else v.clone())
            for name, v in opt.state[old].items()
        }
        return fresh

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows (E', P) laid out as :attr:`flat` (e.g. members' final rows) as the trainable parameters
        by name (E', ...).

        One split, not a slice per parameter: the backward of a split is one cat of the gradients,
        where each slice's backward fills a zero (E, P) tensor (a fifth of a transformer step).
        """
        parts = torch.split(flat, [self.shapes[k].numel() for k in self.names], dim=1)
        return {k: part.reshape(len(flat), *self.shapes[k]) for k, part in zip(self.names, parts, strict=True)}


def _but_last(logits: torch.Tensor) -> torch.Tensor:
    """Logits of positions 0..L-2 (..., L-1, V) padded with zeros at L-1 (..., L, V).

    A causal LM's last position is never a context: no position attends to it and the sequence
    batch reads the logits of positions P-1..L-2 only, so the ensemble does not compute it (a
    fifth of the transformer's work at L = 5); the zeros are never read.
    """
    return torch.cat([logits, torch.zeros_like(logits[..., :1, :])], dim=-2)


# -- the SFT stage, batched ------------------------------------------------------------------------


def sft_ensemble(stack: Stack, specs: list, targets: list[np.ndarray | None]) -> np.ndarray:
    """:func:`flowsim.dynamics.training.sft` of every member at once (one spec's kind, steps, lr for all).

    The objective summed over the members has each member's own objective's gradient, and Adam is
    elementwise, so each member moves as it would alone.  Returns each member's SFT objective at
    the end (E,), NaN for ``sft = "none"`` or 0 steps.
    """
    spec, n = specs[0], stack.template.data.n_pairs
    if spec.sft == "none" or spec.sft_steps == 0:
        return np.full(len(specs), math.nan)
    if spec.sft == "target":
        if any(t is None for t in targets):
            raise ValueError('sft = "target" needs a target (p_w0, p_l0) per pair')
        goal = torch.as_tensor(
            np.log(np.stack([np.broadcast_to(t, (n, 2)) for t in targets])), dtype=DTYPE, device=stack.device
        )

        def objective() -> torch.Tensor:
            return torch.mean((stack.log_probs() - goal) ** 2, dim=(1, 2))
    else:
        w = torch.as_tensor(np.stack([sft_weights(s, n) for s in specs]), dtype=DTYPE, device=stack.device)

        def objective() -> torch.Tensor:
            return -torch.mean(torch.sum(w * stack.log_probs(), dim=-1), dim=-1)

    opt = Adam(lr=spec.sft_lr).torch(stack.trainable())
    for _ in range(spec.sft_steps):
        opt.zero_grad()
        objective().sum().backward()
        opt.step()
    with torch.no_grad():
        return objective().cpu().numpy().copy()


# -- the field at the start, batched ---------------------------------------------------------------


def initial_fields(stack: Stack, loss: Loss, log_refs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`flowsim.dynamics.training.initial_field` of every member: (log pi (E, n, 2), dp/dt (E, n, 2),
    |grad L| (E,)) at the stack's parameters, by one backward pass and one forward-mode pass for all.

    g = J^T grad_h L per member (the stacked backward of the members' mean losses), then
    d log p/dt = -J g (``torch.func.jvp`` of the stacked log-probs along -g), dp/dt = p d log p/dt.
    """
    params = stack.params
    names = stack.names
    logp = stack.log_probs(params)
    lp = logp.detach().cpu().numpy().copy()
    refs = np.asarray(log_refs, dtype=float)
    g = torch.as_tensor(loss.grad(lp - refs, refs) / lp.shape[1], dtype=DTYPE, device=stack.device)
    grads = torch.autograd.grad(logp, [params[k] for k in names], g)
    primal = {k: params[k].detach() for k in names}
    tangent = {k: -gr.detach() for k, gr in zip(names, grads, strict=True)}
    with torch.no_grad():
        logp0, dlogp = torch.func.jvp(lambda theta: stack.log_probs(theta), (primal,), (tangent,))
    gnorm = sum(torch.sum(gr**2, dim=tuple(range(1, gr.ndim))) for gr in grads)
    field = (torch.exp(logp0) * dlogp).cpu().numpy()
    return lp, field, torch.sqrt(torch.as_tensor(gnorm)).cpu().numpy().reshape(-1)


# -- the preference stage, batched -----------------------------------------------------------------


def _grad_norms(stack: Stack) -> np.ndarray:
    """|grad L| of every member over the trainable parameters (E,)."""
    return torch.sqrt(torch.sum(stack.flat.grad**2, dim=1)).cpu().numpy()


class _Members:
    """The record of E trainings in progress: what :func:`train_pairs_ensemble` returns per member."""

    def __init__(self, n_members: int, shape: tuple[int, int], stop: StopRule, lr: float) -> None:
        self.stop, self.lr = stop, lr
        self.last = [None] * n_members
        self.logp0 = np.full((n_members, *shape), math.nan)
        self.loss0 = np.full((n_members, shape[0]), math.nan)
        self.track: PathTrack | None = None
        self.path: list[tuple[np.ndarray, np.ndarray]] = []  # (members, log pi) at every step
        self.logp1: dict[int, np.ndarray] = {}  # log pi after the first step, of the members that took it
        self.records: dict[int, PairRecord] = {}

    def visit(self, k: int, ids: np.ndarray, logp, h, losses, keep_path: bool) -> None:
        """Take point k of the members ``ids`` (still training, finite) into their records."""
        p = np.exp(logp)
        if k == 0:
            self.track = PathTrack(np.full((len(self.last), *p.shape[1:]), 0.5), self.stop)
            fresh = PathTrack(p, self.stop)
            for name in ("p_w0", "p_w_min", "t_p_w_min", "max_mass", "t_w", "t_l", "t_sliding"):
                getattr(self.track, name)[ids] = getattr(fresh, name)
            self.logp0[ids], self.loss0[ids] = logp, losses
        else:
            self.track.visit(k * self.lr, p, ids)
            self.track.cross(k * self.lr, p, ids)
        for j, i in enumerate(ids):
            self.last[i] = (logp[j], h[j], losses[j])
            if k == 1:
                self.logp1[i] = logp[j]
        if keep_path:
            self.path.append((ids, logp))

    def finish(self, i: int, status: str, k: int, message: str = "") -> None:
        """Member i stopped at step k (its last point) with the dataset's ``status``."""
        if self.last[i] is None:
            raise FloatingPointError("the network's start (the SFT checkpoint) has non-finite log-probabilities")
        logp, h, losses = self.last[i]
        pair_status = np.where(np.exp(logp[:, 1]) <= self.stop.p2_floor, "converged", status).astype(object)
        path = None
        if self.path:
            path = np.array([lp[np.flatnonzero(ids == i)[0]] for ids, lp in self.path[: k + 1]])
        self.records[i] = PairRecord(
            pair_status,
            status,
            k,
            k * self.lr,
            message,
            self.logp0[i],
            logp,
            h,
            self.loss0[i],
            losses,
            self.track.take(np.asarray(i)),
            path,
            self.logp1.get(i),
        )


def _statuses(stop: StopRule, p, h, losses, gnorm, timeout: bool) -> np.ndarray:
    """Each member's dataset stop (A,) at its evaluated point, as train_pairs' ``_stop_status`` decides it."""
    met = {"converged": np.all(p[..., 1] <= stop.p2_floor, axis=-1), "timeout": timeout}
    met |= stop.functions_met(np.mean(losses, axis=-1), np.min(h[..., 0] - h[..., 1], axis=-1), gnorm)
    return stop.status(met)


def _loss_grads(loss: Loss, h, log_ref, batches: list[_Batches]) -> np.ndarray:
    """dL/dh of each member's mean loss over the rows it draws this step (A, n, 2): train_pairs' bridge."""
    if batches[0].size == batches[0].n:
        return loss.grad(h, log_ref) / h.shape[1]
    g = np.zeros_like(h)
    for j, b in enumerate(batches):
        rows = b.next().numpy()
        g[j, rows] = loss.grad(h[j, rows], log_ref[j, rows]) / len(rows)
    return g


def train_pairs_ensemble(
    stack: Stack,
    loss: Loss,
    optimiser: Optimiser,
    stop: StopRule,
    log_refs: np.ndarray,
    *,
    batch_size: int = 0,
    batch_seeds: list[int] | None = None,
    path: bool = False,
    finals: dict | None = None,
) -> list[PairRecord]:
    """``train_pairs`` of every member of ``stack`` at once; each member's :class:`PairRecord`, in order.

    ``log_refs`` (E, n, 2) are the members' references; ``batch_seeds`` their mini-batch seeds.
    The stack is consumed (members leave it as they stop); ``finals``, if given, receives each
    member's trainable parameters (a row of :attr:`Stack.flat`) where it stopped, by member index:
    what ``train_pairs`` leaves in its module (for a diverged member, those of the non-finite step).
    """
    n_members = len(stack)
    log_refs = np.asarray(log_refs, dtype=float)
    n = log_refs.shape[1]
    ids = np.arange(n_members)  # the members still training, in stack order
    batches = [_Batches(n, batch_size, s) for s in (batch_seeds or [0] * n_members)]
    full = batches[0].size == n
    opt = optimiser.torch(stack.trainable())
    k_max, lr = step_limit(stop, optimiser.lr), optimiser.lr
    rec = _Members(n_members, (n, 2), stop, lr)
    for k in range(k_max + 1):
        opt.zero_grad()
        logp_t = stack.log_probs()
        logp = logp_t.detach().cpu().numpy().copy()
        ref = log_refs[ids]
        h = logp - ref
        with np.errstate(all="ignore"):
            losses = np.asarray(loss.value(h, ref), dtype=float)
        finite = np.all(np.isfinite(logp), axis=(1, 2)) & np.all(np.isfinite(losses), axis=1)
        for j in np.flatnonzero(~finite):
            rec.finish(ids[j], "diverged", k - 1, f"step {k}: the loss or log-probabilities are not finite")
        with np.errstate(all="ignore"):
            g = _loss_grads(loss, np.where(finite[:, None, None], h, 0.0), ref, [batches[i] for i in ids])
        g[~finite] = 0.0
        logp_t.backward(torch.as_tensor(g, dtype=DTYPE, device=stack.device))
        gnorm = _grad_norms(stack) if full else None
        if gnorm is not None:
            for j in np.flatnonzero(finite & ~np.isfinite(gnorm)):
                rec.finish(ids[j], "diverged", k - 1, f"step {k}: the gradient is not finite")
            finite &= np.isfinite(gnorm)
        live = np.flatnonzero(finite)
        rec.visit(k, ids[live], logp[live], h[live], losses[live], path)
        status = _statuses(
            stop, np.exp(logp[live]), h[live], losses[live], None if gnorm is None else gnorm[live], k == k_max
        )
        for j, s in zip(live, status, strict=True):
            if s:
                rec.finish(ids[j], str(s), k)
        going = np.flatnonzero([i not in rec.records for i in ids])
        if finals is not None:
            for j in np.flatnonzero([i in rec.records for i in ids]):
                finals[int(ids[j])] = stack.flat.detach()[j].cpu().clone()
        if going.size == 0:
            break
        if going.size < len(ids):
            opt = stack.keep(going, opt, optimiser)
            ids = ids[going]
        opt.step()
    return [rec.records[i] for i in range(n_members)]


def train_ensemble(
    nets: list[torch.nn.Module], batches: list, loss: Loss, optimiser: Optimiser, steps: int, log_refs: np.ndarray
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Train E members ``steps`` full-batch steps with no stop but the step count; the path of log pi
    (steps + 1, E, n, 2), row k before step k + 1, and the trained stacked parameters."""
    stack = Stack(nets, batches)
    stop = StopRule(max_steps=steps, t_max=1e300, p2_floor=1e-300, stationary_tol=0.0)
    recs = train_pairs_ensemble(stack, loss, optimiser, stop, log_refs, path=True)
    return np.stack([r.path_logp for r in recs], axis=1), stack.params


__all__ = ["Stack", "initial_fields", "sft_ensemble", "train_ensemble", "train_pairs_ensemble"]
