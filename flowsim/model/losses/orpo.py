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
lp >= -log 2 and log1p(-exp(lp)) below.  Where pi_theta(y_w) >= 1/2 the odds ratio is computed
as u = e^-r = odds(lp_l) expm1(-lp_w) (see ``ORPO._parts``), which is analytic through
pi_theta(y_w) = 1, the ratio plane's cap: there L = -lp_w is finite (the odds of y_w are
infinite, so the odds-ratio term is 0) and the field is finite, also for the Runge-Kutta stages
that overshoot the cap before the flow stops on it as ``capped``.  pi_theta(y_l) = 1 is where
the loss is truly undefined (the odds of y_l are infinite: L = +inf); under ORPO's flow
h_l only falls (dL/dh_l > 0), so a flow never reaches it.
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

    def infinite_at_certainty(self) -> tuple[bool, bool]:
        # the odds of y_l are infinite at pi(y_l) = 1: log sigmoid(r) = -inf (unless lambda = 0)
        return (False, self.orpo_lambda > 0)

    def _parts(self, h, log_ref):
        """(lp, sigmoid(r), sigmoid(-r), log sigmoid(r), s a_w, a_l), finite through the cap p_w = 1.

        Where p_w < 1/2, r = lo(lp_w) - lo(lp_l) as TRL computes it.  Where p_w >= 1/2 the odds
        ratio is taken through u = e^-r = odds_l (1/p_w - 1) = odds_l expm1(-lp_w): sigmoid(r) =
        1/(1 + u), log sigmoid(r) = -log1p(u) and s a_w = odds_l sigmoid(r) / p_w.  These are
        analytic through p_w = 1 (u = 0: the loss is -lp_w there, finite) and a little beyond
        (u > -1), where a Runge-Kutta stage that overshoots the ratio plane's cap lands; the
        log-odds form gives 0 * inf = NaN at p_w = 1 and NaN past it.
        """
        lp = np.asarray(h, dtype=float) + log_ref
        lp_w, lp_l = lp[..., 0], lp[..., 1]
        with np.errstate(divide="ignore"):  # p_l = 1: infinite odds (refused at a start; lambda = 0 reads none)
            lo_l = lp_l - log1mexp(lp_l)
            a_l = 1.0 / -np.expm1(lp_l)
        low = lp_w < _LOG_HALF
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # p_w < 1/2: the log-odds form (its a_w <= 2, so s a_w cannot overflow)
            r = np.where(low, lp_w - log1mexp(np.minimum(lp_w, _LOG_HALF)), 0.0) - lo_l
            a_w = 1.0 / -np.expm1(np.minimum(lp_w, _LOG_HALF))
            # p_w >= 1/2: the odds-ratio form (|expm1(-lp_w)| <= 1 here, so u is bounded by odds_l)
            odds_l = np.exp(lo_l)
            u = odds_l * np.expm1(-np.maximum(lp_w, _LOG_HALF))
            sig_u = 1.0 / (1.0 + u)
            sig = np.where(low, expit(r), sig_u)
            s = np.where(low, expit(-r), u * sig_u)
            log_sig = np.where(low, log_expit(r), -np.log1p(u))
            q_w = np.where(low, expit(-r) * a_w, odds_l * sig_u * np.exp(-np.maximum(lp_w, _LOG_HALF)))
        return lp, sig, s, log_sig, q_w, a_l

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            lp, _, _, log_sig, _, _ = self._parts(h, log_ref)
            return -lp[..., 0] - _times(self.orpo_lambda, log_sig)

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            _, _, s, _, q_w, a_l = self._parts(h, log_ref)
            lam = self.orpo_lambda
            return np.stack([-1.0 - _times(lam, q_w), _times(lam, s * a_l)], axis=-1)

    def hessian(self, h, log_ref=0.0):
        # with q_w = s a_w: H_ww = lam q_w (1 - q_w), H_wl = -lam sigmoid(r) q_w a_l and
        # H_ll = lam s a_l (sigmoid(r) a_l + a_l - 1), the form above regrouped so that no
        # factor is infinite at p_w = 1
        with np.errstate(under="ignore"):
            _, sig, s, _, q_w, a_l = self._parts(h, log_ref)
            lam = self.orpo_lambda
            H = np.empty((*np.shape(q_w), 2, 2))
            H[..., 0, 0] = _times(lam, q_w * (1.0 - q_w))
            H[..., 0, 1] = H[..., 1, 0] = -_times(lam, sig * q_w * a_l)
            H[..., 1, 1] = _times(lam, s * a_l * (sig * a_l + a_l - 1.0))
            return H


def _times(lam: float, x: np.ndarray) -> np.ndarray:
    """lam * x, exactly 0 for lam = 0 (ORPO is then the NLL alone, finite even where the odds term is not)."""
    return lam * np.asarray(x) if lam else np.zeros(np.shape(x))
