"""ORPO (Hong et al. 2024; TRL's ``ORPOTrainer``), reference-free.

Source: trl/experimental/orpo/orpo_trainer.py (TRL v1.9.0; trl/trainer/orpo_trainer.py up
to v0.25.1, with ``torch.log1p(-torch.exp(.))`` for ``log1mexp``), ``odds_ratio_loss``::

    log_odds = (policy_chosen_logps - policy_rejected_logps) - (
        log1mexp(policy_chosen_logps) - log1mexp(policy_rejected_logps)
    )
    ratio = F.logsigmoid(log_odds)
    losses = self.beta * ratio

and ``get_batch_loss_metrics``: ``loss = policy_nll_loss - losses.mean()``.  Per-token averaged
log-probabilities (``average_log_prob=True``) of one-token responses are lp = h + log_ref.  With
lo(lp) = lp - log(1 - exp(lp)) the log-odds, r = lo(lp_w) - lo(lp_l), s = sigmoid(-r),
a(lp) = dlo/dlp = 1/(1 - exp(lp)) = 1/(-expm1(lp)) and lambda = ``orpo_lambda``:

    L        = -lp_w - lambda log sigmoid(r)
    dL/dh    = (-1 - lambda s a_w, lambda s a_l)
    d2L/dh2  = lambda sigmoid(r) s (a_w, -a_l)(a_w, -a_l)^T - lambda s diag(a_w (a_w - 1), -a_l (a_l - 1))   (analytic)

with a (a - 1) = a odds(lp).  log(1 - exp(lp)) is TRL's ``log1mexp``: log(-expm1(lp)) for
lp >= -log 2 and log1p(-exp(lp)) below.  Defined for lp < 0 (pi_theta < 1: the odds of a
certain response are infinite; lp >= 0 gives NaN, with numpy's invalid-value warning).
``orpo_lambda`` is ORPOConfig's ``beta`` (default 0.1; the paper's lambda, the ORPO code's
``alpha``), renamed so that it is not read as a temperature.

TRL's ``policy_nll_loss`` is the cross-entropy over the chosen sequence's prompt *and*
response tokens ("orpo chosen nll loss is computed over the full prompt and response"); with
a prompt of n tokens it is (NLL(prompt) + NLL(y_w)) / (n + 1).  Here it is the response's
own -log pi_theta(y_w) (the paper's L_SFT), which TRL's equals only with no prompt tokens.
Smooth; no finite minimiser (dL/dh_w < -1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit, log_expit

from flowsim._validation import check_interval
from flowsim.model.losses.base import Loss

_LOG_HALF = -math.log(2.0)


def log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x < 0, branching at -log 2 as TRL's ``log1mexp`` does."""
    x = np.asarray(x, dtype=float)
    with np.errstate(under="ignore"):  # exp(x) -> 0 for x < -745 is benign
        return np.where(x < _LOG_HALF, np.log1p(-np.exp(x)), np.log(-np.expm1(x)))


@dataclass(frozen=True)
class ORPO(Loss):
    """-log pi(y_w) - lambda log sigmoid(log odds(y_w) - log odds(y_l)).

    Parameters
    ----------
    orpo_lambda : float, default 0.1
        ORPOConfig's ``beta`` (the paper's lambda), the odds-ratio term's weight, >= 0.

    Examples
    --------
    >>> float(ORPO().value([0.0, 0.0], [-1.0, -1.0]))  # 1 + 0.1 log 2
    1.0693147180559945
    """

    kind: ClassVar[str] = "orpo"
    uses_log_probs: ClassVar[bool] = True
    orpo_lambda: float = 0.1

    def __post_init__(self) -> None:
        lam = check_interval("orpo_lambda", self.orpo_lambda, 0.0, np.inf, closed="left")
        object.__setattr__(self, "orpo_lambda", lam)

    def _parts(self, h, log_ref):
        lp = np.asarray(h, dtype=float) + log_ref
        lo = lp - log1mexp(lp)
        r = lo[..., 0] - lo[..., 1]
        a = 1.0 / -np.expm1(lp)
        return lp, lo, r, a

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            lp, _, r, _ = self._parts(h, log_ref)
            return -lp[..., 0] - self.orpo_lambda * log_expit(r)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            _, _, r, a = self._parts(h, log_ref)
            ls = self.orpo_lambda * expit(-r)
            return np.stack([-1.0 - ls * a[..., 0], ls * a[..., 1]], axis=-1)

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            _, lo, r, a = self._parts(h, log_ref)
            lam = self.orpo_lambda
            s = expit(-r)
            g = np.stack([a[..., 0], -a[..., 1]], axis=-1)
            H = (lam * expit(r) * s)[..., None, None] * g[..., :, None] * g[..., None, :]
            curv = a * np.exp(lo)  # a (a - 1) = a odds
            H[..., 0, 0] -= lam * s * curv[..., 0]
            H[..., 1, 1] += lam * s * curv[..., 1]
            return H
