"""Any flowsim loss on a batch of sequence log-ratios, differentiable in torch: one definition per loss.

The loss of a batch is the mean over its pairs of L(h_w, h_l; log_ref) (TRL averages its
per-pair losses over the batch), with h = log pi_theta(y|x) - log pi_ref(y|x) the sequence
log-ratios.  :class:`LossOfRatios` evaluates L with the loss's own ``value`` and its backward
pass returns the loss's own ``grad`` (dL/dh), so the chain rule through the network
(dL/dtheta = sum_i dL/dh_i dh_i/dtheta) uses the very formulas the flows use, for every loss of
:data:`flowsim.model.losses.LOSSES`.
"""

from __future__ import annotations

import numpy as np
import torch

from flowsim.model.losses.base import Loss


class LossOfRatios(torch.autograd.Function):
    """mean_i L(h_i; log_ref_i) with dL/dh from ``loss.grad`` (h, log_ref: (n, 2) float64)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, log_ref: torch.Tensor, loss: Loss) -> torch.Tensor:
        hn, lr = h.detach().cpu().numpy(), log_ref.detach().cpu().numpy()
        ctx.save_for_backward(torch.as_tensor(loss.grad(hn, lr) / hn.shape[0], dtype=h.dtype))
        return torch.as_tensor(np.mean(loss.value(hn, lr)), dtype=h.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (g,) = ctx.saved_tensors
        return grad_out * g, None, None


def batch_loss(loss: Loss, h: torch.Tensor, log_ref: torch.Tensor) -> torch.Tensor:
    """The batch's mean loss at log-ratios h (n, 2), differentiable in h."""
    return LossOfRatios.apply(h, log_ref, loss)


def pair_losses(loss: Loss, h: torch.Tensor, log_ref: torch.Tensor) -> np.ndarray:
    """Each pair's loss (n,), as numbers (no gradient)."""
    return np.asarray(loss.value(h.detach().cpu().numpy(), log_ref.detach().cpu().numpy()), dtype=float)


__all__ = ["LossOfRatios", "batch_loss", "pair_losses"]
