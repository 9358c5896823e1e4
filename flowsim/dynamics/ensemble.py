r"""Many trainings of one network shape at once (torch.func): the preference stage as one batched ensemble.

E networks (one architecture and size; any initialisations, e.g. seeds x SFT starts) and their E
datasets (one shape; any contents) train together: their parameters are stacked
(:func:`stack_members`, one leading axis of size E), log pi of every member's pairs is one
``vmap`` of ``functional_call`` over that axis, the loss's own ``grad`` (vectorised over (..., 2))
gives dL/dh per member, one backward pass fills every member's gradient, and one torch.optim
optimiser steps the stacked tensors.  SGD, momentum, Adam and AdamW are elementwise with a step
count shared by all members, so stepping the stack is stepping each member: the rows equal
:func:`flowsim.dynamics.training.train_pairs`' one at a time (tests/unit/test_ensemble.py, to
1e-10).  Trainings run a fixed number of steps (``path`` at every step); the per-dataset stop rules
of ``train_pairs`` are applied to the path afterwards by the caller, not during the run.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from flowsim.dynamics.optimisers import Optimiser
from flowsim.model.losses.base import Loss
from flowsim.model.network.module import DTYPE

#: The tensor attributes of each batch type that hold a dataset (stacked over the members).
BATCH_TENSORS = {"PairBatch": ("ctx", "tokens"), "SequenceBatch": ("ids",)}


def stack_members(nets: list[torch.nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The members' parameters and buffers stacked on a new leading axis (E, ...), as leaf tensors.

    A parameter is trainable in the stack when it is in the first member (all members share the
    architecture, and so which parts ``train`` names).
    """
    trainable = {k for k, p in nets[0].named_parameters() if p.requires_grad}
    params = {
        k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets]).requires_grad_(k in trainable)
        for k, _ in nets[0].named_parameters()
    }
    buffers = {k: torch.stack([dict(n.named_buffers())[k] for n in nets]) for k, _ in nets[0].named_buffers()}
    return params, buffers


def stack_batches(batches: list) -> dict[str, torch.Tensor]:
    """The members' dataset tensors stacked on a new leading axis (E, ...)."""
    names = BATCH_TENSORS[type(batches[0]).__name__]
    return {k: torch.stack([getattr(b, k) for b in batches]) for k in names}


def ensemble_log_probs(net, template, params, buffers, data) -> torch.Tensor:
    """log pi(y_w|x), log pi(y_l|x) of every member's pairs, shape (E, n, 2): one vmap over the members.

    ``net`` is any member (its structure is used, not its values), ``template`` any member's batch.
    """

    def member(p, b, tensors):
        view = copy.copy(template)
        view.__dict__.update(tensors)
        return view.log_probs(lambda x: torch.func.functional_call(net, (p, b), (x,)))

    return torch.func.vmap(member)(params, buffers, data)


def train_ensemble(
    nets: list[torch.nn.Module], batches: list, loss: Loss, optimiser: Optimiser, steps: int, log_refs: np.ndarray
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Train E members ``steps`` full-batch steps of the mean loss of their pairs' log-ratios, at once.

    ``log_refs`` (E, n, 2) are the members' reference log-probs.  Returns the path of log pi
    (steps + 1, E, n, 2) -- row k before step k + 1, as ``train_pairs(..., path=True)`` keeps it --
    and the trained stacked parameters.  The networks themselves are not changed.
    """
    params, buffers = stack_members(nets)
    data = stack_batches(batches)
    opt = optimiser.torch([p for p in params.values() if p.requires_grad])
    log_ref = np.asarray(log_refs, dtype=float)
    n_pairs = log_ref.shape[1]
    path = []
    for k in range(steps + 1):
        opt.zero_grad()
        logp = ensemble_log_probs(nets[0], batches[0], params, buffers, data)
        lp = logp.detach().numpy().copy()
        path.append(lp)
        if k == steps:
            break
        # the loss's own dL/dh of each member's mean loss (train_pairs' bridge, vectorised over members)
        g = torch.as_tensor(loss.grad(lp - log_ref, log_ref) / n_pairs, dtype=DTYPE)
        logp.backward(g)
        opt.step()
    return np.array(path), params


__all__ = ["ensemble_log_probs", "stack_batches", "stack_members", "train_ensemble"]
