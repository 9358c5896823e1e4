r"""Log-linear policy: logits z = b + Phi theta over K responses, theta in R^d starting at 0.

The bias b = log p0 is the SFT model's K-vector (y_w, y_l, then K - 2 others holding the
remaining mass, split evenly or by a Zipf law as in :mod:`.logits`), so theta = 0 is the
SFT model.  The feature matrix Phi (K x d) is fixed by the hyperparameters:

* phi_w = e_1, a unit vector;
* phi_l = norm_ratio (cos_wl e_1 + sqrt(1 - cos_wl^2) e_2): norm ``norm_ratio`` and cosine
  ``cos_wl`` to phi_w;
* the other K - 2 rows i.i.d. N(0, other_scale^2 / d) from ``numpy.random.default_rng(seed)``.

It is the same for every start (a sweep's rows share it).  With ``train_bias`` the bias is
trained too: the parameters are (theta, b) in R^(d + K), starting at (0, log p0).

Derivatives: log pi = z - logsumexp(z) and d log pi_i/dz = e_i - softmax(z), so for a
cotangent g on (h_w, h_l), g_z = g_w e_w + g_l e_l - softmax(z) (g_w + g_l) and the
vector-Jacobian product is Phi^T g_z (followed by g_z itself with ``train_bias``).

With cos_wl = 1 and norm_ratio = 1, phi_w = phi_l: theta moves z_w and z_l together, so
with a frozen bias the margin h_w - h_l never changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from flowsim._validation import ParamError, check_int, check_interval, check_positive, check_real
from flowsim.model.parameterisations._softmax import log_softmax, softmax
from flowsim.model.parameterisations.base import Parameterisation, Policy
from flowsim.model.parameterisations.logits import check_starts, check_zipf, pair_vjp, sft_log_probs
from flowsim.model.probes import PROBE_COLUMNS, START_PROBES, policy_columns


class FeaturePolicy(Policy):
    """Log-linear policies z = b + Phi theta at starts theta0 = 0 (and b0 = log p0)."""

    kind = "features"

    def __init__(self, p0: np.ndarray, ref: np.ndarray, bias: np.ndarray, phi: np.ndarray, train_bias: bool) -> None:
        self.p0 = p0
        self.ref = ref
        self.log_ref = np.log(ref)
        self.bias = bias
        self.phi = phi
        self.train_bias = train_bias
        self.n_responses, self.n_features = phi.shape
        self.dim = self.n_features + (self.n_responses if train_bias else 0)

    @property
    def theta0(self) -> np.ndarray:
        zeros = np.zeros((*self.bias.shape[:-1], self.n_features))
        return np.concatenate([zeros, self.bias], axis=-1) if self.train_bias else zeros

    def logits(self, theta: np.ndarray) -> np.ndarray:
        """z = b + Phi theta, shape (..., K)."""
        theta = np.asarray(theta, dtype=float)
        d = self.n_features
        bias = theta[..., d:] if self.train_bias else self.bias
        return bias + theta[..., :d] @ self.phi.T

    def log_probs(self, theta):
        return log_softmax(self.logits(theta))

    def probs(self, theta):
        return softmax(self.logits(theta))

    def vjp(self, theta, g):
        gz = pair_vjp(self.logits(theta), g)
        g_theta = gz @ self.phi
        return np.concatenate([g_theta, gz], axis=-1) if self.train_bias else g_theta

    def row(self, i):
        return FeaturePolicy(self.p0[i], self.ref[i], self.bias[i], self.phi, self.train_bias)


@dataclass(frozen=True)
class LogLinearFeatures(Parameterisation):
    """Log-linear policy over K responses with d features; see the module docstring.

    Parameters
    ----------
    K : int, default 10
        Number of responses, >= 3.
    d : int, default 8
        Feature dimension, >= 2 (phi_w and phi_l span a plane).
    cos_wl : float, default 0.0
        Cosine between phi_w and phi_l, in [-1, 1].
    norm_ratio : float, default 1.0
        |phi_l| / |phi_w|, > 0.
    other_scale : float, default 1.0
        The other responses' features are N(0, other_scale^2 / d) per coordinate; >= 0.
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` drawing the other responses' features; >= 0.
    train_bias : bool, default False
        Train the bias b too (parameters (theta, b), dimension d + K).
    zipf : float, default 0.0
        Zipf exponent splitting the others' SFT mass (0: evenly); >= 0.

    Examples
    --------
    >>> par = LogLinearFeatures(K=3, d=2, cos_wl=0.5, norm_ratio=2.0)
    >>> par.phi[:2].round(6).tolist()
    [[1.0, 0.0], [1.0, 1.732051]]
    >>> pol = par.bind([0.3, 0.6], [0.3, 0.6])
    >>> pol.theta0.tolist(), pol.probs(pol.theta0).round(12).tolist()
    ([0.0, 0.0], [0.3, 0.6, 0.1])
    """

    kind: ClassVar[str] = "features"
    normalised: ClassVar[bool] = True
    #: Every predictor (:meth:`start_columns`); ``top_other_gain`` is the record's.
    probe_columns: ClassVar[tuple[str, ...]] = PROBE_COLUMNS
    extra_columns: ClassVar[tuple[str, ...]] = START_PROBES
    K: int = 10
    d: int = 8
    cos_wl: float = 0.0
    norm_ratio: float = 1.0
    other_scale: float = 1.0
    seed: int = 0
    train_bias: bool = False
    zipf: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "K", check_int("K", self.K, 3))
        set_(self, "d", check_int("d", self.d, 2))
        set_(self, "cos_wl", check_interval("cos_wl", self.cos_wl, -1.0, 1.0, closed="both"))
        set_(self, "norm_ratio", check_positive("norm_ratio", self.norm_ratio))
        other_scale = check_real("other_scale", self.other_scale)
        if other_scale < 0:
            raise ParamError("other_scale", "must be a finite number >= 0", other_scale)
        set_(self, "other_scale", other_scale)
        set_(self, "seed", check_int("seed", self.seed, 0))
        if not isinstance(self.train_bias, bool | np.bool_):
            raise ParamError("train_bias", "must be true or false", self.train_bias)
        set_(self, "train_bias", bool(self.train_bias))
        set_(self, "zipf", check_zipf(self.zipf))

    @cached_property
    def phi(self) -> np.ndarray:
        """The feature matrix Phi, shape (K, d): rows phi_w, phi_l, then the others."""
        phi = np.zeros((self.K, self.d))
        phi[0, 0] = 1.0
        c = self.cos_wl
        phi[1, 0] = self.norm_ratio * c
        phi[1, 1] = self.norm_ratio * np.sqrt(max(0.0, 1.0 - c * c))
        rng = np.random.default_rng(self.seed)
        phi[2:] = rng.normal(size=(self.K - 2, self.d)) * (self.other_scale / np.sqrt(self.d))
        phi.setflags(write=False)
        return phi

    def bind(self, p0, ref):
        p0, ref = check_starts(p0, ref)
        p0, ref = np.broadcast_arrays(p0, ref)
        return FeaturePolicy(p0, ref, sft_log_probs(p0, self.K, self.zipf), self.phi, self.train_bias)

    def start_columns(self, p0, ref, loss):
        """The predictors in closed form: g_y = phi_y - E_p[phi] (theta), followed by e_y - p (the bias,
        with ``train_bias``); a response's "hidden state" is its feature vector phi_y."""
        pol = self.bind(p0, ref)
        p = pol.probs(pol.theta0)
        mean = p @ self.phi
        g_w, g_l = self.phi[0] - mean, self.phi[1] - mean
        gw_sq, gw_gl = np.sum(g_w * g_w, axis=-1), np.sum(g_w * g_l, axis=-1)
        if self.train_bias:
            sq = np.sum(p * p, axis=-1)
            gw_sq, gw_gl = gw_sq + 1.0 - 2.0 * p[..., 0] + sq, gw_gl + sq - p[..., 0] - p[..., 1]
        h0 = pol.log_ratios(pol.theta0)
        return policy_columns(p, h0, pol.log_ref, loss, (gw_sq, gw_gl), self.phi[0], self.phi[1])


__all__ = ["FeaturePolicy", "LogLinearFeatures"]
