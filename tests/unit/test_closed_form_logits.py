"""The closed-form DPO flow of softmax logits against mpmath quadrature and solve_ivp."""

from __future__ import annotations

from types import SimpleNamespace

import mpmath as mp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.special import expit

from flowsim.dynamics.closed_forms.dpo_logits import (
    exact_dpo_logits,
    flows,
    margin_at_time,
    shift_at_scaled_time,
    theta_at_time,
    time_to_margin,
)
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.driver import integrate
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, StopRule
from flowsim.model import Objective
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import SoftmaxLogits

DPS = 40


def _mp_softmax(theta):
    z = [mp.mpf(float(v)) for v in theta]
    top = max(z)
    e = [mp.exp(v - top) for v in z]
    s = mp.fsum(e)
    return [v / s for v in e]


def _mp_flow_to_floor(theta0, log_ref, beta, floor):
    """(time, p) of the DPO logits flow until p_l = floor, at high precision.

    Independent of the module: the shift a where p_l = floor by a bracketed root find on
    the full K-vector softmax, and the time by quadrature of dt/da = 1 / (beta sigmoid(-m(a))).
    """
    with mp.workdps(DPS):
        beta = mp.mpf(beta)
        th = [mp.mpf(float(v)) for v in theta0]

        def p_at(a):
            return _mp_softmax([th[0] + a, th[1] - a, *th[2:]])

        # log p_l(a) - log f decreases in a, with slope -(1 + p_w - p_l): bisect, then polish by Newton
        lo, hi, target = mp.mpf(0), mp.mpf(60), mp.log(mp.mpf(floor))
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if mp.log(p_at(mid)[1]) > target else (lo, mid)
        a_end = (lo + hi) / 2
        for _ in range(8):
            p = p_at(a_end)
            a_end += (mp.log(p[1]) - target) / (1 + p[0] - p[1])
        m0 = beta * ((th[0] - th[1]) - (mp.mpf(float(log_ref[0])) - mp.mpf(float(log_ref[1]))))
        t = mp.quad(lambda a: (1 + mp.exp(m0 + 2 * beta * a)) / beta, [0, a_end])
        return t, p_at(a_end), a_end


def _mp_time_of_shift(theta0, log_ref, beta, a):
    with mp.workdps(DPS):
        beta = mp.mpf(beta)
        m0 = beta * (
            (mp.mpf(float(theta0[0])) - mp.mpf(float(theta0[1])))
            - (mp.mpf(float(log_ref[0])) - mp.mpf(float(log_ref[1])))
        )
        return mp.quad(lambda s: (1 + mp.exp(m0 + 2 * beta * s)) / beta, [0, mp.mpf(float(a))])


def _start(K, seed, ref_kind):
    """Logits of (p_w0, p_l0) = (0.2, 0.5) and random others sharing 0.3, plus a constant (unnormalised)."""
    rng = np.random.default_rng(seed)
    others = rng.normal(scale=1.5, size=K - 2)
    logp = np.concatenate([np.log([0.2, 0.5]), np.log(0.3) + others - np.logaddexp.reduce(others)])
    theta0 = logp + rng.normal()
    log_ref = {"start": logp[:2], "one": np.zeros(2), "fixed": np.log([0.5, 0.02])}[ref_kind]
    return theta0, log_ref


# beta in {0.05, 1, 2}, K in {3, 10, 100}, every kind of reference
MP_CASES = [
    (0.05, 3, "start", 1e-3),
    (1.0, 10, "one", 1e-6),
    (2.0, 100, "fixed", 1e-4),
    (0.1, 10, "start", 0.06),
    (1.0, 3, "fixed", 1e-8),
    (0.05, 100, "one", 1e-2),
]


@pytest.mark.parametrize(("beta", "K", "ref_kind", "floor"), MP_CASES)
def test_stop_time_and_probabilities_match_mpmath_quadrature(beta, K, ref_kind, floor):
    theta0, log_ref = _start(K, seed=K, ref_kind=ref_kind)
    out = exact_dpo_logits(theta0, log_ref, beta, p2_floor=floor, p2_target=min(1.5 * floor, 0.5), t_max=np.inf)
    t_ref, p_ref, _ = _mp_flow_to_floor(theta0, log_ref, beta, floor)
    assert out["status"] == "converged"
    assert abs(out["t_stop"] / float(t_ref) - 1) <= 1e-10
    np.testing.assert_allclose(out["p_final"], [float(v) for v in p_ref], rtol=1e-10)
    # the crossing time t_l at p2_target, the same way
    t_l, _, _ = _mp_flow_to_floor(theta0, log_ref, beta, min(1.5 * floor, 0.5))
    assert abs(out["t_l"] / float(t_l) - 1) <= 1e-10


@pytest.mark.parametrize(
    ("beta", "K", "ref_kind", "t_max"), [(0.05, 3, "one", 7.0), (1.0, 100, "fixed", 0.3), (2.0, 10, "start", 1e6)]
)
def test_timeout_shift_matches_mpmath_quadrature(beta, K, ref_kind, t_max):
    theta0, log_ref = _start(K, seed=K + 1, ref_kind=ref_kind)
    out = exact_dpo_logits(theta0, log_ref, beta, p2_floor=1e-300, t_max=t_max)
    assert out["status"] == "timeout" and out["t_stop"] == t_max
    assert abs(float(_mp_time_of_shift(theta0, log_ref, beta, out["shift"])) / t_max - 1) <= 1e-10


def _mp_shift(tau, m0):
    """u with u + e^m0 expm1(u) = tau, by Newton at high precision."""
    with mp.workdps(60):
        c, tau = mp.exp(mp.mpf(m0)), mp.mpf(tau)
        u = min(tau, mp.log1p(tau / c))
        for _ in range(500):
            new = u - (u + c * mp.expm1(u) - tau) / (1 + c * mp.exp(u))
            if abs(new - u) <= abs(u) * mp.mpf(10) ** -50:
                return new
            u = new
        return u


def test_margin_inversion_is_accurate_for_large_t_and_extreme_m0():
    m0 = np.array([-300.0, -40.0, -3.0, 0.0, 1e-9, 2.0, 40.0, 300.0])
    tau = np.array([1e-12, 1e-6, 0.1, 1.0, 30.0, 1e4, 1e9, 1e15])
    mm, tt = np.meshgrid(m0, tau)
    u = shift_at_scaled_time(tt, mm)
    ref = np.array(
        [[float(_mp_shift(t, m)) for t, m in zip(tr, mr, strict=True)] for tr, mr in zip(tt, mm, strict=True)]
    )
    np.testing.assert_allclose(u, ref, rtol=1e-13, atol=0)
    # margin_at_time and time_to_margin invert each other
    for beta in (0.05, 1.0, 2.0):
        t = tt / (2 * beta**2)
        m = margin_at_time(t, mm, beta)
        np.testing.assert_allclose(m, mm + ref, rtol=1e-13, atol=1e-300)
        # (through m = m0 + u, which keeps u's digits only where u is not tiny against m0)
        ok = ref > 1e-3 * np.maximum(1.0, np.abs(mm))
        np.testing.assert_allclose(time_to_margin(m, mm, beta)[ok], t[ok], rtol=1e-12)


def test_time_to_margin_matches_quadrature_of_dt_dm():
    for beta, m0, m in [(0.05, 0.0, 2.0), (1.0, -5.0, 3.0), (2.0, 1.5, 25.0), (0.1, -0.2, -0.1), (1.0, 0.0, 1e-6)]:
        with mp.workdps(DPS):
            c = 2 * mp.mpf(beta) ** 2
            ref = mp.quad(lambda v, c=c: (1 + mp.exp(v)) / c, [mp.mpf(m0), mp.mpf(m)])
        assert abs(float(time_to_margin(m, m0, beta)) / float(ref) - 1) <= 1e-12


def test_worked_example_standard_reference():
    # m0 = 0: u + e^u - 1 = 2 beta^2 t
    beta, t = 0.1, 50.0
    u = float(margin_at_time(t, 0.0, beta))
    assert abs(u + np.expm1(u) - 2 * beta**2 * t) <= 1e-14


def test_only_the_pair_moves_and_the_normaliser_cancels():
    pol = SoftmaxLogits(K=6).bind([0.2, 0.5], [0.4, 0.3])
    obj = Objective(DPO(beta=0.7), pol)
    theta = pol.theta0 + np.random.default_rng(3).normal(size=6)
    g = obj.grad(theta)
    m = 0.7 * (np.diff(pol.log_ratios(theta)[::-1]))[0]
    s = 0.7 / (1 + np.exp(m))
    np.testing.assert_allclose(g, [-s, s, 0, 0, 0, 0], atol=1e-15)


def _ivp(policy, beta, t_end, events):
    obj = Objective(DPO(beta=beta), policy)
    return solve_ivp(
        lambda t, th: -obj.grad(th), (0.0, t_end), policy.theta0, method="DOP853", rtol=1e-12, atol=1e-14, events=events
    )


@pytest.mark.parametrize(
    ("K", "zipf", "beta", "p0", "ref", "floor"),
    [
        (10, 0.0, 0.1, (0.3, 0.6), (0.3, 0.6), 1e-3),
        (3, 0.0, 1.0, (0.1, 0.3), (0.5, 0.2), 1e-4),
        (100, 1.0, 2.0, (0.05, 0.4), (1.0, 1.0), 1e-2),
    ],
)
def test_matches_solve_ivp_of_the_full_flow(K, zipf, beta, p0, ref, floor):
    pol = SoftmaxLogits(K=K, zipf=zipf).bind(p0, ref)
    p_w_target, p_l_target = 0.5, 0.02

    def at_floor(t, th):
        return pol.log_probs(th)[1] - np.log(floor)

    def w_cross(t, th):
        return pol.log_probs(th)[0] - np.log(p_w_target)

    def l_cross(t, th):
        return pol.log_probs(th)[1] - np.log(p_l_target)

    at_floor.terminal = True
    sol = _ivp(pol, beta, 1e5, [at_floor, w_cross, l_cross])
    assert sol.status == 1
    out = exact_dpo_logits(
        pol.theta0, pol.log_ref, beta, p2_floor=floor, p1_target=p_w_target, p2_target=p_l_target, t_max=1e5
    )
    assert out["status"] == "converged"
    assert abs(out["t_stop"] / sol.t[-1] - 1) <= 1e-7
    np.testing.assert_allclose(out["p_final"], pol.probs(sol.y[:, -1]), rtol=1e-7, atol=1e-300)
    np.testing.assert_allclose(out["theta_final"], sol.y[:, -1], rtol=1e-7, atol=1e-9)
    assert abs(out["t_w"] / sol.t_events[1][0] - 1) <= 1e-7
    assert abs(out["t_l"] / sol.t_events[2][0] - 1) <= 1e-7


def test_loss_target_and_timeout_match_solve_ivp():
    pol = SoftmaxLogits(K=10, zipf=0.5).bind([0.2, 0.4], [0.25, 0.5])
    beta, target = 1.0, 0.05
    obj = Objective(DPO(beta=beta), pol)

    def loss_hit(t, th):
        return obj.value(th) - target

    loss_hit.terminal = True
    sol = _ivp(pol, beta, 1e3, [loss_hit])
    out = exact_dpo_logits(pol.theta0, pol.log_ref, beta, p2_floor=1e-12, loss_target=target, t_max=1e3)
    assert out["status"] == "reached_loss"
    assert abs(out["t_stop"] / sol.t[-1] - 1) <= 1e-7
    assert abs(out["loss_final"] / target - 1) <= 1e-12
    np.testing.assert_allclose(out["p_final"], pol.probs(sol.y[:, -1]), rtol=1e-7)
    # stopped by the clock before the loss target
    t_max = 0.5 * sol.t[-1]
    out = exact_dpo_logits(pol.theta0, pol.log_ref, beta, p2_floor=1e-12, loss_target=target, t_max=t_max)
    sol = _ivp(pol, beta, t_max, None)
    assert out["status"] == "timeout" and out["t_stop"] == t_max
    np.testing.assert_allclose(out["p_final"], pol.probs(sol.y[:, -1]), rtol=1e-7)
    np.testing.assert_allclose(theta_at_time(pol.theta0, pol.log_ref, beta, t_max), sol.y[:, -1], rtol=1e-7)


@pytest.mark.parametrize("tol", [0.05, 0.3])
def test_stationary_stop_is_where_the_gradient_norm_is_the_tolerance(tol):
    """|grad_theta L| = sqrt(2) beta sigmoid(-m) on logits: the stop is where that is tol (and the driver's stop)."""
    pol = SoftmaxLogits(K=10, zipf=0.5).bind([0.2, 0.4], [0.25, 0.5])
    beta = 1.0
    out = exact_dpo_logits(pol.theta0, pol.log_ref, beta, p2_floor=1e-12, stationary_tol=tol, t_max=1e3)
    assert out["status"] == "stationary"
    m = beta * (np.log(out["p_final"][0] / out["p_final"][1]) - (pol.log_ref[0] - pol.log_ref[1]))
    assert np.sqrt(2.0) * beta * expit(-m) == pytest.approx(tol, rel=1e-12)
    ref = integrate(DPO(beta=beta), policy=pol, stop=StopRule(p2_floor=1e-12, stationary_tol=tol, t_max=1e3))
    assert ref.status == "stationary" and out["t_stop"] == pytest.approx(ref.t_stop, rel=1e-7)


def test_seed_example_logits_versus_ratio_plane():
    # From (0.3, 0.6), beta = 0.1, ref = start, stopping at p_l = 0.06.
    p0 = np.array([0.3, 0.6])
    stop = StopRule(p2_floor=0.06, p2_target=0.06)
    ratio = exact_dpo([1.0, 1.0], beta=0.1, ref_w=p0[0], ref_l=p0[1], stop=stop)  # the ratio plane's closed form
    assert ratio["status"] == "converged"
    ratio_pw = float(ratio["p1_final"])  # on the circle x1^2 + x2^2 = 2 of ratios to the start
    np.testing.assert_allclose(ratio_pw, p0[0] * np.sqrt(2 - (0.06 / p0[1]) ** 2), rtol=1e-12)
    for K, zipf in [(3, 0.0), (10, 0.0), (100, 1.0)]:  # only the others' total 0.1 matters
        pol = SoftmaxLogits(K=K, zipf=zipf).bind(p0, p0)
        out = exact_dpo_logits(pol.theta0, pol.log_ref, 0.1, p2_floor=0.06)
        assert out["status"] == "converged"
        assert abs(out["p1_final"] - 0.89) < 0.01 and out["p1_final"] > 2 * ratio_pw  # logits: twice the ratio's
        # by hand: x = e^a solves 0.3 x^2 + 0.1 x - 0.6 (1 - 0.06)/0.06 = 0, p_w = 0.3 x / (0.3 x + 0.1 + 0.6/x)
        x = (-0.1 + np.sqrt(0.01 + 4 * 0.3 * 9.4)) / 0.6
        np.testing.assert_allclose(out["p1_final"], 0.3 * x / (0.3 * x + 0.1 + 0.6 / x), rtol=1e-13)
        np.testing.assert_allclose(out["p2_final"], 0.06, rtol=1e-12)


def test_vectorised_rows_agree_with_single_rows():
    rng = np.random.default_rng(7)
    theta0 = rng.normal(size=(6, 5))
    log_ref = np.log(rng.uniform(0.05, 1, size=(6, 2)))
    beta = np.array([0.05, 0.1, 0.5, 1.0, 2.0, 3.0])
    out = exact_dpo_logits(theta0, log_ref, beta, loss_target=0.3, t_max=50.0)
    for i in range(6):
        one = exact_dpo_logits(theta0[i], log_ref[i], beta[i], loss_target=0.3, t_max=50.0)
        for key, val in one.items():
            np.testing.assert_array_equal(np.asarray(val), np.asarray(out[key][i]))


def test_already_stopped_and_crossing_times():
    theta0 = np.log([[0.95, 1e-7, 0.05 - 1e-7], [0.3, 0.6, 0.1]])
    out = exact_dpo_logits(theta0, np.zeros(2), 0.1, p2_floor=1e-6, p1_target=0.9, p2_target=0.1, t_max=1.0)
    assert out["status"].tolist() == ["converged", "timeout"]
    assert out["t_stop"][0] == 0 and out["t_w"][0] == 0 and out["t_l"][0] == 0
    np.testing.assert_allclose(out["theta_final"][0], theta0[0])
    assert np.isnan(out["t_w"][1]) and np.isnan(out["t_l"][1])  # not reached by t = 1
    out = exact_dpo_logits(theta0[1], np.zeros(2), 0.1, p1_target=1.0)
    assert np.isnan(out["t_w"])  # p_w = 1 is never reached


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": 0.0}, "beta must be"),
        ({"p2_floor": 0.0}, "p2_floor must be in"),
        ({"p1_target": 1.5}, "p1_target"),
        ({"t_max": -1.0}, "t_max must be > 0"),
        ({"loss_target": 0.0}, "loss_target must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exact_dpo_logits(np.log([0.3, 0.6, 0.1]), np.zeros(2), **kwargs)
    with pytest.raises(ValueError, match="t must be >= 0"):
        margin_at_time(-1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match=r"t must be >= 0; got .*-1\.0"):  # one negative time among good ones
        margin_at_time([0.5, -1.0, 2.0], 0.0, 0.1)
    with pytest.raises(ValueError, match=r"t must be >= 0; got .*-1\.0"):
        theta_at_time(np.log([[0.3, 0.6, 0.1]] * 2), np.zeros(2), 0.1, [0.5, -1.0])


@pytest.mark.parametrize(
    ("theta0", "log_ref", "match"),
    [
        (np.log([0.3, 0.6, 0.1]), np.zeros(3), r"log_ref must have shape \(\.\.\., 2\); got shape \(3,\)"),
        (np.log([0.3, 0.6, 0.1]), 0.0, r"log_ref must have shape \(\.\.\., 2\); got shape \(\)"),
        (np.log([0.3, 0.6, 0.1]), [0.0, np.nan], "log_ref must be finite"),
        (np.array([0.0]), np.zeros(2), r"theta0 must have shape \(\.\.\., K\) with K >= 2"),
        (0.0, np.zeros(2), r"theta0 must have shape \(\.\.\., K\) with K >= 2; got shape \(\)"),
        (np.array([0.0, np.inf, 0.0]), np.zeros(2), "theta0 must be finite"),
    ],
)
def test_bad_shapes_are_named(theta0, log_ref, match):
    with pytest.raises(ValueError, match=match):
        exact_dpo_logits(theta0, log_ref, 0.1)


def test_registry_entry_point_gives_the_record_fields():
    pol = SoftmaxLogits(K=4).bind([[0.3, 0.6], [0.1, 0.2]], [[0.3, 0.6], [1.0, 1.0]])
    stop = SimpleNamespace(p2_floor=1e-3, p1_target=0.9, p2_target=0.1, t_max=1e4)
    out = flows(DPO(beta=0.5), pol, stop)
    assert set(out) == set(RESULT_FIELDS) | set(PATH_FIELDS)
    full = exact_dpo_logits(pol.theta0, pol.log_ref, 0.5, p2_floor=1e-3)
    np.testing.assert_array_equal(out["t_stop"], full["t_stop"])
    np.testing.assert_allclose(out["x1_final"] * pol.ref[:, 0], out["p1_final"], rtol=1e-14)
    np.testing.assert_allclose(out["x2_final"] * pol.ref[:, 1], 1e-3, rtol=1e-12)
    assert out["status"].tolist() == ["converged", "converged"]
