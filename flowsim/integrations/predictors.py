r"""The per-pair predictors of displacement (:mod:`flowsim.model.probes`) of a traced run's probe pairs.

Computed once by the TRL callback (:mod:`flowsim.integrations.trl`) at the start of the traced
training, on the model as the trainer holds it, from the probe pairs as TRL tokenises and pads
them (the collated batches: ``input_ids``, ``attention_mask``, ``completion_mask``; each batch's
first half the chosen sequences, its second half the rejected, as TRL concatenates them).  This
module needs torch only (no TRL, no transformers): the callback passes the model and a function
scoring log pi(y|x) with gradients.

**Hidden states** (``ches``, ``ches_ln``, ``hidden_ip``): ``hidden_states[-1]`` of
``model(..., output_hidden_states=True)``, the LM head's input (after the final norm).  Token s
of a sequence is predicted by the state at position s - 1, so a completion's tokens (EOS
included) by the positions t with ``completion_mask[t + 1] = 1`` (:func:`prediction_mask`;
padding on either side is never summed); |y| = ``completion_mask.sum()``.  ``hidden_ip`` is the
two sequences' states at their final completion token.  The state *before* the final norm
(``ches_pre``, ``ches_ln_pre``) is read by a forward hook on the module :func:`final_norm` finds;
where none is found, or its output is not ``hidden_states[-1]``, those are NaN and the reason is
recorded.

**Gradients** (``gw_sq``, ``gw_gl``, ``ent_own``, ``ent_cross``, ``dlogpw_dt0``): g = grad_theta
log pi(y|x) of each of the 2n sequences over every trainable parameter (``requires_grad``), one
forward and backward per sequence (the model in eval mode, ``.grad`` untouched), flattened in
float64.  Their Gram matrix K is what the rates need (:func:`flowsim.model.probes.entanglement`).
When 2n gradients fit ``memory`` bytes (2n x D x 8, D the trainable parameters) they are stored
and K = G G^T; otherwise K is accumulated block by block (:func:`gram`): a block of B =
``memory // (8 D)`` gradients is held while every later sequence's gradient is computed again and
dotted with it, about 2n + (2n)^2 / (2B) gradient computations in all and ``memory`` bytes at
most -- exact over all trainable parameters, slower.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from flowsim.model.probes import ches_terms, edit_distance, entanglement, token_overlap

#: The predictors a trace's callback records per probe pair (the others of
#: :data:`flowsim.model.probes.PROBE_COLUMNS` are filled by ``flowsim trace`` or left NaN).
TRACE_PREDICTORS = (
    "ches",
    "ches_ln",
    "ches_pre",
    "ches_ln_pre",
    "hidden_ip",
    "gw_sq",
    "gw_gl",
    "ent_own",
    "ent_cross",
    "dlogpw_dt0",
    "pair_edit_distance",
    "token_overlap",
)
#: Attribute names of a decoder's final norm in ``transformers`` models (Llama/Mistral/Qwen ``norm``,
#: GPT-2 ``ln_f``, OPT/T5 ``final_layer_norm``, Phi/Falcon ``final_layernorm``, Mamba ``norm_f``).
NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "ln_out", "final_norm")
#: Bytes of gradients (float64) held at once by default (:func:`gram`).
MEMORY = 1 << 30
#: Keys of a collated batch that are not the model's inputs (as TRL's DPOTrainer drops them).
NON_MODEL_KEYS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps"})


def model_inputs(batch: dict) -> dict:
    """The collated batch's keys the model takes (TRL's own selection), with ``use_cache`` off."""
    return {k: v for k, v in batch.items() if k not in NON_MODEL_KEYS} | {"use_cache": False}


def prediction_mask(completion_mask: torch.Tensor) -> torch.Tensor:
    """Which positions predict a completion token: ``completion_mask`` shifted left by one (last: 0).

    >>> prediction_mask(torch.tensor([[0, 0, 1, 1, 0]])).tolist()
    [[0, 1, 1, 0, 0]]
    """
    return torch.nn.functional.pad(completion_mask[..., 1:], (0, 1))


def final_norm(model) -> tuple[torch.nn.Module | None, str]:
    """The decoder's final norm (the module whose output is ``hidden_states[-1]``) and where it was found.

    Looked up on ``model.get_decoder()``, ``model.base_model``, ``model.model``, ``model.transformer``
    (in that order) by the names of :data:`NORM_NAMES`; (None, why) where there is none.
    """
    owners = []
    if callable(getattr(model, "get_decoder", None)):
        try:
            owners.append(("get_decoder()", model.get_decoder()))
        except (AttributeError, NotImplementedError, TypeError):
            pass
    owners += [(a, getattr(model, a, None)) for a in ("base_model", "model", "transformer")]
    for where, owner in owners:
        for name in NORM_NAMES:
            mod = getattr(owner, name, None) if isinstance(owner, torch.nn.Module) else None
            if isinstance(mod, torch.nn.Module):
                return mod, f"{where}.{name} ({type(mod).__name__})"
    return None, f"no final norm found on {type(model).__name__} (looked for {', '.join(NORM_NAMES)})"


def _states(model, batch: dict, norm) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """(hidden_states[-1], the final norm's input or None, why None) of a collated batch."""
    seen = {}
    hook = None
    if norm is not None:
        hook = norm.register_forward_hook(lambda mod, inp, out: seen.update(pre=inp[0], post=out))
    try:
        post = model(**model_inputs(batch), output_hidden_states=True).hidden_states[-1]
    finally:
        if hook is not None:
            hook.remove()
    if norm is None:
        return post, None, ""
    out = seen.get("post")
    if out is None or out.shape != post.shape or not torch.allclose(out, post):
        return post, None, "the module found as the final norm does not give hidden_states[-1]"
    return post, seen["pre"], ""


def _ches(h: torch.Tensor, pred: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """CHES and its length-normalised form of the batch's pairs from states (2b, L, d) and masks (2b, L)."""
    h = h.detach().double().cpu().numpy()
    m = pred.cpu().numpy().astype(float)
    summed = np.einsum("sld,sl->sd", h, m)
    lengths = m.sum(-1)
    b = len(h) // 2
    return ches_terms(summed[:b], summed[b:], lengths[:b], lengths[b:])


def hidden_columns(model, batches: list[dict], norm, why: str = "") -> tuple[dict[str, np.ndarray], str]:
    """``ches``, ``ches_ln``, ``ches_pre``, ``ches_ln_pre``, ``hidden_ip`` of every pair (n,), and a note.

    ``norm`` is the final norm (:func:`final_norm`) or None (``why``): the ``_pre`` columns are then NaN.
    """
    cols: dict[str, list] = {k: [] for k in ("ches", "ches_ln", "ches_pre", "ches_ln_pre", "hidden_ip")}
    note = why
    with torch.no_grad():
        for batch in batches:
            post, pre, problem = _states(model, batch, norm)
            note = note or problem
            pred = prediction_mask(batch["completion_mask"])
            cols["ches"].append(_ches(post, pred)[0])
            cols["ches_ln"].append(_ches(post, pred)[1])
            nan = np.full(len(post) // 2, np.nan)
            ches_pre = _ches(pre, pred) if pre is not None else (nan, nan)
            cols["ches_pre"].append(ches_pre[0])
            cols["ches_ln_pre"].append(ches_pre[1])
            last = batch["completion_mask"].shape[-1] - 1 - torch.flip(batch["completion_mask"], [-1]).argmax(-1)
            final = post[torch.arange(len(post)), last].double().cpu().numpy()  # the final completion token
            b = len(final) // 2
            cols["hidden_ip"].append(np.sum(final[:b] * final[b:], -1))
    return {k: np.concatenate(v) for k, v in cols.items()}, note


def completion_ids(batches: list[dict]) -> list[tuple[list[int], list[int]]]:
    """Each pair's (y_w, y_l) token ids as TRL tokenised them (EOS included): the completion-mask positions."""
    out = []
    for batch in batches:
        ids, mask = batch["input_ids"].cpu(), batch["completion_mask"].cpu().bool()
        seqs = [ids[i][mask[i]].tolist() for i in range(len(ids))]
        b = len(seqs) // 2
        out += list(zip(seqs[:b], seqs[b:], strict=True))
    return out


def text_columns(batches: list[dict]) -> dict[str, np.ndarray]:
    """``pair_edit_distance`` and ``token_overlap`` of every pair's completions (floats, (n,))."""
    pairs = completion_ids(batches)
    return {
        "pair_edit_distance": np.array([float(edit_distance(u, v)) for u, v in pairs]),
        "token_overlap": np.array([token_overlap(u, v) for u, v in pairs]),
    }


def sequences(batches: list[dict]) -> list[dict]:
    """The 2n sequences one by one as one-row batches, ordered (y_w of pairs 0..n-1, then their y_l)."""
    chosen, rejected = [], []
    for batch in batches:
        b = len(batch["input_ids"]) // 2
        rows = [{k: v[i : i + 1] for k, v in batch.items() if isinstance(v, torch.Tensor)} for i in range(2 * b)]
        chosen += rows[:b]
        rejected += rows[b:]
    return chosen + rejected


def gram(grad: Callable[[int], torch.Tensor], m: int, dim: int, memory: int = MEMORY) -> tuple[np.ndarray, dict]:
    """The Gram matrix (m, m) of ``m`` gradients ``grad(s)`` (flat float64, length ``dim``), within ``memory`` bytes.

    All m stored when m x dim x 8 <= ``memory``; else blocks of B = max(1, memory // (8 dim)) are
    held in turn and the later gradients computed again (module docstring).  Also returns how:
    ``mode``, ``block``, ``gradients`` (computations of a gradient), ``bytes`` (held at most).

    >>> g = torch.tensor([[1.0, 0.0], [1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    >>> k, how = gram(lambda s: g[s], 3, 2, memory=16)  # room for one gradient: streamed
    >>> k.tolist(), how["mode"], how["gradients"]
    ([[1.0, 1.0, 0.0], [1.0, 5.0, 6.0], [0.0, 6.0, 9.0]], 'streamed', 6)
    """
    block = max(1, min(m, memory // max(8 * dim, 1)))
    k = np.zeros((m, m))
    count = 0
    for lo in range(0, m, block):
        hi = min(m, lo + block)
        held = torch.stack([grad(s) for s in range(lo, hi)])
        count += hi - lo
        k[lo:hi, lo:hi] = (held @ held.T).numpy()
        for s in range(hi, m):
            k[lo:hi, s] = k[s, lo:hi] = (held @ grad(s)).numpy()
            count += 1
    mode = "stored" if block == m else "streamed"
    return k, {"mode": mode, "block": block, "gradients": count, "bytes": 8 * dim * block}


def trainable(model) -> list[torch.nn.Parameter]:
    """The parameters the optimiser moves (``requires_grad``), each once."""
    seen, out = set(), []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def gradient_columns(model, batches, logps, ab: np.ndarray, memory: int = MEMORY) -> tuple[dict, dict]:
    """``gw_sq``, ``gw_gl``, ``ent_own``, ``ent_cross``, ``dlogpw_dt0`` of every pair (n,), and how K was made.

    ``logps(model, batch)`` is log pi(y|x) (rows,) of a collated batch with gradients; ``ab`` (n, 2)
    is each pair's a = -dl/dh_w, b = -dl/dh_l (NaN where the loss has no flowsim formula: the rates
    are then NaN).
    """
    params = trainable(model)
    dim = sum(p.numel() for p in params)
    seqs = sequences(batches)
    n = len(seqs) // 2
    was = model.training
    model.eval()
    t = time.perf_counter()
    try:

        def grad(s: int) -> torch.Tensor:
            g = torch.autograd.grad(logps(model, seqs[s])[0], params, allow_unused=True)
            zero = torch.zeros_like
            flat = [(gi if gi is not None else zero(p)).reshape(-1) for gi, p in zip(g, params, strict=True)]
            return torch.cat(flat).detach().to("cpu", torch.float64)

        k, how = gram(grad, 2 * n, dim, memory)
    finally:
        model.train(was)
    kernel = np.stack([k[:n, :n], k[:n, n:]], axis=-1)  # <g_w^i, g_w^j>, <g_w^i, g_l^j>
    out = entanglement(kernel, ab[:, 0], ab[:, 1])
    return out, how | {"parameters": dim, "seconds": time.perf_counter() - t}


__all__ = [
    "MEMORY",
    "NORM_NAMES",
    "TRACE_PREDICTORS",
    "completion_ids",
    "final_norm",
    "gradient_columns",
    "gram",
    "hidden_columns",
    "model_inputs",
    "prediction_mask",
    "sequences",
    "text_columns",
    "trainable",
]
