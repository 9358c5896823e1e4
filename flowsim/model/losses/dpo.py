"""DPO (the seed paper's equation 1; TRL's ``loss_type="sigmoid"``), with TRL's f-divergences and cDPO smoothing.

With the margin m = beta (h_w - h_l) and s = sigmoid(-m):

    L        = -log sigmoid(m) = softplus(-m)
    dL/dh    = beta s (-1, +1)
    d2L/dh2  = beta^2 s (1 - s) [[1, -1], [-1, 1]]

In the paper's ratio plane (h = log x) this is L = -log(x1^b / (x1^b + x2^b)) with
dL/dx1 = -b s / x1 and dL/dx2 = b s / x2 (its Theorem 1).  Everything goes through the
margin (``np.logaddexp``, ``scipy.special.expit``), so every h gives finite values.

TRL's two generalisations are fields here (one pair, one-token responses, so TRL's sums
over tokens are the log-ratios themselves):

* ``f_divergence`` (TRL ``DPOConfig.f_divergence_type``, trl/trainer/dpo_trainer.py at
  v1.9.0, ``_compute_loss``) replaces each log-ratio by a score S(h) and the margin by
  m = beta (S(h_w) - S(h_l))::

      "reverse_kl"        S(h) = h                                  chosen_scores = chosen_logratios
      "forward_kl"        S(h) = -exp(-h)                           -torch.exp(-chosen_logratios)
      "js_divergence"     S(h) = log sigmoid(h)                     F.logsigmoid(chosen_logratios)
      "alpha_divergence"  S(h) = exp(min((a-1) h, 80)) / (a-1)      torch.exp(clamp(t, max=80)) * coef
                          (S(h) = h where |a - 1| < 1e-6, TRL's fall-back to reverse_kl)

  with a = ``alpha`` (TRL ``f_alpha_divergence_coef``, default 0.5).  The clamp at 80 is
  TRL's ``clamp_max`` for float32/bfloat16 (its table has no float64 entry); it keeps
  exp finite for any a, makes dS/dh = 0 beyond it, and so is a kink at (a-1) h = 80
  (reported by :meth:`DPO.kinks`; at the default a = 0.5 it sits at h = -160).
  TRL < 0.29 (``dpo_loss``) wrote alpha_divergence as (u_l^-a' - u_w^-a')/a' with
  default a' = 1: the same margin as here with a = 1 - a' (up to its own cap_exp clamp).  Its js_divergence margin,
  (h_w - h_l) - (softplus(h_w) - softplus(h_l)), is the one here.
* ``label_smoothing`` eps (cDPO; TRL < 0.29 ``dpo_loss``, trl/trainer/dpo_trainer.py at
  v0.28.0, ``loss_type == "sigmoid"``)::

      losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps

  i.e. L = (1 - eps) softplus(-m) + eps softplus(m), dL/dm = eps sigmoid(m) - (1 - eps) sigmoid(-m),
  d2L/dm2 = sigmoid(m) sigmoid(-m).  TRL >= 0.29 dropped the smoothing from "sigmoid" (it
  kept it only in "robust", "exo_pair" and "aot"); at eps = 0 both read the same.  For
  eps > 0 the loss has a finite minimiser, m = log((1 - eps) / eps).

General form: dL/dh = beta L'(m) (S'(h_w), -S'(h_l)) and
d2L/dh2 = beta^2 L''(m) g g^T + beta L'(m) diag(S''(h_w), -S''(h_l)), g = (S'(h_w), -S'(h_l)):
the Hessian is analytic for every variant.  With the defaults (reverse_kl, eps = 0) the
value, gradient and Hessian are computed by exactly the operations of the plain DPO
above (bit-for-bit the same results).  forward_kl is finite for h >= -709 (exp(-h) must
be a double); everything else for every finite h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_beta, check_choice, check_interval, check_positive
from flowsim.model.losses.base import Loss

#: TRL's ``f_divergence_type`` values.
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
#: TRL's clamp on (alpha - 1) h before the exponential (its float32/bfloat16 ``clamp_max``).
ALPHA_CLAMP = 80.0
#: TRL's tolerance for treating alpha = 1 as reverse_kl.
ALPHA_ONE_TOL = 1e-6


def f_scores(h: np.ndarray, f_divergence: str, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TRL's f-divergence score S(h) of log-ratios h, with S'(h) and S''(h) (all shaped like h)."""
    h = np.asarray(h, dtype=float)
    with np.errstate(under="ignore"):  # exp(-large) -> 0 is benign
        if f_divergence == "forward_kl":
            e = np.exp(-h)
            return -e, e, -e
        if f_divergence == "js_divergence":
            return log_expit(h), expit(-h), -expit(h) * expit(-h)
        if f_divergence == "alpha_divergence" and abs(alpha - 1.0) >= ALPHA_ONE_TOL:
            a = alpha - 1.0
            t = a * h
            e = np.exp(np.minimum(t, ALPHA_CLAMP))
            live = t <= ALPHA_CLAMP  # torch.clamp passes the gradient where t <= max
            return e / a, np.where(live, e, 0.0), np.where(live, a * e, 0.0)
    return h, np.ones_like(h), np.zeros_like(h)


@dataclass(frozen=True)
class DPO(Loss):
    """The DPO loss softplus(-beta (h_w - h_l)), with TRL's f-divergence scores and cDPO smoothing.

    Parameters
    ----------
    beta : float, default 0.1
        Inverse temperature, > 0.  The paper's footnote 3 gives 0.1-0.5 as usual.
    f_divergence : str, default "reverse_kl"
        TRL's ``f_divergence_type``: "reverse_kl", "forward_kl", "js_divergence" or
        "alpha_divergence" (see the module docstring for the scores).
    alpha : float, default 0.5
        TRL's ``f_alpha_divergence_coef`` (> 0), read only by "alpha_divergence".
    label_smoothing : float, default 0.0
        cDPO's probability eps that a label is flipped, in [0, 0.5).

    Examples
    --------
    >>> loss = DPO(beta=0.1)
    >>> float(loss.value([0.0, 0.0]))  # log 2 where h_w = h_l
    0.6931471805599453
    >>> loss.grad([0.0, 0.0]).tolist()
    [-0.05, 0.05]
    """

    kind: ClassVar[str] = "dpo"
    #: no finite minimiser: the batched engine is verified with no optional stop and each target
    batched: ClassVar[tuple[tuple[str, ...], ...] | str] = ((), ("margin_target",), ("loss_target",))
    #: Checked at both ends against the closed forms (ratio plane, logits) and mpmath quadrature.
    beta_range: ClassVar[tuple[float, float]] = (1e-6, 1e6)
    beta: float = 0.1
    f_divergence: str = "reverse_kl"
    alpha: float = 0.5
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_beta(self.beta, self.beta_range))
        object.__setattr__(self, "f_divergence", check_choice("f_divergence", self.f_divergence, F_DIVERGENCES))
        object.__setattr__(self, "alpha", check_positive("alpha", self.alpha))
        eps = check_interval("label_smoothing", self.label_smoothing, 0.0, 0.5, closed="left")
        object.__setattr__(self, "label_smoothing", eps)

    def margin_only(self) -> bool:
        """Reverse KL (alpha = 1 included) scores the margin itself; the other f-divergences do not."""
        return self.f_divergence == "reverse_kl" or (
            self.f_divergence == "alpha_divergence" and abs(self.alpha - 1.0) < ALPHA_ONE_TOL
        )

    @property
    def _plain(self) -> bool:
        """Whether this is the plain DPO (reverse KL, no smoothing), computed by the original operations."""
        return self.f_divergence == "reverse_kl" and self.label_smoothing == 0.0

    def _scores(self, h):
        return f_scores(h, self.f_divergence, self.alpha)

    def margin(self, h: np.ndarray) -> np.ndarray:
        """The DPO margin beta (S(h_w) - S(h_l)), shape (...); beta (h_w - h_l) for reverse_kl."""
        h = np.asarray(h, dtype=float)
        if self.f_divergence == "reverse_kl":
            return self.beta * (h[..., 0] - h[..., 1])
        s = self._scores(h)[0]
        return self.beta * (s[..., 0] - s[..., 1])

    def value(self, h, log_ref=0.0):
        if self._plain:
            return np.logaddexp(0.0, -self.margin(h))
        m, eps = self.margin(h), self.label_smoothing
        with np.errstate(under="ignore"):
            return -(1.0 - eps) * log_expit(m) - eps * log_expit(-m)

    def dvalue(self, m: np.ndarray) -> np.ndarray:
        """dL/dm = eps sigmoid(m) - (1 - eps) sigmoid(-m) at margins m."""
        eps = self.label_smoothing
        with np.errstate(under="ignore"):
            return eps * expit(m) - (1.0 - eps) * expit(-m)

    def grad(self, h, log_ref=0.0):
        if self._plain:
            bs = self.beta * expit(-self.margin(h))
            return np.stack([-bs, bs], axis=-1)
        _, ds, _ = self._scores(h)
        with np.errstate(under="ignore"):
            c = self.beta * self.dvalue(self.margin(h))
            return np.stack([c * ds[..., 0], -c * ds[..., 1]], axis=-1)

    def hessian(self, h, log_ref=0.0):
        m = self.margin(h)
        if self._plain:
            c = self.beta**2 * expit(-m) * expit(m)  # s (1 - s), each factor without cancellation
            return c[..., None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
        _, ds, d2s = self._scores(h)
        with np.errstate(under="ignore"):
            g = np.stack([ds[..., 0], -ds[..., 1]], axis=-1)
            curv = self.beta**2 * expit(-m) * expit(m)
            slope = self.beta * self.dvalue(m)
            H = curv[..., None, None] * g[..., :, None] * g[..., None, :]
            H[..., 0, 0] += slope * d2s[..., 0]
            H[..., 1, 1] -= slope * d2s[..., 1]
        return H

    def log_hessian(self, h, log_ref=0.0):
        """H - diag(dL/dh) without cancellation (plain DPO): with s = sigmoid(-m), b = beta,

        [0, 0] = b s (1 + b (1 - s)),  [0, 1] = -b^2 s (1 - s),  [1, 1] = b s (b (1 - s) - 1),
        the last bracket from whichever of s and 1 - s is small (it cancels near x2 = 0).
        """
        if not getattr(self, "_plain", True):
            return super().log_hessian(h, log_ref)
        b, m = self.beta, self.margin(h)
        s, sbar = expit(-m), expit(m)  # s and 1 - s, each without cancellation
        bs = b * s
        d00 = bs * (1.0 + b * sbar)
        d01 = -bs * (b * sbar)
        d11 = bs * np.where(s < 0.5, (b - 1.0) - b * s, b * sbar - 1.0)
        return np.stack([np.stack([d00, d01], -1), np.stack([d01, d11], -1)], -2)

    def kinks(self, h, log_ref=0.0):
        """Where TRL's clamp (alpha - 1) h <= 80 binds (alpha_divergence only), shape (..., 2); else None."""
        if self.f_divergence != "alpha_divergence" or abs(self.alpha - 1.0) < ALPHA_ONE_TOL:
            return None
        return (self.alpha - 1.0) * np.asarray(h, dtype=float) - ALPHA_CLAMP
