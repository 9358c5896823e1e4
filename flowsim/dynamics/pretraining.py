"""The pretraining stage (torch): the network learns the generated language's next-token loss before SFT.

:func:`pretrain` draws ``pretrain_tokens`` tokens of text from the spec's language
(:mod:`flowsim.model.network.language`, sentences of prompt_len + response_len words, seeded by
``[data_seed, 2]``) and runs full-batch Adam at ``pretrain_lr`` for ``pretrain_steps`` steps on the
mean next-token loss, -1/(n (L - 1)) sum_i sum_{t>=1} log pi(w_t | w_<t) (nats per token): the
first word of a sentence has no context and is not scored, as a prompt's are not.  This is where
the hidden-state similarity between words of one class comes from before SFT and DPO.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from flowsim.model.network.archs import as_batch
from flowsim.model.network.data import PairData
from flowsim.model.network.language import corpus
from flowsim.model.network.module import trainable


def text_batch(spec, text: np.ndarray, net):
    """Sentences (n, L) as a batch of the network's type: the first word the prompt, the rest the response.

    A pair batch scores two responses per prompt; both are the sentence's rest, so a step costs two
    forwards of it -- the price of reusing the stages' one ``log_probs`` for either architecture.
    """
    return as_batch(spec, PairData(text[:, :1], text[:, 1:], text[:, 1:]), net)


def next_token_loss(net, batch) -> torch.Tensor:
    """Mean next-token loss (nats per scored token) of a :func:`text_batch`."""
    n_scored = batch.data.chosen.size
    return -torch.sum(batch.log_probs(net)[:, 0]) / n_scored


def pretrain(net, spec) -> tuple[float, float]:
    """Pretrain ``net`` in place as the spec says; return the next-token loss (before, after), nan if none."""
    if not spec.pretrain_steps:
        return math.nan, math.nan
    batch = text_batch(spec, corpus(spec, spec.pretrain_tokens, [spec.data_seed, 2]), net)
    opt = torch.optim.Adam(trainable(net), lr=spec.pretrain_lr)
    with torch.no_grad():
        before = float(next_token_loss(net, batch))
    for _ in range(spec.pretrain_steps):
        opt.zero_grad()
        next_token_loss(net, batch).backward()
        opt.step()
    with torch.no_grad():
        return before, float(next_token_loss(net, batch))


__all__ = ["next_token_loss", "pretrain", "text_batch"]
