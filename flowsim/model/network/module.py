"""The causal LM as a torch module: an MLP over a context window, float64.

log pi(y|x) = sum_t log softmax(f(c_t))[y_t]: the sum of the response tokens' log-probabilities,
exactly as DPO training computes a sequence's log-probability (TRL's ``concatenated_forward``
sums the per-token log-probs of the completion).  See
:mod:`flowsim.model.parameterisations.network` for the architecture and its exact special cases.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from flowsim.model.network.data import PairData, contexts
from flowsim.model.network.stacked import mlp_logits

DTYPE = torch.float64
_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


class CausalMLP(nn.Module):
    """f: context tokens (..., window) -> next-token logits (..., vocab); see the module docstring."""

    #: E members' logits from stacked parameters in one pass (the ensemble's forward).
    stacked_forward = staticmethod(mlp_logits)

    def __init__(self, spec) -> None:
        super().__init__()
        self.vocab, self.window = spec.vocab, spec.window
        self.pad = spec.vocab  # the input alphabet is the vocab plus a pad symbol
        n_in = spec.vocab + 1
        torch.manual_seed(spec.init_seed)
        if spec.embedding == "one-hot":
            self.embed = nn.Embedding.from_pretrained(torch.eye(n_in, dtype=DTYPE), freeze=True)
            emb = n_in
        else:
            self.embed = nn.Embedding(n_in, spec.width, dtype=DTYPE)
            emb = spec.width
        hidden: list[nn.Module] = []
        width_in = spec.window * emb
        for _ in range(spec.layers):
            hidden += [nn.Linear(width_in, spec.width, dtype=DTYPE), _ACTIVATIONS[spec.activation]()]
            width_in = spec.width
        self.hidden = nn.Sequential(*hidden)
        self.readout = nn.Linear(width_in, spec.vocab, bias=spec.readout_bias, dtype=DTYPE)
        self._freeze(spec.train)

    def _freeze(self, train: str) -> None:
        """Leave only the parts ``train`` names trainable ("all", "embedding" or "readout")."""
        if train == "embedding":
            self.hidden.requires_grad_(False)
            self.readout.requires_grad_(False)
        elif train == "readout":
            self.embed.requires_grad_(False)
            self.hidden.requires_grad_(False)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """Next-token logits for contexts of shape (..., window): shape (..., vocab)."""
        e = self.embed(ctx)  # (..., window, emb)
        return self.readout(self.hidden(e.flatten(-2)))


class PairBatch:
    """A dataset's contexts and targets as tensors, for sequence log-probabilities of y_w and y_l."""

    def __init__(self, data: PairData, window: int, pad: int) -> None:
        self.data = data
        ctx_w = contexts(data.prompts, data.chosen, window, pad)
        ctx_l = contexts(data.prompts, data.rejected, window, pad)
        # (N, 2, T, window) and (N, 2, T): y_w first, y_l second
        self.ctx = torch.as_tensor(np.stack([ctx_w, ctx_l], axis=1))
        self.tokens = torch.as_tensor(np.stack([data.chosen, data.rejected], axis=1))

    def log_probs(self, net, rows: torch.Tensor | None = None) -> torch.Tensor:
        """log pi(y_w|x), log pi(y_l|x) of the pairs ``rows`` (all by default): shape (n, 2).

        ``net`` is the :class:`CausalMLP` or any function of contexts to logits (a functional call of it).
        """
        ctx, tok = (self.ctx, self.tokens) if rows is None else (self.ctx[rows], self.tokens[rows])
        return summed_log_probs(net(ctx), tok)  # logits (n, 2, T, vocab)


def summed_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """sum_t log softmax(logits_t)[token_t]: logits (..., T, vocab), tokens (..., T) -> (...).

    As the token's logit minus logsumexp, not a log_softmax then a gather: the same number to
    rounding, without writing (and differentiating) every token's log-probability -- a third less
    time for the stage's forward and backward of it at vocab 12.
    """
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return torch.sum(picked - torch.logsumexp(logits, dim=-1), dim=-1)


def trainable(net: nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the stages update."""
    return [p for p in net.parameters() if p.requires_grad]


__all__ = ["DTYPE", "CausalMLP", "PairBatch", "summed_log_probs", "trainable"]
