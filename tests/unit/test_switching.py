"""Flows across and along a loss's switching surfaces (issue #28): the oracles.

* A linear model h = M theta whose DPO field lowers h_w (phi_l . phi_w > |phi_w|^2): from the
  reference, DPOP's flow slides along h_w = 0, where it reduces to one scalar ODE with a closed
  form (:func:`_sliding_h_l`).
* The ratio plane from the reference: both sides of h_w = 0 raise h_w, so the flow crosses into
  h_w > 0, where DPOP *is* DPO: the flow is DPO's (closed form), and it never slides.
* Log-linear features with similar responses: no closed form; the sliding flow is the limit of the
  flows of DPOP regularised by a smooth max of width eps, integrated at tight tolerance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit, log_expit

from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.record import StopRule
from flowsim.dynamics.switching import Mode, Surfaces
from flowsim.model.losses import DPO, DPOP, Hinge
from flowsim.model.losses.base import Loss
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import LogLinearFeatures
from flowsim.model.parameterisations.base import Policy

TIGHT = SolverOptions(rtol=1e-12, atol=1e-14)


class LinearPolicy(Policy):
    """h = M theta (rows phi_w = (1, 0), phi_l = r (c, sqrt(1 - c^2))), theta0 = 0: a test model."""

    kind, dim, n_responses = "linear", 2, 2

    def __init__(self, r: float, c: float, ref=(0.5, 0.5)) -> None:
        self.m = np.array([[1.0, 0.0], [r * c, r * np.sqrt(1.0 - c * c)]])
        self.log_ref = np.log(np.asarray(ref, dtype=float))
        self.p0 = np.asarray(ref, dtype=float)

    @property
    def theta0(self):
        return np.zeros(2)

    def log_probs(self, theta):
        return np.asarray(theta, dtype=float) @ self.m.T + self.log_ref

    def vjp(self, theta, g):
        return np.asarray(g, dtype=float) @ self.m


def _sliding_h_l(t: float, beta: float, r: float, c: float) -> float:
    """h_l(t) along h_w = 0 from h = 0: dh_l/dt = -beta r^2 (1 - c^2) sigmoid(beta h_l).

    On the surface the Filippov field keeps dh_w/dt = 0: with MM^T = [[1, rc], [rc, r^2]] and
    dL/dh = beta s (-a, 1), that takes a = rc, and then dh_l/dt = -beta s r^2 (1 - c^2) with
    s = sigmoid(-beta (0 - h_l)).  Separating, F(h) = h - exp(-beta h) / beta falls at rate
    k = beta r^2 (1 - c^2).
    """
    k = beta * r * r * (1.0 - c * c)

    def big_f(h):
        return h - np.exp(-beta * h) / beta

    target = big_f(0.0) - k * t
    return brentq(lambda h: big_f(h) - target, -1e3, 0.0, xtol=1e-15, rtol=1e-15)


@pytest.mark.parametrize(("r", "c", "t_max"), [(1.25, 0.9, 3.0), (1.25, 0.9, 40.0), (2.0, 0.7, 10.0)])
def test_dpop_slides_along_h_w_0_as_its_one_dimensional_reduction(r, c, t_max):
    loss = DPOP(beta=0.1)
    pol = LinearPolicy(r, c)
    out = integrate(loss, policy=pol, stop=StopRule(t_max=t_max, p2_floor=1e-300, p2_target=1e-300), options=TIGHT)
    assert out.status == "timeout"
    assert out.t_sliding == pytest.approx(t_max, rel=1e-12)  # it slid from the start to the end
    h = np.log([out.p1_final, out.p2_final]) - pol.log_ref
    assert abs(h[0]) < 1e-13  # on the surface, to rounding
    assert h[1] == pytest.approx(_sliding_h_l(t_max, 0.1, r, c), rel=1e-9, abs=1e-11)
    assert not out.displaced


def test_without_sliding_the_raw_field_is_what_the_issue_met():
    """The one-sided normal components at the start: DPO's side lowers h_w, DPOP's raises it (a sliding surface)."""
    obj = Objective(DPOP(beta=0.1), LinearPolicy(1.25, 0.9))
    surf = Surfaces.of(obj, obj.policy.theta0)
    a_minus, a_plus, *_ = surf.normal_components(obj.policy.theta0, Mode((1.0,)), 0)
    assert a_minus > 0 > a_plus
    assert surf.start_mode(obj.policy.theta0).sliding == 0


def test_dpop_from_the_reference_on_the_ratio_plane_crosses_into_dpo():
    """Both sides raise x1 there, so the flow crosses h_w = 0 at once and is DPO's flow (the closed form's)."""
    stop = StopRule(t_max=1e4)
    for x0 in ([1.0, 1.0], [1.0, 0.3]):
        ref = (0.5, 0.8) if x0[1] == 1.0 else (0.6, 0.9)
        got = integrate(DPOP(beta=0.1), x0, stop, ref=ref)
        want = integrate(DPO(beta=0.1), x0, stop, ref=ref)  # DPO's chart: its closed-form field
        assert got.status == want.status
        assert got.t_sliding == 0.0
        assert got.t_stop == pytest.approx(want.t_stop, rel=1e-7)
        assert got.x1_final == pytest.approx(want.x1_final, rel=1e-7)


@dataclass(frozen=True)
class SmoothDPOP(Loss):
    """DPOP with max(0, -h_w) replaced by eps softplus(-h_w / eps): smooth, -> DPOP as eps -> 0."""

    kind = "smooth_dpop"
    beta: float = 0.1
    dpop_lambda: float = 50.0
    eps: float = 1e-2

    def _m(self, h):
        h = np.asarray(h, dtype=float)
        pen = self.eps * np.logaddexp(0.0, -h[..., 0] / self.eps)
        return self.beta * (h[..., 0] - h[..., 1] - self.dpop_lambda * pen)

    def value(self, h, log_ref=0.0):
        return -log_expit(self._m(h))

    def grad(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        s = expit(-self._m(h))
        a = 1.0 + self.dpop_lambda * expit(-h[..., 0] / self.eps)
        return np.stack([-self.beta * s * a, self.beta * s], axis=-1)


def test_the_sliding_flow_is_the_limit_of_regularised_flows():
    """Features with similar responses (no closed form), sliding from the start: |p(eps) - p| falls like eps."""
    par = LogLinearFeatures(K=5, d=3, cos_wl=0.9, norm_ratio=1.25)
    pol = par.bind(np.array([0.3, 0.05]), np.array([0.3, 0.05]))
    stop = StopRule(t_max=20.0)
    slide = integrate(DPOP(beta=0.1), policy=pol, stop=stop, options=TIGHT)
    assert slide.status == "timeout" and slide.t_sliding == pytest.approx(20.0)
    assert slide.p1_final == pytest.approx(0.3, rel=1e-14)  # on h_w = 0, p_w is the reference's
    errors = []
    for eps in (1e-2, 1e-3, 1e-4):
        reg = integrate(
            SmoothDPOP(eps=eps), policy=pol, stop=stop, options=SolverOptions(method="Radau", rtol=1e-10, atol=1e-12)
        )
        assert reg.status == "timeout", reg.message
        errors.append(max(abs(reg.p1_final - slide.p1_final), abs(reg.p2_final - slide.p2_final)))
    assert errors[0] / errors[1] > 8 and errors[1] / errors[2] > 8  # first order in eps (measured: 10.5, 10.0)
    assert errors[2] < 2e-4


def test_hinge_stops_on_its_surface():
    """The hinge's far side has no field: the flow lands on margin = 1/beta and is stationary there."""
    out = integrate(Hinge(beta=0.5), [0.5, 0.5])
    assert out.status == "stationary"
    assert out.margin_final == pytest.approx(2.0, abs=1e-9)
    assert out.t_sliding == 0.0
    # without the stationary stop it stays there (Filippov's alpha = 0: the far side's zero field) until t_max,
    # in a few pieces (an identically zero residual is not a crossing: issue #28's conformance sweep found it)
    still = integrate(Hinge(beta=0.5), [0.5, 0.5], StopRule(t_max=1e4, stationary_tol=0.0))
    assert still.status == "timeout" and still.margin_final == pytest.approx(2.0, abs=1e-9)
    assert still.t_sliding == pytest.approx(1e4 - out.t_stop, rel=1e-6) and still.nfev < 2 * out.nfev


def test_side_grad_defaults_agree_with_the_exact_pieces():
    """On the surfaces and on the asked side (the default only moves a point on the other side onto the surface)."""
    for loss, on in (
        (DPOP(beta=0.2), np.array([[0.0, 0.3], [0.0, -2.0]])),
        (Hinge(beta=0.3), np.array([[1 / 0.3, 0.0], [0.0, -1 / 0.3]])),
    ):
        n = loss.kink_normals(on)[:, 0, :]
        np.testing.assert_allclose(Loss.kink_normals(loss, on), loss.kink_normals(on), atol=1e-8)
        for side in (-1.0, 1.0):
            h = np.concatenate([on, on + side * 0.5 * n / np.sum(n * n, axis=-1, keepdims=True)])
            side_ = np.full((len(h), 1), side)
            np.testing.assert_allclose(Loss.side_grad(loss, h, side_), loss.side_grad(h, side_), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", [Hinge(beta=0.1), DPOP(beta=0.1)], ids=["hinge", "dpop"])
def test_thresholds_met_at_the_start_are_crossed_at_time_0(loss):
    """p_w >= p1_target and p_l <= p2_target at the start: t_w = t_l = 0 (as without surfaces); the flow moves on."""
    out = integrate(loss, [0.92, 0.05], ref=(1.0, 1.0))
    assert out.t_stop > 0.0 and out.status in ("stationary", "converged")
    assert (out.t_w, out.t_l) == (0.0, 0.0)
    later = integrate(loss, [0.5, 0.3], ref=(1.0, 1.0), stop=StopRule(t_max=10.0))
    assert later.t_stop > 0.0 and not later.t_w == 0.0 and not later.t_l == 0.0


@dataclass(frozen=True)
class TwoKinks(Loss):
    """|h_w - a| + w_l(h_l) with w_l = |h_l - b| (``cross`` False) or 2 max(0, h_l - b) + h_l: two surfaces."""

    kind = "two_kinks"
    a: float = -0.5
    b: float = -1.0
    cross: bool = False

    def value(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        d = h[..., 1] - self.b
        return np.abs(h[..., 0] - self.a) + (2 * np.maximum(0.0, d) + h[..., 1] if self.cross else np.abs(d))

    def grad(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        d = h[..., 1] - self.b
        g_l = np.where(d > 0, 3.0, 1.0) if self.cross else np.sign(d)
        return np.stack([np.sign(h[..., 0] - self.a), g_l], axis=-1)

    def kinks(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        return np.stack([h[..., 0] - self.a, h[..., 1] - self.b], axis=-1)


@pytest.mark.parametrize("x0", [[0.9, 0.5], [0.3, 0.9], [np.exp(-0.5), np.exp(-1.0)]])
def test_sliding_along_two_surfaces_at_once_is_refused_with_its_reason(x0):
    """Where both surfaces attract the flow (each from both sides), it would slide along their intersection.

    Sliding along one, the flow would leave the other and chatter between them (200 switches, seconds;
    measured before the refusal: 3,565 evaluations, 10 s): it is refused on arrival (the last start: on
    the intersection), quickly.
    """
    t0 = time.perf_counter()
    out = integrate(TwoKinks(), x0, StopRule(t_max=10.0))
    assert out.status == "failed"
    assert out.message.startswith("DoubleSliding: the flow reached the intersection of switching surfaces")
    assert out.nfev < 1000 and time.perf_counter() - t0 < 5.0


def test_sliding_along_one_surface_across_another():
    """Both sides of h_l = b lower h_l: the flow sliding along h_w = a crosses it and slides on, to t_max."""
    loss, t_max = TwoKinks(a=-0.2, cross=True), 0.15
    out = integrate(loss, [0.9, 0.9], StopRule(t_max=t_max, p2_floor=1e-300, p2_target=1e-300))
    assert out.status == "timeout", out.message
    h_w, h_l = np.log([out.x1_final, out.x2_final])
    assert h_w == pytest.approx(loss.a, abs=1e-12)  # it slid along h_w = a to the end
    # reaching h_w = a at t_a (d x1/dt = -1/x1: x1^2 falls at rate 2), then sliding until t_max ...
    t_a = (0.9**2 - np.exp(2 * loss.a)) / 2
    assert out.t_sliding == pytest.approx(t_max - t_a, rel=1e-8)
    # ... across h_l = b at t_b > t_a: d x2/dt = -3/x2 above b, -1/x2 below (x2^2 falls at rates 6 and 2)
    t_b = (0.9**2 - np.exp(2 * loss.b)) / 6
    assert t_a < t_b < t_max
    assert h_l == pytest.approx(0.5 * np.log(np.exp(2 * loss.b) - 2 * (t_max - t_b)), rel=1e-8)


def test_dpop_sliding_flow_meets_a_stop():
    """DPOP's switching surface meeting a stop: the loss target, reached while sliding along h_w = 0.

    Along h_w = 0, L = softplus(beta h_l) falls with h_l(t) of the one-dimensional reduction: the
    stop is where that reaches the target.
    """
    r, c, target = 1.25, 0.9, 0.6
    pol = LinearPolicy(r, c)
    out = integrate(DPOP(beta=0.1), policy=pol, stop=StopRule(t_max=1e3, loss_target=target), options=TIGHT)
    assert out.status == "reached_loss"
    h_l = np.log(np.expm1(target)) / 0.1  # softplus(0.1 h_l) = target
    t_hit = brentq(lambda t: _sliding_h_l(t, 0.1, r, c) - h_l, 0.0, 1e3, xtol=1e-14)
    assert out.t_stop == pytest.approx(t_hit, rel=1e-9)
    assert out.t_sliding == pytest.approx(out.t_stop, rel=1e-12)  # it slid all the way to the stop
    assert out.loss_final == pytest.approx(target, rel=1e-9)
    assert abs(np.log(out.p1_final) - pol.log_ref[0]) < 1e-13
