r"""Training a network (torch): the SFT stage, then the preference stage over mini-batches of pairs.

:func:`sft` fine-tunes on the dataset's responses (full-batch Adam, ``sft_steps`` steps at
``sft_lr``): "chosen" minimises the mean negative log-likelihood of y_w (plus ``sft_mix`` times
that of y_l; a fraction ``sft_noise`` of the pairs, drawn from ``data_seed``, have their labels
flipped), "target" the mean squared error of (log pi(y_w), log pi(y_l)) to the logs of a target
(p_w0, p_l0) given per pair, and "none" leaves the initialisation.  Its checkpoint is the start
of :func:`train_pairs`.

:func:`train_pairs` runs a flowsim optimiser as its torch.optim twin (its own ``torch`` method:
``gd`` = SGD, ``momentum`` = SGD with momentum and dampening 0, ``adam`` = Adam, ``adamw`` =
AdamW, with flowsim's hyperparameters, whose definitions are torch's) on the mean loss of a
mini-batch of pairs.  Step k stands for the flow's time t = lr k, as for the other models, and the
run times out at :func:`~flowsim.dynamics.optimisers.step_limit`.  Before every step all pairs
are evaluated at the current parameters (k = 0 is the SFT checkpoint) and the dataset stops, in
the flow's order of precedence, when

* every pair's p_l <= ``p2_floor`` (``converged``);
* the mean loss over all pairs <= ``loss_target`` (``reached_loss``);
* every pair's margin h_w - h_l >= ``margin_target`` (``reached_margin``);
* |grad L| over the trainable parameters <= ``stationary_tol`` (``stationary``; full batches only,
  where the step's gradient is the dataset's);

or ``timeout``; a non-finite loss or parameter ends it as ``diverged`` at the last finite point.

:func:`initial_field` is the field at the start, what the claims read from the rows where a
policy model computes it: d(p_w, p_l)/dt of every pair at t = 0 under the *gradient flow* of the
full-batch mean loss, d theta/dt = -grad L, whatever optimiser and batch size the training then
uses (so for Adam or mini-batches it is the flow's velocity, not the first step's).
Per pair it records what a flow records (crossing times t_w, t_l; p_w_min and when; displaced;
max_mass; finals): :class:`PairRecord`.  A pair's status is the dataset's, except that a pair
whose p_l <= p2_floor at the stop is ``converged``: with one pair the two coincide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from flowsim.dynamics.optimisers import Optimiser, step_limit
from flowsim.dynamics.optimisers.adam import Adam
from flowsim.dynamics.record import PathTrack, StopRule, finish_rows
from flowsim.model.losses.base import Loss
from flowsim.model.network.bridge import batch_loss, pair_losses
from flowsim.model.network.module import DTYPE, CausalMLP, PairBatch, trainable

# -- the SFT stage ---------------------------------------------------------------------------------


def sft_weights(spec, n_pairs: int) -> np.ndarray:
    """Per-pair NLL weights (n, 2) on (y_w, y_l) of "chosen" SFT: (1, sft_mix), flipped for noisy pairs."""
    w = np.tile([1.0, spec.sft_mix], (n_pairs, 1))
    n_noisy = round(spec.sft_noise * n_pairs)
    if n_noisy:
        noisy = np.random.default_rng([spec.data_seed, 1]).choice(n_pairs, size=n_noisy, replace=False)
        w[noisy] = w[noisy, ::-1]
    return w


def sft(net: CausalMLP, batch: PairBatch, spec, target: np.ndarray | None = None) -> float:
    """Fine-tune ``net`` in place as ``spec.sft`` says; return the SFT objective at the end.

    ``target`` (n, 2): the (p_w0, p_l0) each pair is driven towards when ``spec.sft == "target"``.
    """
    if spec.sft == "none" or spec.sft_steps == 0:
        return math.nan
    if spec.sft == "target":
        if target is None:
            raise ValueError('sft = "target" needs a target (p_w0, p_l0) per pair')
        goal = torch.as_tensor(np.log(np.broadcast_to(target, (batch.data.n_pairs, 2))), dtype=DTYPE)

        def objective():
            return torch.mean((batch.log_probs(net) - goal) ** 2)
    else:
        weights = torch.as_tensor(sft_weights(spec, batch.data.n_pairs), dtype=DTYPE)

        def objective():
            return -torch.mean(torch.sum(weights * batch.log_probs(net), dim=-1))

    opt = Adam(lr=spec.sft_lr).torch(trainable(net))
    for _ in range(spec.sft_steps):
        opt.zero_grad()
        value = objective()
        value.backward()
        opt.step()
    with torch.no_grad():
        return float(objective())


# -- the field at the start -----------------------------------------------------------------------


def initial_field(net: CausalMLP, batch: PairBatch, loss: Loss, log_ref: np.ndarray) -> tuple[np.ndarray, float]:
    r"""(dp/dt (n, 2) of (p_w, p_l) per pair, |grad_theta L|) at the network's current parameters.

    The gradient flow of the full-batch mean loss L = mean_i L(h_i): d log p/dt = -J J^T grad_h L
    with J = d(log p_w, log p_l)/d theta over the trainable parameters, computed as
    g = J^T grad_h L (one backward pass) and J g (one forward-mode pass, ``torch.func.jvp``);
    dp/dt = p * d log p/dt.  ``tests/unit/test_network_field.py`` checks it against a tiny GD step.
    """
    names = [k for k, v in net.named_parameters() if v.requires_grad]
    params = dict(net.named_parameters())
    log_ref_t = torch.as_tensor(log_ref, dtype=DTYPE)
    logp = batch.log_probs(net)
    value = batch_loss(loss, logp - log_ref_t, log_ref_t)
    grads = torch.autograd.grad(value, [params[k] for k in names])
    primal = {k: params[k].detach() for k in names}
    tangent = {k: -g.detach() for k, g in zip(names, grads, strict=True)}

    def log_probs(theta: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch.log_probs(lambda ctx: torch.func.functional_call(net, theta, (ctx,)))

    with torch.no_grad():
        logp0, dlogp = torch.func.jvp(log_probs, (primal,), (tangent,))
    gnorm = float(torch.sqrt(sum(torch.sum(g**2) for g in grads)))
    return (torch.exp(logp0) * dlogp).numpy().copy(), gnorm


# -- the preference stage --------------------------------------------------------------------------


@dataclass
class PairRecord:
    """The record of every pair of one training (arrays of shape (n,)), and the dataset's stop."""

    status: np.ndarray
    train_status: str
    steps: int
    t_stop: float
    message: str
    logp0: np.ndarray  # (n, 2): log pi_sft(y_w), log pi_sft(y_l)
    logp: np.ndarray  # (n, 2) at the stop
    h: np.ndarray  # (n, 2) log-ratios at the stop
    loss_0: np.ndarray
    loss_final: np.ndarray
    track: PathTrack  # the path of every pair: crossings, p_w_min, max_mass
    path_logp: np.ndarray | None = None  # (steps + 1, n, 2) on request
    logp1: np.ndarray | None = None  # (n, 2) after the first step (None: none taken)

    def columns(self) -> dict[str, np.ndarray]:
        """The path's columns of every pair (:func:`~flowsim.dynamics.record.finish_rows`).

        The rest is 1 - p_w - p_l: every other sequence of the vocabulary, none modelled one by one.
        """
        p = np.exp(self.logp)
        return finish_rows(p, self.h, self.t_stop, self.track, rest=1.0 - p[:, 0] - p[:, 1])

    @property
    def displaced(self) -> np.ndarray:
        return self.columns()["displaced"]


class _Batches:
    """Mini-batches of pair indices: the whole dataset, or cycling through seeded permutations."""

    def __init__(self, n: int, size: int, seed: int) -> None:
        self.n, self.size = n, size or n
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = np.arange(n), n

    def next(self) -> torch.Tensor | None:
        if self.size == self.n:
            return None
        if self.pos + self.size > self.n:
            self.order, self.pos = self.rng.permutation(self.n), 0
        rows = self.order[self.pos : self.pos + self.size]
        self.pos += self.size
        return torch.as_tensor(rows)


def _stop_status(
    stop: StopRule, p: np.ndarray, h: np.ndarray, losses: np.ndarray, gnorm: float | None, timeout: bool
) -> str:
    """The dataset's stop at an evaluated point (every pair converged, the mean loss, every pair's margin,
    the full-batch gradient), in the stop rule's precedence, or ''."""
    met = {"converged": np.all(p[:, 1] <= stop.p2_floor), "timeout": timeout}
    met |= stop.functions_met(np.mean(losses), np.min(h[:, 0] - h[:, 1]), gnorm)
    return str(stop.status(met)[()])


def train_pairs(
    net: CausalMLP,
    batch: PairBatch,
    loss: Loss,
    optimiser: Optimiser,
    stop: StopRule,
    log_ref: np.ndarray,
    *,
    batch_size: int = 0,
    batch_seed: int = 0,
    path: bool = False,
) -> PairRecord:
    """Train ``net`` in place on ``loss`` of the pairs' log-ratios; see the module docstring.

    ``log_ref`` (n, 2) is log pi_ref(y_w), log pi_ref(y_l) per pair (the SFT checkpoint's for the
    standard reference, 0 for none).  ``path`` keeps log pi(y_w), log pi(y_l) at every step.
    """
    n = batch.data.n_pairs
    log_ref_t = torch.as_tensor(log_ref, dtype=DTYPE)
    params = trainable(net)
    opt = optimiser.torch(params)
    batches, track = _Batches(n, batch_size, batch_seed), None
    k_max, lr = step_limit(stop, optimiser.lr), optimiser.lr
    full = batches.size == n
    kept, last, status, message, k, logp1 = [], None, "", "", 0, None
    for k in range(k_max + 1):
        opt.zero_grad()
        logp_t = batch.log_probs(net)
        h_t = logp_t - log_ref_t
        logp, h = logp_t.detach().numpy().copy(), h_t.detach().numpy().copy()
        losses = pair_losses(loss, h_t, log_ref_t)
        if not (np.all(np.isfinite(logp)) and np.all(np.isfinite(losses))):
            status, message = "diverged", f"step {k}: the loss or log-probabilities are not finite"
            k -= 1
            break
        rows = batches.next()
        value = batch_loss(loss, h_t if rows is None else h_t[rows], log_ref_t if rows is None else log_ref_t[rows])
        value.backward()
        gnorm = float(torch.sqrt(sum(torch.sum(p.grad**2) for p in params if p.grad is not None))) if full else None
        if gnorm is not None and not math.isfinite(gnorm):
            status, message = "diverged", f"step {k}: the gradient is not finite"
            k -= 1
            break
        p = np.exp(logp)
        if track is None:
            track = PathTrack(p, stop)
        else:
            track.visit(k * lr, p)
            track.cross(k * lr, p)
        last = (logp, h, losses)
        if path:
            kept.append(logp)
        if k == 0:
            logp0, loss0 = logp, losses
        elif k == 1:
            logp1 = logp
        status = _stop_status(stop, p, h, losses, gnorm, k == k_max)
        if status:
            break
        opt.step()
    if last is None:  # the SFT checkpoint itself is not finite
        raise FloatingPointError("the network's start (the SFT checkpoint) has non-finite log-probabilities")
    logp, h, losses = last
    pair_status = np.where(np.exp(logp[:, 1]) <= stop.p2_floor, "converged", status).astype(object)
    kept = np.array(kept) if path else None
    return PairRecord(pair_status, status, k, k * lr, message, logp0, logp, h, loss0, losses, track, kept, logp1)


__all__ = ["PairRecord", "initial_field", "sft", "sft_weights", "train_pairs"]
