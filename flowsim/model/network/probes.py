r"""The per-pair predictors of :mod:`flowsim.model.probes` on the network (MLP and transformer), in torch.

:func:`start_probes` computes them from the SFT checkpoint, before the preference stage;
:func:`end_probes` adds what needs the end of it (``top_other_gain``, ``dlogpw_first``).

**Hidden states.**  The transformer's "last hidden state" is the LM head's input, the output of
GPT-2's final layer norm ``ln_f``: what ``transformers`` returns as ``hidden_states[-1]``
(``ches``, ``ches_ln``, ``hidden_ip``); the state before ``ln_f`` is its input (``ches_pre``,
``ches_ln_pre``), both returned by the stacked forward (``states=True``).  The MLP's is its last
hidden layer (the readout's input), the same before and after (it has no final norm).  Token s
of a sequence x + y is predicted by the hidden state at position s - 1, so the response's |y|
tokens by positions P - 1 .. P + |y| - 2 (P = |x|): those are summed (:func:`response_mask`;
positions after the response, right padding, are not).

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
parameters, float64, flattened, by one backward pass through copies of the network, one per
sequence (:func:`pair_gradients`); the first-order rates are
:func:`flowsim.model.probes.entanglement` of their Gram matrix.

**The most likely other response.**  Over all vocab^|y| responses of the pair's response length
(which is the distribution: log pi(y|x) sums |y| next-token log-probabilities, so those sum to 1)
when vocab^|y| <= :data:`EXACT_LIMIT`; otherwise the best of a beam search of width
:data:`BEAM` that is neither y_w nor y_l (an approximation of the argmax).

**Many members at once.**  Every probe is computed for E networks of one architecture together
(:class:`Members`: a module for the structure and the members' parameters stacked on a leading
axis), through the architecture's stacked forward (:mod:`flowsim.model.network.stacked`, which
equals the module member by member): the ensemble's members read the same data, so each
column is one batched computation of shape (E, N), and one network alone is the case E = 1
(:meth:`Members.of`).  One implementation serves the one-at-a-time loop and the ensemble.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flowsim.model.losses.base import Loss
from flowsim.model.network.data import PairData, contexts
from flowsim.model.network.module import PairBatch
from flowsim.model.network.transformer import SequenceBatch
from flowsim.model.probes import ches_terms, entanglement, pair_text_columns

#: Responses are enumerated exactly when vocab^response_len is at most this; else a beam search.
EXACT_LIMIT = 5000
#: The beam search's width where the responses are not enumerated.
BEAM = 4
#: Rows of enumerated responses (over all members) scored per forward pass (memory, not results).
CHUNK = 8192
#: Bytes of per-sequence parameter copies and gradients (E, 2N, D) held at once: members beyond it
#: in turns (memory, not results).
GRADIENT_BYTES = 2**28


@dataclass(frozen=True)
class Members:
    """E networks of one architecture: ``net`` gives the structure (its values are not read) and
    ``params`` every parameter of it by name, the members' stacked on a leading axis (E, ...).

    The trainable parameters are those ``net`` trains (``requires_grad``), in its order.
    """

    net: nn.Module
    params: dict[str, torch.Tensor]

    def __post_init__(self) -> None:
        missing = sorted(set(dict(self.net.named_parameters())) - set(self.params))
        if missing:
            raise ValueError(f"Members: params lacks {missing} (rule: every parameter of net, stacked)")
        counts = {k: int(v.shape[0]) for k, v in self.params.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(f"Members: params' leading axes {counts} (rule: one member count E for all)")

    @classmethod
    def of(cls, net: nn.Module) -> Members:
        """One network as E = 1 member (its current parameters)."""
        return cls(net, {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()})

    def __len__(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @property
    def trainable(self) -> list[str]:
        """The names of the trained parameters, in the module's order."""
        return [k for k, p in self.net.named_parameters() if p.requires_grad]

    def logits(self, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Every member's logits at its inputs x (E, ...): (E, ..., vocab); ``params`` replaces the members'."""
        return type(self.net).stacked_forward(self.net, self.params if params is None else params, x.to(self.device))

    def part(self, lo: int, hi: int) -> Members:
        """Members lo .. hi - 1."""
        return Members(self.net, {k: v[lo:hi] for k, v in self.params.items()})

    def states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, hidden state before the final norm, after it) at inputs x (E, ...) (stacked.py)."""
        return type(self.net).stacked_forward(self.net, self.params, x.to(self.device), states=True)


def member(columns: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Member i's columns of columns computed for E members (each (E, ...))."""
    return {k: v[i] for k, v in columns.items()}


def _shared(batch, members: Members):
    """A copy of ``batch`` whose tensors have a leading member axis (E, ...): every member reads the same data."""
    view = copy.copy(batch)
    n = len(members)
    view.__dict__.update(
        {k: v.to(members.device).expand(n, *v.shape) for k, v in vars(batch).items() if torch.is_tensor(v)}
    )
    return view


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


def _mlp_hidden(members: Members, batch: PairBatch):
    """(post, pre) hidden states (E, N, 2, T, d) at the positions predicting y's tokens; the final
    token's (E, N, 2, d)."""
    data, net = batch.data, members.net
    pad = np.zeros((data.n_pairs, 1), dtype=int)  # any token: the context ending at y's last token
    final = [
        contexts(data.prompts, np.hstack([y, pad]), net.window, net.pad)[:, -1] for y in (data.chosen, data.rejected)
    ]
    ctx = torch.cat([batch.ctx, torch.as_tensor(np.stack(final, axis=1))[:, :, None]], dim=2)
    _, _, h = members.states(ctx.expand(len(members), *ctx.shape))  # (E, N, 2, T + 1, d): no final norm
    return h[..., :-1, :], h[..., :-1, :], h[..., -1, :]


def _transformer_hidden(members: Members, batch: SequenceBatch):
    """The same for the transformer: ln_f's output (``hidden_states[-1]``) and input."""
    _, pre, post = members.states(batch.ids.expand(len(members), *batch.ids.shape))  # (E, N, 2, L, D)
    p = batch.prompt_len
    return post[..., p - 1 : -1, :], pre[..., p - 1 : -1, :], post[..., -1, :]


#: The batch type of each architecture -> its members' hidden states (:func:`_mlp_hidden`'s signature).
HIDDEN = {PairBatch: _mlp_hidden, SequenceBatch: _transformer_hidden}


def stacked_hidden_columns(members: Members, batch) -> dict[str, np.ndarray]:
    """``ches``, ``ches_ln``, ``ches_pre``, ``ches_ln_pre``, ``hidden_ip`` of every member's pairs (E, N)."""
    with torch.no_grad():
        post, pre, final = (t.cpu().numpy() for t in HIDDEN[type(batch)](members, batch))
    mask = np.ones(post.shape[:-1], dtype=bool)  # every pair's responses fill their sequences
    ches, ches_ln = masked_ches(post, mask)
    ches_pre, ches_ln_pre = masked_ches(pre, mask)
    hidden_ip = np.sum(final[..., 0, :] * final[..., 1, :], axis=-1)
    return {"ches": ches, "ches_ln": ches_ln, "ches_pre": ches_pre, "ches_ln_pre": ches_ln_pre, "hidden_ip": hidden_ip}


def hidden_columns(net: nn.Module, batch) -> dict[str, np.ndarray]:
    """:func:`stacked_hidden_columns` of one network at its current parameters: each (N,)."""
    return member(stacked_hidden_columns(Members.of(net), batch), 0)


def _one_each(data: torch.Tensor, n: int) -> torch.Tensor:
    """A batch tensor (N, 2, ...) as 2N one-sequence batches (1, 1, ...), for each of n members: (n 2N, 1, 1, ...)."""
    rest = data.shape[2:]
    one = data.reshape(1, -1, 1, 1, *rest)
    return one.expand(n, *one.shape[1:]).reshape(-1, 1, 1, *rest)


def pair_gradients(members: Members, batch) -> torch.Tensor:
    """grad_theta log pi(y_w|x), grad_theta log pi(y_l|x) of every member's pairs, flattened: (E, N, 2, D).

    Per-sequence gradients by replication: each member is repeated once per sequence (S = 2N
    copies, the trainable parameters one leaf (E S, D)), each copy computes its one sequence's
    log pi, and one backward pass of their sum fills every copy's row with its sequence's
    gradient alone (no copy's log pi depends on another's parameters).
    """
    names, n, s = members.trainable, len(members), 2 * batch.data.n_pairs
    sizes = [members.params[k][0].numel() for k in names]
    flat = torch.cat([members.params[k].detach().reshape(n, -1) for k in names], dim=1)
    leaf = flat.repeat_interleave(s, dim=0).requires_grad_(True)  # row e S + j: member e, sequence j
    copies = {k: v.repeat_interleave(s, dim=0) for k, v in members.params.items() if k not in names}
    for k, part in zip(names, leaf.split(sizes, dim=1), strict=True):
        copies[k] = part.reshape(n * s, *members.params[k].shape[1:])
    view = copy.copy(batch)  # copy e S + j reads sequence j (pair j // 2, response j % 2) as a batch of one
    view.__dict__.update({k: _one_each(v.to(members.device), n) for k, v in vars(batch).items() if torch.is_tensor(v)})
    logp = view.log_probs(lambda x: members.logits(x, copies))  # (E S, 1, 1)
    (g,) = torch.autograd.grad(logp.sum(), leaf)
    return g.reshape(n, batch.data.n_pairs, 2, -1)


def _kernel(members: Members, batch) -> np.ndarray:
    """<g_w^i, g_k^j> of every member's pairs (E, N, N, 2)."""
    g = pair_gradients(members, batch)
    return torch.einsum("eid,ejkd->eijk", g[:, :, 0], g).cpu().numpy()


def _parts(members: Members, batch) -> list[Members]:
    """The members in turns whose gradients fit in :data:`GRADIENT_BYTES` (a member's are independent of
    the others', bit for bit: one backward pass per sequence fills each member's row alone)."""
    size = 2 * batch.data.n_pairs * sum(v[0].numel() for v in members.params.values()) * 8  # a member's copies
    step = max(1, GRADIENT_BYTES // size)
    return [members.part(lo, min(lo + step, len(members))) for lo in range(0, len(members), step)]


def gradient_columns(members: Members, batch, loss: Loss, log_ref: np.ndarray) -> dict[str, np.ndarray]:
    """``gw_sq``, ``gw_gl``, ``ent_own``, ``ent_cross``, ``dlogpw_dt0`` (E, N) at the members' parameters.

    ``log_ref`` (E, N, 2): each member's references.
    """
    kernel = np.concatenate([_kernel(part, batch) for part in _parts(members, batch)])
    with torch.no_grad():
        h = _shared(batch, members).log_probs(members.logits).cpu().numpy() - log_ref
    ab = -np.asarray(loss.grad(h, log_ref), dtype=float)
    return entanglement(kernel, ab[..., 0], ab[..., 1])


def _mlp_token_log_probs(members: Members, batch: PairBatch, last: bool = False) -> torch.Tensor:
    """log pi(. | x, y_<t) of y_w's positions, the batch's rows split evenly over the members: (E, M, T, vocab);
    ``last``: of its last position only (E, M, 1, vocab)."""
    ctx = batch.ctx[:, 0, -1:] if last else batch.ctx[:, 0]  # a context each: the others need not be computed
    return torch.log_softmax(members.logits(ctx.reshape(len(members), -1, *ctx.shape[1:])), dim=-1)


def _transformer_token_log_probs(members: Members, batch: SequenceBatch, last: bool = False) -> torch.Tensor:
    """The same for the transformer: the logits at positions P - 1 .. L - 2 of x + y_w (``last``: L - 2)."""
    ids = batch.ids[:, 0]
    logits = members.logits(ids.reshape(len(members), -1, ids.shape[-1]))
    return torch.log_softmax(logits[..., ids.shape[-1] - 2 if last else batch.prompt_len - 1 : -1, :], dim=-1)


#: The batch type of each architecture -> the next-token log-probabilities along y_w.
TOKEN_LOG_PROBS = {PairBatch: _mlp_token_log_probs, SequenceBatch: _transformer_token_log_probs}


def token_log_probs(
    members: Members, spec, prompts: np.ndarray, responses: np.ndarray, last: bool = False
) -> np.ndarray:
    """log pi(. | x, y_<t) at every position t of each member's responses (E, M, T) after prompts
    (M, P) or (E, M, P): (E, M, T, vocab); ``last``: at t = T - 1 only, (E, M, 1, vocab).

    In chunks of :data:`CHUNK` rows over all members.  The last token of each response is never
    read (only its prefix).
    """
    from flowsim.model.network.archs import as_batch

    n, m = responses.shape[:2]
    prompts = np.broadcast_to(prompts, (n, m, prompts.shape[-1]))
    step = max(1, CHUNK // n)
    out = []
    with torch.no_grad():
        for lo in range(0, m, step):
            x, y = (a[:, lo : lo + step].reshape(-1, a.shape[-1]) for a in (prompts, responses))
            batch = as_batch(spec, PairData(x, y, y), members.net)
            out.append(TOKEN_LOG_PROBS[type(batch)](members, batch, last).cpu().numpy())
    return np.concatenate(out, axis=1)


def score(members: Members, spec, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """log pi(y | x) of each member's responses (E, M, T) after prompts (M, P): shape (E, M)."""
    lp = token_log_probs(members, spec, prompts, responses)
    return np.take_along_axis(lp, responses[..., None], -1)[..., 0].sum(-1)


def _extend(members: Members, spec, prompts: np.ndarray, beams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every one-token extension of each member's beams (E, N, M, t): (E, N, M vocab, t + 1) and their
    log pi (E, N, M vocab), given the pairs' prompts (N, P).

    The extensions of beam m are m vocab .. (m + 1) vocab - 1, the new token varying fastest
    (``itertools.product``'s order).  One forward pass scores the beams and their next token.
    """
    e, n, m, t = beams.shape
    padded = np.concatenate([beams, np.zeros((e, n, m, 1), dtype=int)], -1).reshape(e, n * m, t + 1)
    lp = token_log_probs(members, spec, np.repeat(prompts, m, axis=0), padded).reshape(e, n, m, t + 1, -1)
    known = np.take_along_axis(lp[..., :t, :], beams[..., None], -1)[..., 0].sum(-1)  # (E, N, M)
    tokens = np.broadcast_to(np.tile(np.arange(spec.vocab), m), (e, n, m * spec.vocab))
    grown = np.concatenate([np.repeat(beams, spec.vocab, axis=2), tokens[..., None]], axis=-1)
    return grown, (known[..., None] + lp[..., t, :]).reshape(e, n, -1)


def _every_response(members: Members, spec, prompts: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Every response of length t (E, N, vocab^t, t) in ``itertools.product``'s order, and its log pi.

    Prefix by prefix: the next-token distribution after each of the vocab^j prefixes of length j
    (j < t) is read once, at its last position alone, and log pi(y) sums those of y's prefixes,
    first token first (vocab + ... + vocab^(t-1) contexts where a pass over every response's
    positions reads t vocab^(t-1)).
    """
    e, n, vocab = len(members), len(prompts), spec.vocab
    logp = np.zeros((e, n, 1))
    for j in range(t):
        prefixes = np.array(list(itertools.product(range(vocab), repeat=j)), dtype=int).reshape(vocab**j, j)
        k = len(prefixes)
        padded = np.concatenate([prefixes, np.zeros((k, 1), dtype=int)], -1)  # any token: its context is read
        rows = np.broadcast_to(padded, (e, n, k, j + 1)).reshape(e, n * k, j + 1)
        lp = token_log_probs(members, spec, np.repeat(prompts, k, axis=0), rows, last=True).reshape(e, n, k, vocab)
        logp = (logp[..., None] + lp).reshape(e, n, -1)  # the new token varying fastest
    every = np.array(list(itertools.product(range(vocab), repeat=t)), dtype=int)
    return np.broadcast_to(every, (e, n, *every.shape)), logp


def _candidates(members: Members, spec, data: PairData) -> tuple[np.ndarray, np.ndarray]:
    """Responses (E, N, M, T) among which each member's pairs' most likely other is sought, and their log pi.

    All of them when vocab^T <= :data:`EXACT_LIMIT` (:func:`_every_response`); else a beam search per
    member keeping :data:`BEAM` + 2 beams (y_w and y_l may be among them).
    """
    e, (n, t) = len(members), data.chosen.shape
    if spec.vocab**t <= EXACT_LIMIT:
        return _every_response(members, spec, data.prompts, t)
    beams = np.zeros((e, n, 1, 0), dtype=int)
    for _ in range(t):
        beams, logp = _extend(members, spec, data.prompts, beams)
        keep = np.argsort(-logp, axis=-1, kind="stable")[..., : BEAM + 2]
        beams, logp = np.take_along_axis(beams, keep[..., None], axis=2), np.take_along_axis(logp, keep, axis=-1)
    return beams, logp


def top_other(members: Members, spec, data: PairData) -> tuple[np.ndarray, np.ndarray]:
    """Each member's pairs' most likely response other than y_w and y_l (E, N, T), and its probability (E, N)."""
    cand, logp = _candidates(members, spec, data)
    ours = np.all(cand == data.chosen[:, None], -1) | np.all(cand == data.rejected[:, None], -1)
    best = np.argmax(np.where(ours, -np.inf, logp), axis=-1)  # (E, N)
    other = np.take_along_axis(cand, best[..., None, None], axis=2)[..., 0, :]
    return other, np.exp(np.take_along_axis(logp, best[..., None], axis=-1)[..., 0])


def start_probes(members: Members, batch, spec, loss: Loss, log_ref: np.ndarray) -> dict[str, np.ndarray]:
    """Every column of :data:`flowsim.model.probes.PROBE_COLUMNS` the start knows, per member and pair (E, N).

    ``log_ref`` (E, N, 2): each member's references.  Also ``_top_other`` (E, N, T): the response
    :func:`end_probes` scores again at the end.
    """
    data, e = batch.data, len(members)
    other, p_other = top_other(members, spec, data)
    text = pair_text_columns(data.chosen, data.rejected)  # the members share the pairs
    text = {k: np.broadcast_to(v, (e, data.n_pairs)).copy() for k, v in text.items()}
    return (
        stacked_hidden_columns(members, batch)
        | gradient_columns(members, batch, loss, log_ref)
        | text
        | {"top_other_0": p_other, "_top_other": other}
    )


def end_probes(
    members: Members, spec, data: PairData, start: dict, logp0: np.ndarray, logp1: np.ndarray, lr: float
) -> dict[str, np.ndarray]:
    """The start's columns with ``top_other_gain`` (at the members' final parameters) and ``dlogpw_first``.

    ``logp0``, ``logp1`` (E, N, 2): log pi at the start and after the first optimiser step (NaN for a
    member that took none, whose ``dlogpw_first`` is then NaN).
    """
    out = {k: v for k, v in start.items() if not k.startswith("_")}
    out["top_other_gain"] = np.exp(score(members, spec, data.prompts, start["_top_other"])) - start["top_other_0"]
    out["dlogpw_first"] = (logp1[..., 0] - logp0[..., 0]) / lr
    return out


__all__ = [
    "BEAM",
    "EXACT_LIMIT",
    "GRADIENT_BYTES",
    "Members",
    "end_probes",
    "gradient_columns",
    "hidden_columns",
    "masked_ches",
    "member",
    "pair_gradients",
    "response_mask",
    "score",
    "stacked_hidden_columns",
    "start_probes",
    "token_log_probs",
    "top_other",
]
