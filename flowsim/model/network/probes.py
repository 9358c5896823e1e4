r"""The per-pair predictors of :mod:`flowsim.model.probes` on the network (MLP and transformer), in torch.

:func:`start_probes` computes them from the SFT checkpoint, before the preference stage;
:func:`end_probes` adds what needs the end of it (``top_other_gain``, ``dlogpw_first``).

**Hidden states.**  The transformer's "last hidden state" is the LM head's input, the output of
GPT-2's final layer norm ``ln_f``: what ``transformers`` returns as ``hidden_states[-1]``
(``ches``, ``ches_ln``, ``hidden_ip``); the state before ``ln_f`` is read by a forward hook on it
(``ches_pre``, ``ches_ln_pre``).  The MLP's is its last hidden layer (the readout's input), the
same before and after (it has no final norm).  Token s of a sequence x + y is predicted by the
hidden state at position s - 1, so the response's |y| tokens by positions P - 1 .. P + |y| - 2
(P = |x|): those are summed (:func:`response_mask`; positions after the response, right padding,
are not).

**Razin et al.'s two scripts.**  Their repository (princeton-nlp/unintentional-unalignment) computes
CHES twice.  ``ches/ches.py`` (``compute_ches_scores``) zeroes the prompt's positions but its last,
then drops the sequence's *last* position (``[:, :-1]``, "usually the hidden embedding of the EOS
token"): it sums positions P - 1 .. L - 2, exactly the positions that predict the response's
tokens, and normalises by L - P = |y|; it assumes every sequence ends where its response ends
(no right padding).  ``compute_preference_similarity_per_example.py`` (which produced the scores
their filtering experiments used) sums ``hidden_states[-1][query_len - 1:]``, keeping the last
position (which predicts no response token) and normalising by |y| + 1.  flowsim follows
``ches/ches.py`` (the positions that predict the response's tokens, |y| of them) and masks right
padding.  The last-hidden-embedding baseline of the second script is the inner product of the two
sequences' hidden states at their final token (position P + |y| - 1): ``hidden_ip`` here.

**Gradients.**  g = grad_theta log pi(y|x) of every pair's y_w and y_l over the trainable
parameters, float64, in one ``torch.func.jacrev`` of the batch's log-probabilities (a vmap of
2N vector-Jacobian products), flattened; the first-order rates are
:func:`flowsim.model.probes.entanglement` of their Gram matrix.

**The most likely other response.**  Over all vocab^|y| responses of the pair's response length
(which is the distribution: log pi(y|x) sums |y| next-token log-probabilities, so those sum to 1)
when vocab^|y| <= :data:`EXACT_LIMIT`; otherwise the best of a beam search of width
:data:`BEAM` that is neither y_w nor y_l (an approximation of the argmax).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.func import functional_call, jacrev

from flowsim.model.losses.base import Loss
from flowsim.model.network.data import PairData, contexts
from flowsim.model.network.module import PairBatch
from flowsim.model.network.transformer import SequenceBatch
from flowsim.model.probes import ches_terms, entanglement, pair_text_columns

#: Responses are enumerated exactly when vocab^response_len is at most this; else a beam search.
EXACT_LIMIT = 5000
#: The beam search's width where the responses are not enumerated.
BEAM = 4
#: Rows of enumerated responses scored per forward pass (memory, not results).
CHUNK = 8192


def response_mask(prompt_len: int, response_len, length: int) -> np.ndarray:
    """Which positions of sequences x + y (right-padded to ``length``) predict a response token.

    Positions P - 1 .. P + |y| - 2, for responses of lengths ``response_len`` (...): shape (..., length).

    >>> response_mask(2, np.array([3, 1]), 6).astype(int).tolist()
    [[0, 1, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0]]
    """
    s = np.arange(length)
    n = np.asarray(response_len)[..., None]
    return (s >= prompt_len - 1) & (s <= prompt_len + n - 2)


def masked_ches(hidden: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CHES, length-normalised CHES) from hidden states (..., 2, L, d) of (y_w, y_l) and masks (..., 2, L).

    The masks say which positions are summed (:func:`response_mask`); their counts are |y_w|, |y_l|.
    """
    summed = np.sum(hidden * mask[..., None], axis=-2)  # (..., 2, d)
    lengths = mask.sum(axis=-1)
    return ches_terms(summed[..., 0, :], summed[..., 1, :], lengths[..., 0], lengths[..., 1])


def _mlp_hidden(net, batch: PairBatch):
    """(post, pre) hidden states (N, 2, T, d) at the positions predicting y's tokens; the final token's (N, 2, d)."""
    data = batch.data
    pad = np.zeros((data.n_pairs, 1), dtype=int)  # any token: the context ending at y's last token
    final = [
        contexts(data.prompts, np.hstack([y, pad]), net.window, net.pad)[:, -1] for y in (data.chosen, data.rejected)
    ]
    ctx = torch.cat([batch.ctx, torch.as_tensor(np.stack(final, axis=1))[:, :, None]], dim=2)
    h = net.hidden(net.embed(ctx).flatten(-2))  # (N, 2, T + 1, d): no final norm, pre = post
    return h[:, :, :-1], h[:, :, :-1], h[:, :, -1]


def _transformer_hidden(net, batch: SequenceBatch):
    """The same for the transformer: ln_f's output (``hidden_states[-1]``) and input, by a forward hook."""
    seen = {}
    hook = net.lm.transformer.ln_f.register_forward_hook(lambda mod, inp, out: seen.update(pre=inp[0], post=out))
    try:
        net(batch.ids)
    finally:
        hook.remove()
    shape = (*batch.ids.shape, -1)
    post, pre = seen["post"].reshape(shape), seen["pre"].reshape(shape)
    p = batch.prompt_len
    return post[:, :, p - 1 : -1], pre[:, :, p - 1 : -1], post[:, :, -1]


#: The batch type of each architecture -> its hidden states (:func:`_mlp_hidden`'s signature).
HIDDEN = {PairBatch: _mlp_hidden, SequenceBatch: _transformer_hidden}


def hidden_columns(net, batch) -> dict[str, np.ndarray]:
    """``ches``, ``ches_ln``, ``ches_pre``, ``ches_ln_pre``, ``hidden_ip`` of every pair (N,)."""
    with torch.no_grad():
        post, pre, final = (t.numpy() for t in HIDDEN[type(batch)](net, batch))
    mask = np.ones(post.shape[:-1], dtype=bool)  # every pair's responses fill their sequences
    ches, ches_ln = masked_ches(post, mask)
    ches_pre, ches_ln_pre = masked_ches(pre, mask)
    hidden_ip = np.sum(final[:, 0] * final[:, 1], axis=-1)
    return {"ches": ches, "ches_ln": ches_ln, "ches_pre": ches_pre, "ches_ln_pre": ches_ln_pre, "hidden_ip": hidden_ip}


def pair_gradients(net, batch) -> torch.Tensor:
    """grad_theta log pi(y_w|x), grad_theta log pi(y_l|x) of every pair, flattened: shape (N, 2, D)."""
    theta = {k: v.detach() for k, v in net.named_parameters() if v.requires_grad}

    def log_probs(th):
        return batch.log_probs(lambda x: functional_call(net, th, (x,)))

    jac = jacrev(log_probs)(theta)
    n = batch.data.n_pairs
    return torch.cat([jac[k].reshape(n, 2, -1) for k in theta], dim=-1)


def gradient_columns(net, batch, loss: Loss, log_ref: np.ndarray) -> dict[str, np.ndarray]:
    """``gw_sq``, ``gw_gl``, ``ent_own``, ``ent_cross``, ``dlogpw_dt0`` at the network's parameters."""
    g = pair_gradients(net, batch)
    kernel = torch.einsum("id,jkd->ijk", g[:, 0], g).numpy()  # <g_w^i, g_k^j>
    with torch.no_grad():
        h = batch.log_probs(net).numpy() - log_ref
    ab = -np.asarray(loss.grad(h, log_ref), dtype=float)
    return entanglement(kernel, ab[:, 0], ab[:, 1])


def _mlp_token_log_probs(net, batch: PairBatch) -> torch.Tensor:
    """log pi(. | x, y_<t) of y_w's positions: (N, T, vocab)."""
    return torch.log_softmax(net(batch.ctx[:, 0]), dim=-1)


def _transformer_token_log_probs(net, batch: SequenceBatch) -> torch.Tensor:
    """The same for the transformer: the logits at positions P - 1 .. L - 2 of x + y_w."""
    return torch.log_softmax(net(batch.ids[:, 0])[..., batch.prompt_len - 1 : -1, :], dim=-1)


#: The batch type of each architecture -> the next-token log-probabilities along y_w.
TOKEN_LOG_PROBS = {PairBatch: _mlp_token_log_probs, SequenceBatch: _transformer_token_log_probs}


def token_log_probs(net, spec, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """log pi(. | x, y_<t) at every position t of responses (M, T) after prompts (M, P): (M, T, vocab).

    In chunks of :data:`CHUNK` rows.  The last token of each response is never read (only its prefix).
    """
    from flowsim.model.network.archs import as_batch

    out = []
    with torch.no_grad():
        for lo in range(0, len(prompts), CHUNK):
            y = responses[lo : lo + CHUNK]
            batch = as_batch(spec, PairData(prompts[lo : lo + CHUNK], y, y), net)
            out.append(TOKEN_LOG_PROBS[type(batch)](net, batch).numpy())
    return np.concatenate(out)


def score(net, spec, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """log pi(y | x) of responses (M, T) after prompts (M, P): shape (M,)."""
    lp = token_log_probs(net, spec, prompts, responses)
    return np.take_along_axis(lp, responses[..., None], -1)[..., 0].sum(-1)


def _extend(net, spec, prompts: np.ndarray, beams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every one-token extension of beams (N, M, t): (N, M vocab, t + 1) and their log pi (N, M vocab).

    The extensions of beam m are m vocab .. (m + 1) vocab - 1, the new token varying fastest
    (``itertools.product``'s order).  One forward pass scores the beams and their next token.
    """
    n, m, t = beams.shape
    padded = np.concatenate([beams, np.zeros((n, m, 1), dtype=int)], -1).reshape(n * m, t + 1)
    lp = token_log_probs(net, spec, np.repeat(prompts, m, axis=0), padded).reshape(n, m, t + 1, -1)
    known = np.take_along_axis(lp[:, :, :t], beams[..., None], -1)[..., 0].sum(-1)  # (N, M)
    grown = np.concatenate(
        [np.repeat(beams, spec.vocab, axis=1), np.tile(np.arange(spec.vocab), (n, m))[..., None]], axis=-1
    )
    return grown, (known[..., None] + lp[:, :, t]).reshape(n, -1)


def _candidates(net, spec, data: PairData) -> tuple[np.ndarray, np.ndarray]:
    """Responses (N, M, T) among which each pair's most likely other is sought, and their log pi (N, M).

    All of them (the last token's distribution read once per prefix) when vocab^T <= :data:`EXACT_LIMIT`;
    else a beam search keeping :data:`BEAM` + 2 beams (y_w and y_l may be among them).
    """
    n, t = data.chosen.shape
    if spec.vocab**t <= EXACT_LIMIT:
        prefixes = np.array(list(itertools.product(range(spec.vocab), repeat=t - 1)), dtype=int).reshape(-1, t - 1)
        return _extend(net, spec, data.prompts, np.broadcast_to(prefixes, (n, *prefixes.shape)))
    beams = np.zeros((n, 1, 0), dtype=int)
    for _ in range(t):
        beams, logp = _extend(net, spec, data.prompts, beams)
        keep = np.argsort(-logp, axis=1, kind="stable")[:, : BEAM + 2]
        beams, logp = np.take_along_axis(beams, keep[..., None], axis=1), np.take_along_axis(logp, keep, axis=1)
    return beams, logp


def top_other(net, spec, data: PairData) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's most likely response other than y_w and y_l (N, T), and its probability (N,)."""
    cand, logp = _candidates(net, spec, data)
    n = len(cand)
    ours = np.all(cand == data.chosen[:, None], -1) | np.all(cand == data.rejected[:, None], -1)
    best = np.argmax(np.where(ours, -np.inf, logp), axis=1)
    return cand[np.arange(n), best], np.exp(logp[np.arange(n), best])


def start_probes(net, batch, spec, loss: Loss, log_ref: np.ndarray) -> dict[str, np.ndarray]:
    """Every column of :data:`flowsim.model.probes.PROBE_COLUMNS` the start knows, per pair (N,).

    Also ``_top_other`` (N, T): the response :func:`end_probes` scores again at the end.
    """
    data = batch.data
    other, p_other = top_other(net, spec, data)
    return (
        hidden_columns(net, batch)
        | gradient_columns(net, batch, loss, log_ref)
        | pair_text_columns(data.chosen, data.rejected)
        | {"top_other_0": p_other, "_top_other": other}
    )


def end_probes(net, spec, data: PairData, start: dict, logp0: np.ndarray, logp1, lr: float) -> dict[str, np.ndarray]:
    """The start's columns with ``top_other_gain`` (the end's net) and ``dlogpw_first`` from the first step.

    ``logp1`` (N, 2): log pi after the first optimiser step (None: the training took none).
    """
    out = {k: v for k, v in start.items() if not k.startswith("_")}
    out["top_other_gain"] = np.exp(score(net, spec, data.prompts, start["_top_other"])) - start["top_other_0"]
    n = data.n_pairs
    out["dlogpw_first"] = np.full(n, np.nan) if logp1 is None else (logp1[:, 0] - logp0[:, 0]) / lr
    return out


__all__ = [
    "BEAM",
    "EXACT_LIMIT",
    "end_probes",
    "gradient_columns",
    "hidden_columns",
    "masked_ches",
    "pair_gradients",
    "response_mask",
    "score",
    "start_probes",
    "token_log_probs",
    "top_other",
]
