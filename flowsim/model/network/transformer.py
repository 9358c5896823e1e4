"""The network as a causal transformer: ``transformers``' GPT-2 built from a config, float64.

The same interface as :mod:`.module`'s MLP, so every stage trains it unchanged: the module maps
token ids (..., L) to next-token logits (..., L, vocab), :class:`SequenceBatch` has
:meth:`~SequenceBatch.log_probs` (log pi(y_w|x), log pi(y_l|x) per pair, the sums of the response
tokens' log-probabilities, as TRL's ``DPOTrainer`` computes them), and :func:`.module.trainable`
picks the parameters the stages update.  Nothing is downloaded: the model is initialised from a
:class:`transformers.GPT2Config` under ``torch.manual_seed(init_seed)``.  Why GPT-2 and why eager
attention: docs/explanation/transformer.md.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from flowsim.model.network.data import PairData
from flowsim.model.network.module import DTYPE, summed_log_probs
from flowsim.model.network.stacked import gpt2_logits


def gpt2_config(spec):
    """The :class:`transformers.GPT2Config` of a ``Network`` spec with ``arch = "transformer"``.

    Dropout is 0 (as TRL sets it); attention is "eager" (sdpa has no CPU vmap rule); no KV cache.
    """
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=spec.vocab,
        n_positions=spec.context,
        n_embd=spec.width,
        n_layer=spec.layers,
        n_head=spec.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=spec.vocab - 1,
        eos_token_id=spec.vocab - 1,
        pad_token_id=None,
        attn_implementation="eager",
    )


class CausalTransformer(nn.Module):
    """f: token ids (..., L) -> next-token logits (..., L, vocab); ``lm`` is the GPT2LMHeadModel."""

    #: E members' logits from stacked parameters in one pass (the ensemble's forward): a GPT-2
    #: written over batched parameter tensors, equal to ``lm`` member by member.
    stacked_forward = staticmethod(gpt2_logits)

    def __init__(self, spec) -> None:
        super().__init__()
        from transformers import GPT2LMHeadModel

        self.vocab = spec.vocab
        self.pad = spec.vocab - 1  # GPT-2's convention: BOS = EOS = the last token; nothing is padded here
        torch.manual_seed(spec.init_seed)
        self.lm = GPT2LMHeadModel(gpt2_config(spec)).to(DTYPE)
        self._freeze(spec.train)

    def _freeze(self, train: str) -> None:
        """Leave only the parts ``train`` names trainable ("all", "embedding" = wte + wpe, "readout" = head)."""
        if train == "all":
            return
        self.lm.requires_grad_(False)
        if train == "embedding":
            self.lm.transformer.wte.requires_grad_(True)
            self.lm.transformer.wpe.requires_grad_(True)
        else:
            self.lm.lm_head.requires_grad_(True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits of token ids (..., L): shape (..., L, vocab)."""
        flat = ids.reshape(-1, ids.shape[-1])
        return self.lm(input_ids=flat).logits.reshape(*ids.shape, -1)


class SequenceBatch:
    """A dataset's pairs as token sequences (x, y) for log pi(y_w|x), log pi(y_l|x); the MLP's PairBatch twin.

    Sequences are prompt + response with no padding (every pair has the same lengths); y_w and y_l
    of a pair are two rows of one forward, as TRL concatenates chosen and rejected.
    """

    def __init__(self, data: PairData) -> None:
        self.data = data
        self.prompt_len = data.prompts.shape[1]
        seq = [np.concatenate([data.prompts, y], axis=1) for y in (data.chosen, data.rejected)]
        self.ids = torch.as_tensor(np.stack(seq, axis=1))  # (N, 2, P + T): y_w first, y_l second

    def log_probs(self, net, rows: torch.Tensor | None = None) -> torch.Tensor:
        """log pi(y_w|x), log pi(y_l|x) of the pairs ``rows`` (all by default): shape (n, 2).

        ``net`` is the :class:`CausalTransformer` or any function of ids to logits (a functional call of it).
        Token s of the sequence is predicted by the logits at s - 1, so the response's tokens
        (s >= P) by positions P - 1 .. L - 2.
        """
        ids = self.ids if rows is None else self.ids[rows]
        p = self.prompt_len
        return summed_log_probs(net(ids)[..., p - 1 : -1, :], ids[..., p:])  # logits (n, 2, T, vocab)


__all__ = ["CausalTransformer", "SequenceBatch", "gpt2_config"]
