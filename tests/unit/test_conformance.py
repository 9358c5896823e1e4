"""The conformance harness: every registered loss and parameterisation passes these.

A new loss or parameterisation gets these tests by being registered: gradients and
vector-Jacobian products against central differences, finiteness at the domain's
extremes, and the start reproducing the SFT model's probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from flowsim.model import LOSSES, PARAMETERISATIONS, Objective

RNG = np.random.default_rng(20261127)
#: Starts (p_w0, p_l0) with p_w0 + p_l0 < 1, and references, shared by every case.
P0 = np.array([[0.3, 0.6], [0.05, 0.05], [0.7, 0.2], [0.01, 0.9], [0.45, 0.45]])
REF = np.array([[0.3, 0.6], [0.5, 0.2], [1.0, 1.0], [0.2, 0.7], [0.1, 0.1]])


def _central(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Jacobian of f (..., m) at x (..., n) by central differences: shape (..., m, n)."""
    cols = []
    for k in range(x.shape[-1]):
        e = np.zeros(x.shape[-1])
        e[k] = step
        cols.append((f(x + e) - f(x - e)) / (2 * step))
    return np.stack(cols, axis=-1)


@pytest.fixture(params=sorted(LOSSES), ids=str)
def loss(request):
    return LOSSES[request.param]()


@pytest.fixture(params=sorted(PARAMETERISATIONS), ids=str)
def policy(request):
    return PARAMETERISATIONS[request.param]().bind(P0, REF)


def _in_domain(loss, h, log_ref):
    """Points a loss is defined at: a loss reading log-probabilities needs log pi = h + log_ref < 0."""
    return np.minimum(h, -log_ref - 1e-2) if loss.uses_log_probs else h


def test_loss_grad_matches_central_differences(loss):
    log_ref = np.log(RNG.uniform(0.05, 1.0, size=(200, 2)))
    h = _in_domain(loss, RNG.uniform(-3, 3, size=(200, 2)), log_ref)
    assert np.all(np.isfinite(loss.value(h, log_ref))) and np.all(np.isfinite(loss.grad(h, log_ref)))
    fd = _central(lambda z: loss.value(z, log_ref)[..., None], h)[..., 0, :]
    g = loss.grad(h, log_ref)
    # away from kinks, where a central difference straddling one is meaningless
    kinks = loss.kinks(h, log_ref)
    smooth = np.ones(len(h), bool) if kinks is None else np.all(np.abs(kinks) > 1e-4, axis=-1)
    np.testing.assert_allclose(g[smooth], fd[smooth], rtol=1e-5, atol=1e-7)


def test_loss_hessian_is_symmetric_and_matches_grad(loss):
    h = _in_domain(loss, RNG.uniform(-2, 2, size=(50, 2)), 0.0)
    H = loss.hessian(h, 0.0)
    np.testing.assert_allclose(H, np.swapaxes(H, -1, -2), atol=1e-10)
    kinks = loss.kinks(h, 0.0)
    smooth = np.ones(len(h), bool) if kinks is None else np.all(np.abs(kinks) > 1e-3, axis=-1)
    fd = _central(lambda z: loss.grad(z, 0.0), h, step=1e-5)
    np.testing.assert_allclose(H[smooth], fd[smooth], rtol=1e-4, atol=1e-6)


def test_loss_finite_at_the_extremes(loss):
    ends = np.array([-700.0, -30.0, 0.0, 30.0, 700.0])
    h = np.stack(np.meshgrid(ends, ends), -1).reshape(-1, 2)
    for log_ref in (0.0, np.log(1e-300), np.array([np.log(0.5), np.log(1e-300)])):
        with np.errstate(all="raise"):
            # a loss reading log-probabilities sees h + log_ref <= 0 in a normalised model
            hh = np.minimum(h, -np.asarray(log_ref) - 1e-12) if loss.uses_log_probs else h
            assert np.all(np.isfinite(loss.value(hh, log_ref)))
            assert np.all(np.isfinite(loss.grad(hh, log_ref)))


def test_policy_starts_at_the_sft_model(policy):
    p = policy.probs(policy.theta0)
    np.testing.assert_allclose(p[..., :2], P0, rtol=1e-12)
    assert np.all(policy.in_domain(policy.theta0))


def test_policy_vjp_matches_central_differences(policy):
    theta0 = policy.theta0
    theta = theta0 + 0.05 * policy.theta_scale(theta0) * RNG.uniform(-1, 1, size=theta0.shape)
    jac = _central(policy.log_ratios, theta, step=1e-7)  # (..., 2, d)
    g = RNG.normal(size=(*theta.shape[:-1], 2))
    np.testing.assert_allclose(policy.vjp(theta, g), np.einsum("...i,...id->...d", g, jac), rtol=1e-5, atol=1e-7)


def test_objective_grad_matches_central_differences(loss, policy):
    obj = Objective(loss, policy)
    theta = policy.theta0
    fd = _central(lambda t: obj.value(t)[..., None], theta, step=1e-7)[..., 0, :]
    kinks = loss.kinks(obj.h(theta), policy.log_ref)  # a difference straddling a kink means nothing
    smooth = np.ones(len(theta), bool) if kinks is None else np.all(np.abs(kinks) > 1e-4, axis=-1)
    np.testing.assert_allclose(obj.grad(theta)[smooth], fd[smooth], rtol=1e-4, atol=1e-6)


def test_policy_selects_rows(policy):
    one = policy.row(1)
    np.testing.assert_allclose(one.theta0, policy.theta0[1])
    np.testing.assert_allclose(one.log_ratios(one.theta0), policy.log_ratios(policy.theta0)[1])
