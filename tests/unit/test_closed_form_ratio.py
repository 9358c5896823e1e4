"""The closed-form flow: against quadrature, hand values, the conservation law and its own edges."""

import mpmath
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flowsim.dynamics.closed_forms import closed_form
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo, flow_time
from flowsim.dynamics.record import RESULT_FIELDS, StopRule
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import RatioPlane


def quad_time(s0, s1, r2, beta):
    """dt/dS = (1 + (S / (R^2 - S))^(beta/2)) / (2 beta), integrated by tanh-sinh quadrature at 30 digits."""
    with mpmath.workdps(30):
        b, r2 = mpmath.mpf(beta), mpmath.mpf(r2)
        f = lambda s: (1 + (s / (r2 - s)) ** (b / 2)) / (2 * b)
        return float(mpmath.quad(f, [mpmath.mpf(s0), mpmath.mpf(s1)]))


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5, 1.0, 1.5, 1.9])
@pytest.mark.parametrize(
    ("s0", "s1", "r2"), [(0.01, 0.5, 1.0), (0.3, 0.99, 1.0), (0.6, 1.0 - 1e-10, 1.0), (1e-6, 1.9, 2.0)]
)
def test_flow_time_against_quadrature(beta, s0, s1, r2):
    t = flow_time(s0, r2 - s0, s1, r2 - s1, r2, beta)
    assert t == pytest.approx(quad_time(s0, s1, r2, beta), rel=1e-9)


def test_beta_one_by_hand():
    # beta = 1, R = 1: dS/dt = 2 / (1 + sqrt(S/(1-S))); with S = sin^2(th) the time from 0 to 1/2 is
    # int_0^{pi/4} (1 + tan th) sin th cos th dth = [th/2 - sin(2th)/4] ... = 1/4 + (pi/4 - 1/2)/2 / 1 -> pi/8.
    t = flow_time(0.0, 1.0, 0.5, 0.5, 1.0, 1.0)
    assert t == pytest.approx(np.pi / 8, rel=1e-14)


def test_small_beta_limit():
    # beta -> 0: s = 1/2 everywhere, so dS/dt = beta and T = dS / beta.
    assert flow_time(0.1, 0.9, 0.6, 0.4, 1.0, 1e-8) == pytest.approx(0.5 / 1e-8, rel=1e-6)


def test_record_fields_and_conservation(rng):
    x0 = rng.uniform(0.01, 1, (1000, 2))
    out = exact_dpo(x0, beta=0.3)
    assert tuple(out) == RESULT_FIELDS
    done = out["status"] != "timeout"
    r0 = np.hypot(x0[:, 0], x0[:, 1])
    r1 = np.hypot(out["x1_final"], out["x2_final"])
    np.testing.assert_allclose(r1[done], r0[done], rtol=1e-14)
    # converged exactly where the circle reaches the floor inside the box
    conv = r0**2 - 1e-12 <= 1.0
    assert np.array_equal(out["status"] == "converged", conv)
    np.testing.assert_array_equal(out["x2_final"][conv], 1e-6)
    np.testing.assert_array_equal(out["x1_final"][~conv], 1.0)
    # order of events along a path: t_w, t_l <= t_stop where reached
    for k in ("t_w", "t_l"):
        t = out[k]
        assert np.all(t[~np.isnan(t)] <= out["t_stop"][~np.isnan(t)] * (1 + 1e-12))


def test_start_on_a_stop_or_past_a_target():
    out = exact_dpo([[0.5, 1e-7], [1.0, 0.5], [0.95, 0.05]], beta=0.1)
    assert out["status"].tolist() == ["converged", "capped", "converged"]
    assert out["t_stop"][:2].tolist() == [0.0, 0.0]
    assert out["t_w"].tolist()[1:] == [0.0, 0.0]  # p1 >= 0.9 already
    assert np.isnan(out["t_w"][0])  # p1 = 0.5 never reaches 0.9: stops on the floor first
    assert out["t_l"][[0, 2]].tolist() == [0.0, 0.0]  # p2 <= 0.1 already
    assert np.isnan(out["t_l"][1])  # capped at the start with p2 = 0.5


def test_timeout_lands_on_t_max():
    x0 = [[0.01, 0.99], [0.5, 0.5]]
    full = exact_dpo(x0, beta=0.1)
    t_max = 0.5 * full["t_stop"].min()
    out = exact_dpo(x0, beta=0.1, stop=StopRule(t_max=t_max))
    assert out["status"].tolist() == ["timeout", "timeout"]
    s_end = out["x1_final"] ** 2
    t_back = flow_time(np.square(x0)[:, 0], np.square(x0)[:, 1], s_end, out["x2_final"] ** 2, np.square(x0).sum(1), 0.1)
    np.testing.assert_allclose(t_back, t_max, rtol=1e-10)


@given(
    p=st.tuples(st.floats(1e-4, 1.0), st.floats(1e-4, 1.0)),
    beta=st.floats(0.01, 1.99),
    ref_w=st.floats(0.01, 1.0),
    ref_l=st.floats(0.01, 1.0),
)
@example(p=(0.9999999999999999, 0.75), beta=1.0, ref_w=1.0, ref_l=1.0)  # one ulp below the cap: t_stop was -2.5e-17
def test_properties(p, beta, ref_w, ref_l):
    x0 = np.array(p) / [ref_w, ref_l]
    out = exact_dpo(x0, beta=beta, ref_w=ref_w, ref_l=ref_l)
    # small references stretch the box (x up to 1/ref), so small beta can run past t_max = 1e4
    assert out["status"] in ("converged", "capped", "timeout")
    assert 0 <= out["t_stop"] <= 1e4 and (out["status"] != "timeout" or out["t_stop"] == 1e4)
    assert out["x1_final"] >= x0[0] * (1 - 1e-15) and out["x2_final"] <= x0[1] * (1 + 1e-15)
    assert 0 < out["p1_final"] <= 1 + 1e-15 and 0 < out["p2_final"] <= 1
    assert out["loss_final"] <= DPO(beta=beta).value(np.log(x0)) + 1e-15


def test_per_row_parameters_broadcast():
    x0 = np.array([[1.0, 1.0], [1.0, 1.0]])
    out = exact_dpo(x0, beta=[0.1, 0.5], ref_w=[0.5, 0.9], ref_l=[0.5, 0.2])
    single = [
        exact_dpo(x0[i], beta=b, ref_w=w, ref_l=lo) for i, (b, w, lo) in enumerate([(0.1, 0.5, 0.5), (0.5, 0.9, 0.2)])
    ]
    for i, s in enumerate(single):
        for k in ("t_stop", "x1_final", "x2_final", "t_w", "t_l"):
            np.testing.assert_equal(out[k][i], s[k])


def test_registered_for_the_exact_pair():
    form = closed_form("dpo", "ratio")
    pol = RatioPlane().bind(np.array([[0.5, 0.5], [0.2, 0.4]]), np.array([0.5, 1.0]))
    out = form.flows(DPO(beta=0.2), pol, StopRule())
    np.testing.assert_equal(out["t_stop"], exact_dpo(pol.theta0, beta=0.2, ref_w=0.5)["t_stop"])
    assert form.applies(DPO(beta=1.9)) and not form.applies(DPO(beta=2.0))
    assert closed_form("dpo", "features") is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x0": [0.5, 0.5], "beta": 2.5}, "beta must be < 2"),
        ({"x0": [0.5, 0.5], "beta": -1.0}, "beta"),
        ({"x0": [0.5, 0.5], "ref_w": 0.0}, "ref_w"),
        ({"x0": [1.5, 0.5]}, r"x0 must lie in the domain.*1\.5"),
        ({"x0": [0.0, 0.5]}, r"x0 must lie in the domain 0 < x1"),
        ({"x0": [0.5, 0.0]}, r"x0 must lie in the domain 0 < x1"),
        ({"x0": [np.nan, 0.5]}, "x0 must be finite"),
        ({"x0": [0.5, 0.5, 0.5]}, r"shape \(\.\.\., 2\)"),
    ],
)
def test_bad_input(kwargs, match):
    x0 = kwargs.pop("x0")
    with pytest.raises(ValueError, match=match):
        exact_dpo(x0, **kwargs)


def test_the_registered_flows_path_fields_are_the_integrators():
    # p_w_min (the start: x1 only grows), max_mass (the arc's peak of p_w + p_l, if passed), margin_final,
    # on a (2, 3) grid of starts with per-start references, each against the driver's record of the same flow
    from flowsim.dynamics.driver import integrate

    p0 = np.array([[[0.1, 0.9], [0.5, 0.5], [0.3, 0.05]], [[0.05, 0.2], [0.6, 0.7], [0.2, 0.6]]])
    ref = np.array([[[0.5, 0.5], [0.2, 0.9], [0.9, 0.3]], [[0.3, 0.3], [0.8, 0.8], [0.4, 0.7]]])
    pol = RatioPlane().bind(p0, ref)
    out = closed_form("dpo", "ratio").flows(DPO(beta=0.3), pol, StopRule())
    assert out["p_w_min"].shape == out["max_mass"].shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        r = integrate(DPO(beta=0.3), policy=RatioPlane().bind(p0[i, j], ref[i, j]))
        assert out["status"][i, j] == r.status
        for k in ("p_w_min", "max_mass", "margin_final", "p1_final", "p2_final"):
            np.testing.assert_allclose(out[k][i, j], getattr(r, k), rtol=1e-8, err_msg=f"{k} at {p0[i, j]}")
        assert out["displaced"][i, j] == r.displaced
    np.testing.assert_array_equal(out["p_w_min"], p0[..., 0])


def test_one_bad_per_row_parameter_is_refused():
    for name in ("beta", "ref_w", "ref_l"):
        with pytest.raises(ValueError, match=name):
            exact_dpo([[0.5, 0.5], [0.5, 0.5]], **{name: [0.5, -1.0]})


def test_an_empty_batch_gives_empty_fields():
    """No starts (an empty chunk): every field, of length 0, and no error (the shared-beta shortcut reads no row)."""
    out = exact_dpo(np.zeros((0, 2)), beta=0.1)
    assert set(out) == set(RESULT_FIELDS) and all(np.shape(v) == (0,) for v in out.values())
