r"""Tabular softmax: theta in R^K is the vector of logits of K responses, pi = softmax(theta).

The K responses are y_w, y_l and K - 2 others, which share the SFT model's remaining mass
1 - p_w0 - p_l0: evenly (``zipf = 0``) or by a Zipf law, the others ranked 1..K-2 with mass
proportional to 1/rank^zipf.  The start is theta0 = log p0, the full K-vector (so
logsumexp(theta0) = 0 and the start is the SFT model exactly).

    log pi = theta - logsumexp(theta)
    h      = log pi[:2] - log_ref
    d log pi_i / d theta = e_i - softmax(theta)

so for a cotangent g = (g_w, g_l) on (h_w, h_l) the vector-Jacobian product is

    g . dh/dtheta = g_w e_w + g_l e_l - softmax(theta) (g_w + g_l).

With DPO the flow has a closed form: :mod:`flowsim.dynamics.closed_forms.dpo_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

from flowsim._validation import ParamError, check_int, check_points, check_real
from flowsim.model.parameterisations._softmax import log_softmax, softmax
from flowsim.model.parameterisations.base import Parameterisation, Policy, margin_keeps_sign
from flowsim.model.probes import PROBE_COLUMNS, START_PROBES, policy_columns


def check_zipf(value: object) -> float:
    """The Zipf exponent of the other responses' masses: a finite number >= 0."""
    value = check_real("zipf", value)
    if value < 0:
        raise ParamError("zipf", "must be a finite number >= 0", value)
    return value


def check_starts(p0: object, ref: object) -> tuple[np.ndarray, np.ndarray]:
    """Starts (p_w0, p_l0) with both > 0 and p_w0 + p_l0 < 1, and references in (0, 1]."""
    p0 = check_points("p0", p0)
    ref = check_points("ref", ref)
    bad = ~np.all(p0 > 0, axis=-1)
    if np.any(bad):
        raise ValueError(
            f"p0 must have p_w0 > 0 and p_l0 > 0; got {p0[bad][0].tolist() if p0.ndim > 1 else p0.tolist()}"
        )
    bad = ~(p0.sum(axis=-1) < 1.0)
    if np.any(bad):
        got = p0[bad][0].tolist() if p0.ndim > 1 else p0.tolist()
        raise ValueError(
            f"p0 must have p_w0 + p_l0 < 1 (a normalised model keeps mass for the other responses); got {got}"
        )
    bad = ~np.all((ref > 0) & (ref <= 1), axis=-1)
    if np.any(bad):
        raise ValueError(f"ref must be in (0, 1]; got {ref[bad][0].tolist() if ref.ndim > 1 else ref.tolist()}")
    return p0, ref


def other_log_weights(n_others: int, zipf: float) -> np.ndarray:
    """log of the shares of the remaining mass of the others (ranks 1..n): proportional to 1/rank^zipf.

    >>> np.exp(other_log_weights(3, 1.0)).round(4).tolist()  # (1, 1/2, 1/3) / (11/6)
    [0.5455, 0.2727, 0.1818]
    """
    logw = -zipf * np.log(np.arange(1, n_others + 1, dtype=float))
    return logw - logsumexp(logw)


def sft_log_probs(p0: np.ndarray, K: int, zipf: float = 0.0) -> np.ndarray:
    """log p0 of all K responses, shape (..., K): (log p_w0, log p_l0, the others' logs).

    The others hold 1 - p_w0 - p_l0, split evenly (zipf = 0) or by the Zipf law.

    >>> np.exp(sft_log_probs(np.array([0.3, 0.6]), 3)).round(12).tolist()
    [0.3, 0.6, 0.1]
    """
    p0 = np.asarray(p0, dtype=float)
    log_rest = np.log1p(-(p0[..., 0] + p0[..., 1]))
    others = log_rest[..., None] + other_log_weights(K - 2, zipf)
    return np.concatenate([np.log(p0), others], axis=-1)


def pair_vjp(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g . d(log softmax(z)[:2])/dz for logits z (..., K) and a cotangent g (..., 2): shape (..., K)."""
    g = np.asarray(g, dtype=float)
    p = softmax(z)
    out = -p * (g[..., 0] + g[..., 1])[..., None]
    out[..., 0] += g[..., 0]
    out[..., 1] += g[..., 1]
    return out


class LogitsPolicy(Policy):
    """Softmax policies starting at theta0 = log p0 (K-vectors, batch shape of ``p0``)."""

    kind = "logits"

    def __init__(self, p0: np.ndarray, ref: np.ndarray, log_p0: np.ndarray) -> None:
        self.p0 = p0
        self.ref = ref
        self.log_ref = np.log(ref)
        self.log_p0 = log_p0
        self.n_responses = self.dim = log_p0.shape[-1]

    @classmethod
    def from_starts(cls, p0: object, ref: object, K: int, zipf: float) -> LogitsPolicy:
        p0, ref = check_starts(p0, ref)
        p0, ref = np.broadcast_arrays(p0, ref)
        return cls(p0, ref, sft_log_probs(p0, K, zipf))

    @property
    def theta0(self) -> np.ndarray:
        return self.log_p0.copy()

    def log_probs(self, theta):
        return log_softmax(np.asarray(theta, dtype=float))

    def probs(self, theta):
        return softmax(np.asarray(theta, dtype=float))

    def vjp(self, theta, g):
        return pair_vjp(np.asarray(theta, dtype=float), g)

    def row(self, i):
        return LogitsPolicy(self.p0[i], self.ref[i], self.log_p0[i])


@dataclass(frozen=True)
class SoftmaxLogits(Parameterisation):
    """Tabular softmax over K responses: y_w, y_l and K - 2 others; theta0 = log p0.

    Parameters
    ----------
    K : int, default 10
        Number of responses, >= 3.
    zipf : float, default 0.0
        Exponent of the Zipf law splitting the others' mass 1 - p_w0 - p_l0 (rank r gets a
        share proportional to 1/r^zipf); 0 splits it evenly.  >= 0.

    Examples
    --------
    >>> pol = SoftmaxLogits(K=3).bind([0.3, 0.6], [0.3, 0.6])
    >>> pol.probs(pol.theta0).round(12).tolist(), pol.log_ratios(pol.theta0).round(12).tolist()
    ([0.3, 0.6, 0.1], [0.0, 0.0])
    >>> pol.vjp(pol.theta0, [-1.0, 1.0]).round(12).tolist()  # e_l - e_w: the normaliser cancels
    [-1.0, 1.0, 0.0]
    """

    kind: ClassVar[str] = "logits"
    normalised: ClassVar[bool] = True
    #: Every predictor (:meth:`start_columns`); ``top_other_gain`` is the record's.
    probe_columns: ClassVar[tuple[str, ...]] = PROBE_COLUMNS
    extra_columns: ClassVar[tuple[str, ...]] = START_PROBES
    K: int = 10
    zipf: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", check_int("K", self.K, 3))
        object.__setattr__(self, "zipf", check_zipf(self.zipf))

    def bind(self, p0, ref):
        return LogitsPolicy.from_starts(p0, ref, self.K, self.zipf)

    def start_columns(self, p0, ref, loss):
        """The predictors in closed form: g_y = grad_theta log pi_y = e_y - p (theta = the logits), so
        |g_w|^2 = 1 - 2 p_w + |p|^2 and <g_w, g_l> = |p|^2 - p_w - p_l; a response's "hidden state" is
        its one-hot vector (CHES = -1, ``hidden_ip`` = 0)."""
        pol = self.bind(p0, ref)
        p = pol.probs(pol.theta0)
        sq = np.sum(p * p, axis=-1)
        grads = (1.0 - 2.0 * p[..., 0] + sq, sq - p[..., 0] - p[..., 1])
        eye = np.eye(self.K)
        return policy_columns(p, pol.log_ratios(pol.theta0), pol.log_ref, loss, grads, eye[0], eye[1])

    def impossible(self, outcome, loss, p0, ref):
        """Displacement, for a margin loss whose dL/dh_w is <= 0 at every start (:func:`margin_keeps_sign`).

        With g = dL/dh and g_l = -g_w, the flow is d theta/dt = -g_w (e_w - e_l), so
        d log p_w/dt = -(1 - p_w + p_l) g_w and d(h_w - h_l)/dt = -2 g_w: only theta_w and
        theta_l move, and the margin follows a gradient flow of L in one variable.
        """
        if outcome != "displaced":
            return None
        how = "on tabular softmax logits d log p_w/dt = -(1 - p_w + p_l) dL/dh_w, whose sign the margin's flow keeps"
        return margin_keeps_sign(loss, p0, ref, how)


__all__ = ["LogitsPolicy", "SoftmaxLogits", "other_log_weights", "sft_log_probs"]
