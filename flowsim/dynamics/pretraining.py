"""The pretraining stage (torch): the network learns the generated language's next-token loss before SFT.

:func:`pretrain` draws ``pretrain_tokens`` tokens of text from the spec's language
(:mod:`flowsim.model.network.language`, sentences of prompt_len + response_len words, seeded by
``[data_seed, 2]``) and runs full-batch Adam at ``pretrain_lr`` for ``pretrain_steps`` steps on the
mean next-token loss, -1/(n (L - 1)) sum_i sum_{t>=1} log pi(w_t | w_<t) (nats per token): the
first word of a sentence has no context and is not scored, as a prompt's are not.  This is where
the hidden-state similarity between words of one class comes from before SFT and DPO.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import torch

from flowsim.dynamics.optimisers.adam import Adam
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


#: Pretrainings this process has done, by :func:`_key` of everything they read: the trainings of one
#: combination (the loop's one at a time; a seed's one-pair and 8-pair settings) share one.
_DONE: OrderedDict[str, tuple[dict[str, torch.Tensor], tuple[float, float]]] = OrderedDict()
#: How many pretrained states are kept (a few MB each at most at these sizes).
KEEP = 16


def _key(net, spec, text: np.ndarray) -> str:
    """A digest of all a pretraining depends on: the module (its structure, as its repr shows it, and
    its initial parameters and buffers), the text, the batch layout and the optimiser's settings."""
    h = hashlib.sha256(repr(net).encode())
    h.update(repr((spec.arch, spec.window, spec.pretrain_steps, spec.pretrain_lr, text.shape)).encode())
    h.update(np.ascontiguousarray(text).tobytes())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def pretrain(net, spec) -> tuple[float, float]:
    """Pretrain ``net`` in place as the spec says; return the next-token loss (before, after), nan if none.

    A pretraining this process has already done on the same module, text and settings is not done
    again: its parameters are loaded (bit for bit what it would compute, tests/unit/test_language.py).
    """
    if not spec.pretrain_steps:
        return math.nan, math.nan
    text = corpus(spec, spec.pretrain_tokens, [spec.data_seed, 2])
    key = _key(net, spec, text)
    if key in _DONE:
        state, losses = _DONE[key]
        _DONE.move_to_end(key)
        net.load_state_dict(state)
        return losses
    losses = _pretrain(net, text_batch(spec, text, net), spec)
    _DONE[key] = ({k: v.detach().clone() for k, v in net.state_dict().items()}, losses)
    if len(_DONE) > KEEP:
        _DONE.popitem(last=False)
    return losses


def _pretrain(net, batch, spec) -> tuple[float, float]:
    """Full-batch Adam on the next-token loss of ``batch``: the loss before and after."""
    opt = Adam(lr=spec.pretrain_lr).torch(trainable(net))
    with torch.no_grad():
        before = float(next_token_loss(net, batch))
    for _ in range(spec.pretrain_steps):
        opt.zero_grad()
        next_token_loss(net, batch).backward()
        opt.step()
    with torch.no_grad():
        return before, float(next_token_loss(net, batch))


__all__ = ["next_token_loss", "pretrain", "text_batch"]
