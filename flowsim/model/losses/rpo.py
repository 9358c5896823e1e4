"""RPO: DPO plus a negative log-likelihood on the chosen response (Pang et al. 2024 v3; TRL's ``rpo_alpha``).

Source: trl/trainer/dpo_trainer.py at v0.28.0 (``get_batch_loss_metrics`` and ``concatenated_forward``)::

    output["nll_loss"] = F.cross_entropy(
        torch.flatten(chosen_logits, end_dim=1), torch.flatten(chosen_labels, end_dim=1), ignore_index=0
    )
    ...
    if self.args.rpo_alpha is not None:
        losses = losses + self.args.rpo_alpha * model_output["nll_loss"]  # RPO loss from V3 of the paper

With one one-token chosen response the cross-entropy is -log pi_theta(y_w) = -(h_w + log_ref_w)
(TRL >= 0.29 removed ``rpo_alpha``; its replacement ``loss_type=["sigmoid", "sft"]``,
``loss_weights=[1, rpo_alpha]`` is the same sum).  So, with D the :class:`~flowsim.model.losses.dpo.DPO`
loss of the same beta, f-divergence, alpha and label smoothing (TRL v0.28.0 added the NLL to
whatever ``loss_type`` gave; "sigmoid" is the one taken here):

    L        = D(h) - rpo_alpha (h_w + log_ref_w)
    dL/dh    = dD/dh + (-rpo_alpha, 0)
    d2L/dh2  = d2D/dh2                        (analytic)

``rpo_alpha`` defaults to 1.0, the paper's recommendation (TRL's default ``None`` means "no NLL
term", i.e. plain DPO).  Smooth (kinks only where DPO's alpha-divergence clamp binds); no finite
minimiser: dL/dh_w <= -rpo_alpha < 0, so pi_theta(y_w) rises until the model's own limit
(pi_theta(y_w) = 1, h_w = -log_ref_w).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim._validation import check_beta, check_interval
from flowsim.model.losses.base import Loss
from flowsim.model.losses.dpo import DPO


@dataclass(frozen=True)
class RPO(Loss):
    """DPO(h) + rpo_alpha * (-log pi_theta(y_w)).

    Parameters
    ----------
    beta, f_divergence, alpha, label_smoothing
        As for :class:`~flowsim.model.losses.dpo.DPO` (TRL's ``beta``, ``f_divergence_type``,
        ``f_alpha_divergence_coef``, ``label_smoothing``), with the same defaults.
    rpo_alpha : float, default 1.0
        TRL's ``rpo_alpha``, the NLL weight, >= 0.

    Examples
    --------
    >>> RPO().grad([0.0, 0.0], [-1.0, -1.0]).tolist()
    [-1.05, 0.05]
    """

    kind: ClassVar[str] = "rpo"
    uses_log_probs: ClassVar[bool] = True
    beta: float = 0.1
    rpo_alpha: float = 1.0
    f_divergence: str = "reverse_kl"
    alpha: float = 0.5
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_beta(self.beta, self.beta_range)  # its own range, not its DPO part's
        dpo = DPO(self.beta, self.f_divergence, self.alpha, self.label_smoothing)  # validates those four
        for name in ("beta", "f_divergence", "alpha", "label_smoothing"):
            object.__setattr__(self, name, getattr(dpo, name))
        rpo_alpha = check_interval("rpo_alpha", self.rpo_alpha, 0.0, np.inf, closed="left")
        object.__setattr__(self, "rpo_alpha", rpo_alpha)

    @property
    def dpo(self) -> DPO:
        """The DPO part."""
        return DPO(self.beta, self.f_divergence, self.alpha, self.label_smoothing)

    def value(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            h = np.asarray(h, dtype=float)
            log_pw = (h + log_ref)[..., 0]
            return self.dpo.value(h, log_ref) - self.rpo_alpha * log_pw

    def grad(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            h = np.asarray(h, dtype=float)
            g = self.dpo.grad(h, log_ref)
            g = np.broadcast_to(g, np.broadcast_shapes(g.shape, np.shape(log_ref))).copy()
            g[..., 0] -= self.rpo_alpha
            return g

    def hessian(self, h, log_ref=0.0):
        with np.errstate(under="ignore"):
            return self.dpo.hessian(h, log_ref)

    def kinks(self, h, log_ref=0.0):
        return self.dpo.kinks(h, log_ref)
