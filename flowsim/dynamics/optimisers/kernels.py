r"""What a discrete run evaluates at each step, for the live rows of one bound policy.

An :class:`Evaluator` gives, for parameters theta (m, d) of the m live rows,

    h = log-ratios (m, 2),  p = probabilities of every modelled response (m, K),
    g = grad_theta L (m, d)

and, separately, L (m,) from h and the domain test.  The generic one composes the
:class:`~flowsim.model.parameterisations.Policy` and :class:`~flowsim.model.losses.Loss`
methods exactly as :class:`~flowsim.model.objective.Objective` does (``log_ratios``,
``loss.grad``, ``vjp``, ``probs``).  For the softmax policies (``logits``, ``features``),
which would compute the same softmax three times per step (log-ratios, VJP, probabilities),
a fused evaluator computes it once, *by the same floating-point operations* as
``scipy.special.softmax`` / ``log_softmax`` and the policies' own VJP: for ``logits`` its
results are bitwise those of the generic one for finite theta (``tests/unit/test_optimisers.py``
checks this), it only saves work.  For ``features`` the products with Phi are summed feature
by feature rather than by BLAS, whose choice of kernel (and so the order of the sums) depends
on the batch's shape: a row's numbers are then the same in any batch, and agree with the
policy's to rounding.

``take(rows)`` gives the evaluator of a subset of the rows (the runner drops rows that stop).
"""

from __future__ import annotations

import numpy as np

from flowsim.model.losses.base import Loss
from flowsim.model.parameterisations.base import Policy
from flowsim.model.parameterisations.features import FeaturePolicy
from flowsim.model.parameterisations.logits import LogitsPolicy
from flowsim.model.parameterisations.ratio import RatioPolicy


class Evaluator:
    """The objective's pieces for one bound policy (batch shape (m,)), through the Policy API."""

    def __init__(self, loss: Loss, policy: Policy) -> None:
        self.loss, self.policy = loss, policy
        self.log_ref = np.asarray(policy.log_ref, dtype=float)

    def take(self, rows: np.ndarray) -> Evaluator:
        """The evaluator of rows ``rows`` (integer indices into this batch)."""
        return type(self)(self.loss, self.policy.row(rows))

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h, p, grad L) at theta (m, d), as Objective.value_and_grad and Policy.probs compute them."""
        pol = self.policy
        h = pol.log_ratios(theta)
        g = pol.vjp(theta, self.loss.grad(h, self.log_ref))
        return h, pol.probs(theta), g

    def value(self, h: np.ndarray) -> np.ndarray:
        """L at log-ratios h (m, 2)."""
        return self.loss.value(h, self.log_ref)

    def in_domain(self, theta: np.ndarray) -> np.ndarray:
        return self.policy.in_domain(theta)

    def ratios(self, theta: np.ndarray, h: np.ndarray) -> np.ndarray:
        """x = pi / pi_ref (m, 2) at theta, whose log-ratios this evaluator gave as h."""
        return self.policy.ratios(theta)

    def snap_to_cap(self, theta: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """theta of rows ``rows`` put exactly on the cap p_w = 1 (a model with ``has_cap``), or None."""
        return None


class RatioEvaluator(Evaluator):
    """``ratio``: theta = x; the cap p_w = 1 is x1 = 1/ref_w, the edge of the domain."""

    def snap_to_cap(self, theta, rows):
        out = np.array(theta, dtype=float, copy=True)
        out[:, 0] = np.asarray(self.policy.upper)[rows, 0]  # the level the flow's record snaps to
        return out


def _row_max(z: np.ndarray) -> np.ndarray:
    """np.max(z, axis=-1, keepdims=True), column by column for few columns (faster; a max does not round)."""
    if z.shape[-1] > 32:
        return np.max(z, axis=-1, keepdims=True)
    out = z[:, 0].copy()
    for j in range(1, z.shape[-1]):
        np.maximum(out, z[:, j], out=out)  # NaN propagates, as in np.max
    return out[:, None]


def _finite_rows(theta: np.ndarray) -> np.ndarray:
    """np.all(np.isfinite(theta), axis=-1), faster: a row whose sum is finite has no inf or NaN.

    Only rows whose sum is not finite (an inf, a NaN, or an overflow) are checked entry by entry.
    """
    ok = np.isfinite(np.einsum("ij->i", theta))
    if not ok.all():
        rows = np.flatnonzero(~ok)
        ok[rows] = np.all(np.isfinite(theta[rows]), axis=-1)
    return ok


def _softmax_pieces(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax(z), log_softmax(z)[:, :2]) by scipy's own operations, sharing the exponentials."""
    z_max = _row_max(z)
    tmp = z - z_max
    e = np.exp(tmp)
    s = np.sum(e, axis=-1, keepdims=True)
    return e / s, tmp[:, :2] - np.log(s)


def _pair_vjp(p: np.ndarray, gh: np.ndarray) -> np.ndarray:
    """g . d log softmax(z)[:2] / dz given softmax(z) = p: the operations of ``logits.pair_vjp``."""
    out = -p * (gh[..., 0] + gh[..., 1])[..., None]
    out[..., 0] += gh[..., 0]
    out[..., 1] += gh[..., 1]
    return out


class _SoftmaxFamily(Evaluator):
    """The softmax policies' domain, all finite theta, tested faster where the policy keeps the default."""

    def in_domain(self, theta):
        if type(self.policy).in_domain is Policy.in_domain:
            return _finite_rows(theta)
        return self.policy.in_domain(theta)


class SoftmaxEvaluator(_SoftmaxFamily):
    """``logits``: theta are the logits; one softmax per step."""

    def ratios(self, theta, h):
        return np.exp(h)  # Policy.ratios: exp(log_ratios(theta)), and h is log_ratios(theta) bitwise

    def __call__(self, theta):
        p, lp = _softmax_pieces(theta)
        h = lp - self.log_ref
        return h, p, _pair_vjp(p, self.loss.grad(h, self.log_ref))


def _rowwise_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a (m, n), b (n, k), as n elementwise multiply-adds: each row's result is the same in any batch.

    (BLAS picks kernels, and with them the order of the sums, by the shape, so ``a @ b`` can
    differ in the last bit between a batch and one of its rows.)
    """
    out = a[:, 0, None] * b[0]
    for j in range(1, b.shape[0]):
        out += a[:, j, None] * b[j]
    return out


class FeatureEvaluator(_SoftmaxFamily):
    """``features``: z = b + Phi theta; one softmax per step.

    The products with Phi are summed feature by feature (:func:`_rowwise_matmul`), so a row's
    numbers do not depend on the batch it is in; they agree with the policy's own ``@`` to
    rounding, not bitwise.
    """

    def __init__(self, loss: Loss, policy: Policy) -> None:
        super().__init__(loss, policy)
        self.phi_t = np.ascontiguousarray(policy.phi.T)

    def __call__(self, theta):
        pol = self.policy
        d = pol.n_features
        bias = theta[:, d:] if pol.train_bias else pol.bias
        z = bias + _rowwise_matmul(theta[:, :d], self.phi_t)
        p, lp = _softmax_pieces(z)
        h = lp - self.log_ref
        gz = _pair_vjp(p, self.loss.grad(h, self.log_ref))
        g = _rowwise_matmul(gz, pol.phi)
        return h, p, (np.concatenate([g, gz], axis=-1) if pol.train_bias else g)

    def ratios(self, theta, h):
        return np.exp(h)


def evaluator_for(loss: Loss, policy: Policy) -> Evaluator:
    """The fastest evaluator that is exact for this policy (the generic one for unknown policies)."""
    if type(policy) is LogitsPolicy:
        return SoftmaxEvaluator(loss, policy)
    if type(policy) is FeaturePolicy:
        return FeatureEvaluator(loss, policy)
    if type(policy) is RatioPolicy:
        return RatioEvaluator(loss, policy)
    return Evaluator(loss, policy)


__all__ = ["Evaluator", "FeatureEvaluator", "RatioEvaluator", "SoftmaxEvaluator", "evaluator_for"]
