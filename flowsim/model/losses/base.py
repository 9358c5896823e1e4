"""The :class:`Loss` interface: a preference loss as a function of two log-ratios.

A loss here sees one preference pair through h = (h_w, h_l), the log-ratios
h_w = log pi_theta(y_w|x) - log pi_ref(y_w|x) and h_l = log pi_theta(y_l|x) - log pi_ref(y_l|x),
and, for the losses that read them (SimPO, ORPO, RPO, ...), the reference's log-probabilities
``log_ref`` = (log pi_ref(y_w|x), log pi_ref(y_l|x)), so that log pi_theta = h + log_ref.
Nothing here knows how the policy is parameterised: that is the job of
:mod:`flowsim.model.parameterisations`, and :class:`flowsim.model.Objective` composes the two.

Contract (every registered loss passes ``tests/unit/test_conformance.py``):

1. A frozen dataclass whose fields are its hyperparameters (floats or strings), validated
   in ``__post_init__`` with messages that name the field, the rule and the value.
2. ``value(h, log_ref)`` has shape (...) and ``grad(h, log_ref)`` shape (..., 2) for h of
   shape (..., 2) and ``log_ref`` broadcastable to it; ``grad`` is dL/dh (= dL/dlog pi).
3. Both are finite for h in [-700, 700]^2 and log_ref down to log(1e-300): computed through
   softplus / log-sigmoid / expit forms, never through an exponential that can overflow.
4. ``hessian`` (for implicit solvers) defaults to a central difference of ``grad``; a loss
   overrides it where the analytic form is cheap.
5. A loss whose gradient jumps (a hinge, a max) declares its *switching surfaces* by ``kinks``:
   functions s_k(h, log_ref), one per surface, whose zero sets are where the gradient jumps;
   on each side of a surface the loss is one smooth piece.  ``kink_normals`` gives ds_k/dh and
   ``side_grad`` the gradient of the piece on a chosen side of each surface, continued to the
   surface itself (both default to finite differences; a loss overrides them where exact forms
   are cheap).  The driver treats each surface as an event: it lands on it and, from the two
   one-sided fields, crosses it, slides along it (Filippov) or leaves it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import ClassVar

import numpy as np

from flowsim._validation import BETA_RANGE


class Loss(ABC):
    """A preference loss L(h; log_ref) of the log-ratios h = (h_w, h_l)."""

    #: Registry name, as written in experiment files (``kind = "dpo"``).
    kind: ClassVar[str]
    #: Whether the loss reads log pi_theta itself (so h + log_ref), not only h.
    uses_log_probs: ClassVar[bool] = False
    #: The betas it accepts (those that take a beta): where its flows were measured to end.
    beta_range: ClassVar[tuple[float, float]] = BETA_RANGE
    #: The stop-rule shapes (the optional stops set besides the stationary one) under which "auto" may run
    #: it on the batched engine: each is checked row by row against the driver, for every model, by
    #: tests/unit/test_batched.py.  Without a margin target most losses run to a finite minimiser, where
    #: the flow is stiff and the driver switches to LSODA, so only that shape by default.  A string instead
    #: says why the batched engine is never chosen for it (the driver then integrates it).
    batched: ClassVar[tuple[tuple[str, ...], ...] | str] = (("margin_target",),)
    #: Whether L depends on h only through the margin h_w - h_l, at every value of its fields
    #: (a loss for which that holds only at some overrides :meth:`margin_only`).
    reads_margin_only: ClassVar[bool] = False

    def margin_only(self) -> bool:
        """Whether L(h) = F(h_w - h_l): then dL/dh_l = -dL/dh_w everywhere, which some models'
        limits rest on (:meth:`flowsim.model.parameterisations.base.Parameterisation.impossible`).
        Checked for every loss by ``tests/unit/test_impossible.py`` (invariance under h -> h + c(1, 1))."""
        return self.reads_margin_only

    @abstractmethod
    def value(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """Loss values, shape (...)."""

    @abstractmethod
    def grad(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """dL/dh, shape (..., 2)."""

    def hessian(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """d^2L/dh^2, shape (..., 2, 2): a central difference of :meth:`grad` unless overridden.

        The step is 2^-17 (about eps^(1/3)) absolute in h, which is a log coordinate, so
        relative in the probabilities; the result is symmetrised.
        """
        h = np.asarray(h, dtype=float)
        step = 2.0**-17
        cols = []
        for i in range(2):
            e = np.zeros(2)
            e[i] = step
            cols.append((self.grad(h + e, log_ref) - self.grad(h - e, log_ref)) / (2 * step))
        jac = np.stack(cols, axis=-1)
        return 0.5 * (jac + np.swapaxes(jac, -1, -2))

    def log_hessian(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """H - diag(dL/dh), shape (..., 2, 2): the Hessian in x = e^h scaled by x_i x_j.

        The ratio plane's Hessian is this divided by x_i x_j.  Its diagonal is a difference
        that can cancel (DPO near x2 = 0); a loss overrides this where it has a stable form.
        """
        out = np.array(self.hessian(h, log_ref), dtype=float)
        g = self.grad(h, log_ref)
        out[..., 0, 0] -= g[..., 0]
        out[..., 1, 1] -= g[..., 1]
        return out

    def infinite_at_certainty(self) -> tuple[bool, bool]:
        """Whether the loss is infinite where pi_theta(y_w) = 1, and where pi_theta(y_l) = 1.

        Declared by a loss that reads log(1 - pi) (ORPO's odds): a model that can start there
        (the ratio plane, whose probabilities are in (0, 1]) refuses such starts when the
        experiment is read, with this reason, rather than record a flow that cannot begin.
        """
        return (False, False)

    def kinks(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray | None:
        """Functions (..., k) whose sign changes where the gradient jumps, or None (smooth)."""
        return None

    def kink_normals(self, h: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """ds_k/dh of the surfaces (:meth:`kinks`), shape (..., k, 2): a central difference unless overridden."""
        h = np.asarray(h, dtype=float)
        step = 2.0**-20
        cols = []
        for i in range(2):
            e = np.zeros(2)
            e[i] = step
            cols.append((self.kinks(h + e, log_ref) - self.kinks(h - e, log_ref)) / (2 * step))
        return np.stack(cols, axis=-1)

    def side_grad(self, h: np.ndarray, side: np.ndarray, log_ref: np.ndarray | float = 0.0) -> np.ndarray:
        """dL/dh of the smooth piece on side ``side`` (..., k) (+1: s_k > 0, -1: s_k < 0) of each surface.

        By default the gradient at h moved along each surface's normal to a point 2^-30 (in s_k) on
        the asked side, where h is closer to that surface or on its other side: first order in that
        distance; a loss with an exact form for its pieces overrides this.
        """
        h = np.array(h, dtype=float)
        s, n = self.kinks(h, log_ref), self.kink_normals(h, log_ref)
        side = np.broadcast_to(np.asarray(side, dtype=float), s.shape)
        gap = 2.0**-30
        for k in range(s.shape[-1]):
            move = side[..., k] * s[..., k] < gap
            nk = n[..., k, :]
            shift = (side[..., k] * gap - s[..., k]) / np.maximum(np.sum(nk * nk, axis=-1), 1e-300)
            h = h + np.where(move, shift, 0.0)[..., None] * nk
        return self.grad(h, log_ref)

    def params(self) -> dict[str, object]:
        """The loss's hyperparameters by name, as they go into a results table."""
        return asdict(self)  # type: ignore[call-overload]
