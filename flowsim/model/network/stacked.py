r"""The networks' forwards over batched parameter tensors: E members of one shape in one pass.

Each function takes a module of the architecture (for its structure and sizes; its values are not
read), the members' parameters stacked on a leading axis (a dict by the module's parameter names,
each (E, ...)) and the members' inputs (E, ...), and returns every member's logits (E, ..., vocab)
-- what ``torch.func.vmap`` of ``functional_call`` over the member axis returns, but written as
batched matrix products (``bmm``/``baddbmm`` over the member axis) instead of a per-op vmap of the
module's Python, which at these sizes is where the time went (docs/explanation/transformer.md).

* :func:`mlp_logits`: :class:`~flowsim.model.network.module.CausalMLP` (embedding, hidden
  Linear + activation layers, readout).
* :func:`gpt2_logits`: ``transformers``' ``GPT2LMHeadModel`` as
  :class:`~flowsim.model.network.transformer.CausalTransformer` configures it -- token and learned
  position embeddings, ``n_layer`` pre-LN blocks of causal multi-head self-attention (eager:
  softmax of q k^T / sqrt(head_dim) with the future masked) and an MLP of width 4 D with GPT-2's
  tanh-approximated GELU ("gelu_new"), a final layer norm, and the head (tied to the token
  embedding, or its own weight).  Dropout is 0 in flowsim's configuration, so there is none.

tests/unit/test_stacked.py: each equals the module member by member on random weights (float64,
to 1e-12).
"""

from __future__ import annotations

import torch
from torch import nn


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (E, M, in) @ weight (E, out, in)^T + bias (E, out): nn.Linear per member."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """GPT-2's Conv1D per member: x (E, M, in) @ weight (E, in, out) + bias (E, out)."""
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def _embed(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` (E, M) of each member's table weight (E, V, D): (E, M, D)."""
    members = torch.arange(weight.shape[0], device=weight.device).unsqueeze(1)
    return weight[members, ids]


def mlp_logits(net: nn.Module, params: dict[str, torch.Tensor], ctx: torch.Tensor, states: bool = False):
    """Next-token logits of :class:`CausalMLP` members at contexts ctx (E, ..., window): (E, ..., vocab).

    With ``states``: (logits, hidden, hidden), the last hidden layer (the readout's input, (E, ..., d))
    twice -- the state before and after a final norm, which the MLP does not have (as :func:`gpt2_logits`).
    """
    n_members, window = ctx.shape[0], ctx.shape[-1]
    emb = _embed(params["embed.weight"], ctx.reshape(n_members, -1))
    x = emb.reshape(n_members, -1, window * emb.shape[-1])
    for i, layer in enumerate(net.hidden):
        if isinstance(layer, nn.Linear):
            x = _linear(x, params[f"hidden.{i}.weight"], params.get(f"hidden.{i}.bias"))
        else:
            x = layer(x)  # the activation, elementwise
    z = _linear(x, params["readout.weight"], params.get("readout.bias"))
    logits = z.reshape(*ctx.shape[:-1], z.shape[-1])
    if not states:
        return logits
    hidden = x.reshape(*ctx.shape[:-1], x.shape[-1])
    return logits, hidden, hidden


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """nn.LayerNorm over the last axis with per-member weight and bias (E, D); x (E, M, D)."""
    normed = torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps)  # one fused pass; affine per member
    return torch.addcmul(bias.unsqueeze(1), normed, weight.unsqueeze(1))


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's activation ("gelu_new", transformers' NewGELUActivation):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch's fused tanh-approximate GELU (one pass
    forward and one backward instead of the eight of the formula written out)."""
    return torch.nn.functional.gelu(x, approximate="tanh")


def _attention(x: torch.Tensor, p: dict[str, torch.Tensor], pre: str, heads: int, shape) -> torch.Tensor:
    """One block's causal self-attention per member: x (E, B * L, D) -> (E, B * L, D)."""
    n_members, batch, length = shape
    width = x.shape[-1]
    head = width // heads
    qkv = _conv1d(x, p[f"{pre}.attn.c_attn.weight"], p[f"{pre}.attn.c_attn.bias"])
    # (E, B, L, 3, H, hd) -> three (E * B, H, L, hd)
    qkv = qkv.reshape(n_members * batch, length, 3, heads, head).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * head**-0.5
    future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
    scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
    out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (E * B, H, L, hd)
    out = out.transpose(1, 2).reshape(n_members, batch * length, width)
    return _conv1d(out, p[f"{pre}.attn.c_proj.weight"], p[f"{pre}.attn.c_proj.bias"])


def gpt2_logits(net: nn.Module, params: dict[str, torch.Tensor], ids: torch.Tensor, states: bool = False):
    """Next-token logits of :class:`CausalTransformer` members at token ids (E, ..., L): (E, ..., L, vocab).

    With ``states``: (logits, pre, post), the final layer norm's input and output (E, ..., L, D) --
    ``post`` is the LM head's input, what ``transformers`` returns as ``hidden_states[-1]``.
    """
    config = net.lm.config
    n_members, length = ids.shape[0], ids.shape[-1]
    flat = ids.reshape(n_members, -1, length)
    batch = flat.shape[1]
    t = "lm.transformer"
    x = _embed(params[f"{t}.wte.weight"], flat.reshape(n_members, -1))
    x = (x.reshape(n_members, batch, length, -1) + params[f"{t}.wpe.weight"][:, None, :length]).reshape(
        n_members, batch * length, -1
    )
    eps = config.layer_norm_epsilon
    for i in range(config.n_layer):
        pre = f"{t}.h.{i}"
        a = _layer_norm(x, params[f"{pre}.ln_1.weight"], params[f"{pre}.ln_1.bias"], eps)
        x = x + _attention(a, params, pre, config.n_head, (n_members, batch, length))
        m = _layer_norm(x, params[f"{pre}.ln_2.weight"], params[f"{pre}.ln_2.bias"], eps)
        m = _gelu_new(_conv1d(m, params[f"{pre}.mlp.c_fc.weight"], params[f"{pre}.mlp.c_fc.bias"]))
        x = x + _conv1d(m, params[f"{pre}.mlp.c_proj.weight"], params[f"{pre}.mlp.c_proj.bias"])
    before_ln_f = x
    x = _layer_norm(x, params[f"{t}.ln_f.weight"], params[f"{t}.ln_f.bias"], eps)
    head = params.get("lm.lm_head.weight", params[f"{t}.wte.weight"])  # tied: named once, as wte
    z = torch.bmm(x, head.transpose(1, 2))
    logits = z.reshape(*ids.shape, z.shape[-1])
    if not states:
        return logits
    return logits, before_ln_f.reshape(*ids.shape, -1), x.reshape(*ids.shape, -1)


__all__ = ["gpt2_logits", "mlp_logits"]
