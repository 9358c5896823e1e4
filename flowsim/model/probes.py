r"""Per-pair predictors of likelihood displacement, computed at the start of the preference stage.

The columns (:data:`PROBE_COLUMNS`) and the arithmetic they share across models, in numpy; each
model computes its hidden states and per-pair gradients its own way (the network:
:mod:`flowsim.model.network.probes`, torch; tabular logits and log-linear features: in closed
form, :meth:`flowsim.model.parameterisations.base.Parameterisation.start_columns`).  Definitions
(docs/explanation/predictors.md):

* **CHES** (Razin et al. 2024): with h+ = sum_t h(x, y_w,<t) and h- = sum_t h(x, y_l,<t) the sums of
  the last hidden state over the positions that predict the response's tokens,
  ``ches`` = <h+, h-> - |h+|^2 and ``ches_ln`` = <h+, h->/(|y_w| |y_l|) - |h+|^2/|y_w|^2
  (:func:`ches_terms`); ``hidden_ip`` is the inner product of the two sequences' last hidden
  states at their final token (Razin et al.'s "last hidden embedding inner product" baseline).
* **Gradient entanglement** (Yuan et al. 2024): g = grad_theta log pi(y|x); ``gw_sq`` = |g_w|^2,
  ``gw_gl`` = <g_w, g_l>.
* **The first-order rate of log pi(y_w)** under gradient flow on the dataset's mean loss
  L = (1/N) sum_j l(h_j) (Ren & Sutherland 2024's decomposition, the empirical NTK between pairs):
  d log pi(y_w^i)/dt = (1/N) sum_j <g_w^i, a_j g_w^j + b_j g_l^j>, a = -dl/dh_w, b = -dl/dh_l from
  the loss's own ``grad``; ``ent_own`` is the term j = i, ``ent_cross`` the rest, ``dlogpw_dt0``
  their sum (:func:`entanglement`).  For GD at learning rate lr it is the change of log pi(y_w)
  over the first step divided by lr, to first order in lr (``dlogpw_first`` measures that).
* **Edit distance** (Levenshtein, :func:`edit_distance`) and **token overlap**
  (|multiset intersection| / max(|y_w|, |y_l|), :func:`token_overlap`) of the two responses' tokens.
* **Squeezing** (Ren & Sutherland 2024): ``top_other_0`` the probability of the most likely
  response other than y_w and y_l at the start, ``top_other_gain`` that same response's
  probability at the end minus at the start.
"""

from __future__ import annotations

import numpy as np

#: Each per-pair predictor column and its meaning (the results reference reads them from here).
PROBE_MEANINGS: dict[str, str] = {
    "ches": "CHES (Razin et al. 2024) at the start: <h+, h-> - |h+|^2, h+/h- the sums of the last hidden state "
    "(the LM head's input) over the positions predicting y_w's / y_l's tokens (features: phi_y; logits: one-hot).",
    "ches_ln": "Length-normalised CHES: <h+, h->/(|y_w| |y_l|) - |h+|^2/|y_w|^2.",
    "ches_pre": "CHES with the hidden state before the final layer norm (transformer); ches elsewhere.",
    "ches_ln_pre": "Length-normalised CHES before the final layer norm (transformer); ches_ln elsewhere.",
    "hidden_ip": "Inner product of y_w's and y_l's last hidden states at their final token (Razin et al.'s "
    "baseline; features: <phi_w, phi_l>; logits: 0).",
    "gw_sq": "|g_w|^2, g_w = grad_theta log pi(y_w|x) over the trained parameters, at the start.",
    "gw_gl": "<g_w, g_l> (Yuan et al.'s gradient entanglement), at the start.",
    "ent_own": "The pair's own term of d log pi(y_w)/dt at the start under gradient flow of the mean loss: "
    "(a gw_sq + b gw_gl)/N, a = -dl/dh_w, b = -dl/dh_l (per unit time).",
    "ent_cross": "The other pairs' terms: (1/N) sum_{j != i} <g_w^i, a_j g_w^j + b_j g_l^j> (0 for one pair).",
    "dlogpw_dt0": "ent_own + ent_cross: the predicted first-order rate of log pi(y_w) (per unit time).",
    "dlogpw_first": "Measured change of log pi(y_w) over the first optimiser step divided by its lr (the flow: "
    "d log pi(y_w)/dt at t = 0 from the field); NaN if no step was taken.",
    "pair_edit_distance": "Levenshtein distance between y_w's and y_l's tokens (no tokens: NaN).",
    "token_overlap": "|multiset intersection of y_w's and y_l's tokens| / max(|y_w|, |y_l|) (no tokens: NaN).",
    "top_other_0": "Probability at the start of the most likely response other than y_w, y_l (network: exact "
    "over vocab^|y| responses up to 5000, else the best of a beam search).",
    "top_other_gain": "That response's probability at the stop minus at the start (squeezing).",
}
#: The per-pair predictor columns a model that declares them adds to its rows (NaN where one does
#: not exist for the model): see the module docstring and docs/explanation/predictors.md.
PROBE_COLUMNS: tuple[str, ...] = tuple(PROBE_MEANINGS)
#: The predictors every flow's record holds (:data:`flowsim.dynamics.record.PATH_FIELDS`): a model
#: that declares :data:`PROBE_COLUMNS` adds the others (:data:`START_PROBES`) as its own columns.
RECORD_PROBES: tuple[str, ...] = ("top_other_gain",)
START_PROBES: tuple[str, ...] = tuple(c for c in PROBE_COLUMNS if c not in RECORD_PROBES)


def ches_terms(h_w: np.ndarray, h_l: np.ndarray, len_w, len_l) -> tuple[np.ndarray, np.ndarray]:
    """(CHES, length-normalised CHES) from the summed hidden states h+ = ``h_w``, h- = ``h_l`` (..., d).

    ``len_w``, ``len_l`` (...) are |y_w| and |y_l|, the numbers of positions summed.

    >>> [float(v) for v in ches_terms(np.array([1.0, 2.0]), np.array([3.0, 0.0]), 2, 1)]  # <h+,h-> = 3, |h+|^2 = 5
    [-2.0, 0.25]
    """
    ip = np.sum(h_w * h_l, axis=-1)
    sq = np.sum(h_w * h_w, axis=-1)
    len_w, len_l = np.asarray(len_w, dtype=float), np.asarray(len_l, dtype=float)
    return ip - sq, ip / (len_w * len_l) - sq / len_w**2


def entanglement(kernel: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """The own-pair and cross-pair first-order rates of log pi(y_w^i) (module docstring).

    Parameters
    ----------
    kernel : array, shape (..., N, N, 2)
        kernel[..., i, j, k] = <g_w^i, g_k^j>, k = 0 for y_w and 1 for y_l of pair j (the leading
        axes: e.g. the members of an ensemble, each its own dataset's kernel).
    a, b : array, shape (..., N)
        -dl/dh_w and -dl/dh_l of each pair (its own loss's gradient).

    Returns
    -------
    dict
        ``gw_sq``, ``gw_gl`` (the diagonal), ``ent_own``, ``ent_cross``, ``dlogpw_dt0``, each (..., N).

    Examples
    --------
    >>> k = np.array([[[2.0, 1.0], [0.5, 0.0]], [[0.5, -1.0], [3.0, 1.0]]])
    >>> r = entanglement(k, np.array([1.0, 1.0]), np.array([-1.0, -1.0]))
    >>> r["ent_own"].tolist(), r["ent_cross"].tolist()  # (2 - 1)/2, (3 - 1)/2; (0.5 - 0)/2, (0.5 + 1)/2
    ([0.5, 1.0], [0.25, 0.75])
    """
    n = kernel.shape[-2]
    a, b = np.asarray(a)[..., None, :], np.asarray(b)[..., None, :]
    pull = (a * kernel[..., 0] + b * kernel[..., 1]) / n  # (..., i, j): pair j's pull on i
    own = np.diagonal(pull, axis1=-2, axis2=-1).copy()
    cross = np.sum(np.where(np.eye(n, dtype=bool), 0.0, pull), axis=-1)
    return {
        "gw_sq": np.diagonal(kernel[..., 0], axis1=-2, axis2=-1).copy(),
        "gw_gl": np.diagonal(kernel[..., 1], axis1=-2, axis2=-1).copy(),
        "ent_own": own,
        "ent_cross": cross,
        "dlogpw_dt0": own + cross,
    }


def edit_distance(u, v) -> int:
    """The Levenshtein distance between two token sequences (insertions, deletions, substitutions).

    >>> edit_distance([1, 2, 3], [1, 3]), edit_distance("kitten", "sitting"), edit_distance([], [4, 4])
    (1, 3, 2)
    """
    u, v = list(u), list(v)
    row = list(range(len(v) + 1))
    for i, cu in enumerate(u, 1):
        prev, row[0] = row[0], i
        for j, cv in enumerate(v, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (cu != cv))
    return row[-1]


def token_overlap(u, v) -> float:
    """|multiset intersection of the tokens of u and v| / max(|u|, |v|).

    >>> token_overlap([1, 1, 2], [1, 2, 2]), token_overlap([1, 2], [3, 4, 5])
    (0.6666666666666666, 0.0)
    """
    u, v = list(u), list(v)
    common = sum(min(u.count(t), v.count(t)) for t in set(u))
    return common / max(len(u), len(v), 1)


def policy_columns(p, h0, log_ref, loss, grads, phi_w, phi_l) -> dict[str, np.ndarray]:
    """The predictors of independent one-pair starts (tabular logits, log-linear features) in closed form.

    Parameters
    ----------
    p : array (n, K)
        Every response's probability at the starts (y_w, y_l first).
    h0, log_ref : array (n, 2)
        The starts' log-ratios and the references' log-probabilities (for the loss's gradient).
    loss : Loss
    grads : tuple of arrays (n,)
        |g_w|^2 and <g_w, g_l> in closed form.
    phi_w, phi_l : array (..., d)
        The responses' "last hidden states": their feature vectors (one-hot for logits); every
        response is one token, so |y_w| = |y_l| = 1 and there is no state before a final norm.

    Every start is a one-pair dataset: ``ent_cross`` = 0.  No tokens: ``pair_edit_distance`` and
    ``token_overlap`` are NaN.  ``dlogpw_first`` is measured by the caller (it needs the dynamics).
    """
    gw_sq, gw_gl = grads
    ab = -np.asarray(loss.grad(h0, log_ref), dtype=float)
    n = p.shape[:-1]
    own = ab[..., 0] * gw_sq + ab[..., 1] * gw_gl  # entanglement() of a 1 x 1 kernel
    out = {"gw_sq": gw_sq, "gw_gl": gw_gl, "ent_own": own, "ent_cross": np.zeros(n), "dlogpw_dt0": own.copy()}
    ches, ches_ln = ches_terms(phi_w, phi_l, 1.0, 1.0)
    nan = np.full(n, np.nan)
    return out | {
        "ches": np.broadcast_to(ches, n).copy(),
        "ches_ln": np.broadcast_to(ches_ln, n).copy(),
        "ches_pre": np.broadcast_to(ches, n).copy(),
        "ches_ln_pre": np.broadcast_to(ches_ln, n).copy(),
        "hidden_ip": np.broadcast_to(np.sum(phi_w * phi_l, axis=-1), n).copy(),
        "pair_edit_distance": nan,
        "token_overlap": nan.copy(),
        "top_other_0": np.max(p[..., 2:], axis=-1),
    }


def pair_text_columns(chosen: np.ndarray, rejected: np.ndarray) -> dict[str, np.ndarray]:
    """``pair_edit_distance`` and ``token_overlap`` of each pair's responses (N, T) (as floats, (N,))."""
    pairs = list(zip(chosen.tolist(), rejected.tolist(), strict=True))
    return {
        "pair_edit_distance": np.array([float(edit_distance(u, v)) for u, v in pairs]),
        "token_overlap": np.array([token_overlap(u, v) for u, v in pairs]),
    }


__all__ = [
    "PROBE_COLUMNS",
    "PROBE_MEANINGS",
    "RECORD_PROBES",
    "START_PROBES",
    "ches_terms",
    "edit_distance",
    "entanglement",
    "pair_text_columns",
    "policy_columns",
    "token_overlap",
]
