"""Outcomes a model declares impossible by construction: displacement for a loss of the margin alone.

The claim (flowsim.model.parameterisations.base.margin_keeps_sign): on tabular softmax logits and
on the ratio plane, a loss L = F(h_w - h_l) moves log p_w at a rate -c dL/dh_w (c > 0) while the
margin follows a one-dimensional gradient flow of F, so p_w falls at some time exactly when
dL/dh_w > 0 at the start.  Tested here as a derivation (the rates) and against integrated flows,
in both directions: where the model declares it impossible no flow is displaced, and where it
does not, the flow is.
"""

import numpy as np
import pytest

from flowsim.dynamics.driver import integrate
from flowsim.dynamics.record import StopRule
from flowsim.model import LOSSES, Objective
from flowsim.model.parameterisations import RatioPlane, SoftmaxLogits
from flowsim.model.parameterisations.features import LogLinearFeatures

MARGIN_LOSSES = sorted(k for k, cls in LOSSES.items() if cls().margin_only())


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_margin_only_is_declared_exactly(kind):
    """A loss declares margin_only() exactly when L(h + c(1, 1)) = L(h) (both directions)."""
    rng = np.random.default_rng(1)
    h, c = rng.uniform(-3, 3, (300, 2)), rng.uniform(-2, 2, (300, 1))
    log_ref = np.log(rng.uniform(0.05, 0.45, (300, 2)))
    loss = LOSSES[kind]()
    with np.errstate(all="ignore"):
        a, b = loss.value(h, log_ref), loss.value(h + c, log_ref)
    ok = np.isfinite(a) & np.isfinite(b)
    invariant = np.allclose(a[ok], b[ok], rtol=1e-9, atol=1e-12)
    assert loss.margin_only() == invariant, kind


def test_declarations_that_depend_on_the_fields():
    assert LOSSES["dpo"]().margin_only() and not LOSSES["dpo"](f_divergence="js_divergence").margin_only()
    assert LOSSES["dpo"](f_divergence="alpha_divergence", alpha=1.0).margin_only()
    assert LOSSES["simpo"]().margin_only() and not LOSSES["simpo"](cpo_alpha=1.0).margin_only()


@pytest.mark.parametrize("kind", MARGIN_LOSSES)
def test_the_rates_of_the_derivation(kind):
    """On logits: d log p_w/dt = -(1 - p_w + p_l) g_w and d(h_w - h_l)/dt = -2 g_w, g = dL/dh."""
    rng = np.random.default_rng(2)
    p0 = rng.dirichlet([1, 1, 1], 50)[:, :2]
    ref = rng.uniform(0.05, 0.9, (50, 2))
    loss, pol = LOSSES[kind](), SoftmaxLogits(K=6, zipf=1.0).bind(p0, ref)
    theta = pol.theta0
    dtheta = -Objective(loss, pol).grad(theta)
    dlogp = pol.log_probs(theta + 1e-7 * dtheta)[:, :2] - pol.log_probs(theta - 1e-7 * dtheta)[:, :2]
    dlogp /= 2e-7
    g_w = loss.grad(pol.log_ratios(theta), pol.log_ref)[:, 0]
    np.testing.assert_allclose(dlogp[:, 0], -(1 - p0[:, 0] + p0[:, 1]) * g_w, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(dlogp[:, 0] - dlogp[:, 1], -2 * g_w, rtol=1e-5, atol=1e-9)


def _flows(kind: str, model, starts, refs) -> tuple[list[bool], list[bool]]:
    """(declared impossible, displaced) per start, each flow integrated on its own."""
    loss = LOSSES[kind]()
    declared, displaced = [], []
    for p0, ref in zip(starts, refs, strict=True):
        declared.append(model.impossible("displaced", loss, p0[None], ref[None]) is not None)
        r = integrate(loss, policy=model.bind(p0, ref), stop=StopRule(t_max=50.0, margin_target=None))
        assert r.status != "failed", (kind, p0, ref, r.message)
        displaced.append(bool(r.displaced))
    return declared, displaced


@pytest.mark.parametrize("kind", ["dpo", "ipo", "discopop", "hinge"])
@pytest.mark.parametrize("model", [SoftmaxLogits(K=5), RatioPlane()], ids=["logits", "ratio"])
def test_the_declaration_is_exact_against_flows(kind, model):
    """Starts on both sides of the condition (fixed references: margins from -3 to +8): a flow is
    displaced exactly where the model does not declare displacement impossible."""
    rng = np.random.default_rng(3)
    starts = np.array([[0.3, 0.3], [0.05, 0.6], [0.6, 0.05], [0.4, 0.01], [0.2, 0.5], [0.45, 0.003]])
    refs = np.clip(starts * np.exp(rng.uniform(-2, 2, starts.shape)), 1e-3, 1.0)
    refs[3] = [0.01, 0.9]  # a large margin at the start: past IPO's minimiser 1/(2 beta) = 5
    refs[5] = [0.004, 0.6]
    declared, displaced = _flows(kind, model, starts, refs)
    assert [not d for d in declared] == displaced, (declared, displaced)
    if kind == "dpo":
        assert all(declared)  # DPO's dL/dh_w < 0 everywhere
    if kind in ("ipo", "discopop"):
        assert not all(declared)  # both sides are exercised


def test_a_model_without_the_limit_declares_nothing():
    """Shared features couple y_w to y_l: DPO does displace there, so nothing is declared."""
    loss = LOSSES["dpo"]()
    p0 = np.array([[0.3, 0.3]])
    assert LogLinearFeatures(cos_wl=0.9).impossible("displaced", loss, p0, p0) is None
    assert SoftmaxLogits().impossible("displaced", LOSSES["nca_pair"](), p0, p0) is None  # not a margin loss
    assert SoftmaxLogits().impossible("stationary", loss, p0, p0) is None  # an outcome it knows nothing of
    reason = SoftmaxLogits().impossible("displaced", loss, p0, p0)
    assert "margin" in reason and "p_w can only rise" in reason
