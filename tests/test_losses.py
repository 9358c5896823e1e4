"""The DPO field: Theorem 1, Corollary 1, the Hessian, stability at the extremes."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from flowsim.losses import DPO, LOSSES, make_loss

BETAS = [0.01, 0.1, 0.5, 1.0, 5.0]


def sympy_dpo():
    x1, x2, b = sp.symbols("x1 x2 beta", positive=True)
    L = -sp.log(x1**b / (x1**b + x2**b))
    grad = [sp.diff(L, v) for v in (x1, x2)]
    hess = [[sp.diff(g, v) for v in (x1, x2)] for g in grad]
    f = sp.lambdify((x1, x2, b), [L, grad, hess], modules="mpmath")
    return f


def test_reference_values_by_hand():
    # At x1 = x2 the two responses are tied: L = log 2, sigma = 1/2, grad = beta/2 * (-1/x1, 1/x2).
    loss = DPO(beta=0.2)
    assert loss.value([0.5, 0.5]) == pytest.approx(np.log(2), rel=1e-15)
    np.testing.assert_allclose(loss.grad([0.5, 0.5]), [-0.2, 0.2], rtol=1e-15)
    # x1 = 1, x2 = e^-5, beta = 1: L = log(1 + e^-5), dL/dx2 = 1 / (1 + e^-5) (Theorem 1: b x2^(b-1)/(x1^b+x2^b)).
    loss = DPO(beta=1.0)
    x = [1.0, np.exp(-5.0)]
    assert loss.value(x) == pytest.approx(np.log1p(np.exp(-5.0)), rel=1e-14)
    np.testing.assert_allclose(loss.grad(x), [-np.exp(-5) / (1 + np.exp(-5)), 1 / (1 + np.exp(-5))], rtol=1e-14)


@pytest.mark.parametrize("beta", BETAS)
def test_theorem1_and_hessian_against_sympy(beta, rng):
    import mpmath

    mpmath.mp.dps = 120  # L can be ~1e-60 at the extreme points
    f = sympy_dpo()
    pts = np.concatenate([rng.uniform(1e-3, 1, (20, 2)), [[0.7, 1e-12], [1e-12, 0.7], [1.0, 1.0], [1e-6, 1e-9]]])
    loss = DPO(beta=beta)
    for x in pts:
        L, g, H = f(mpmath.mpf(float(x[0])), mpmath.mpf(float(x[1])), mpmath.mpf(beta))
        assert float(loss.value(x)) == pytest.approx(float(L), rel=1e-12, abs=1e-300)
        np.testing.assert_allclose(loss.grad(x), np.array(g, dtype=float), rtol=1e-12)
        np.testing.assert_allclose(
            loss.hessian(x), np.array(H.tolist() if hasattr(H, "tolist") else H, dtype=float), rtol=1e-10
        )


@pytest.mark.parametrize("beta", BETAS)
def test_theorem1_against_central_differences(beta, rng):
    loss = DPO(beta=beta)
    x = rng.uniform(0.05, 1, (200, 2))
    h = 1e-6 * x
    num = np.stack(
        [
            (loss.value(x + h * [1, 0]) - loss.value(x - h * [1, 0])) / (2 * h[:, 0]),
            (loss.value(x + h * [0, 1]) - loss.value(x - h * [0, 1])) / (2 * h[:, 1]),
        ],
        -1,
    )
    np.testing.assert_allclose(loss.grad(x), num, rtol=1e-6, atol=1e-12)
    # the Hessian against differences of the gradient
    num_h = np.stack(
        [(loss.grad(x + h * e) - loss.grad(x - h * e)) / (2 * h[:, [k]]) for k, e in enumerate(np.eye(2))], -1
    )
    np.testing.assert_allclose(loss.hessian(x), num_h, rtol=1e-5, atol=1e-10)


@given(
    x=st.tuples(st.floats(1e-300, 1.0), st.floats(1e-300, 1.0)),
    beta=st.floats(0.01, 10.0),
)
def test_finite_at_extremes(x, beta):
    loss = DPO(beta=beta)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v, g = loss.value(x), loss.grad(x)
    assert np.isfinite(v) and v >= 0
    assert np.all(np.isfinite(g))
    assert g[0] <= 0 <= g[1]  # DPO always pushes x1 up and x2 down


@given(x=st.tuples(st.floats(1e-12, 1.0), st.floats(1e-12, 1.0)), beta=st.floats(0.01, 10.0))
def test_corollary1_ratio_is_x2_over_x1(x, beta):
    g = DPO(beta=beta).grad(x)
    if g[1] > 1e-290:  # the ratio is defined where the x2-derivative does not underflow
        assert abs(g[0] / g[1]) == pytest.approx(x[1] / x[0], rel=1e-12)


def test_scalar_gradient_matches_vectorised(rng):
    for beta in BETAS:
        loss = DPO(beta=beta)
        for x in np.concatenate([rng.uniform(1e-9, 1, (50, 2)), [[1e-300, 1.0], [1.0, 1e-300]]]):
            np.testing.assert_allclose(loss.grad_at(*x), loss.grad(x), rtol=1e-14)


def test_vectorised_shapes():
    loss = DPO()
    x = np.full((4, 3, 2), 0.5)
    assert loss.value(x).shape == (4, 3)
    assert loss.grad(x).shape == (4, 3, 2)
    assert loss.hessian(x).shape == (4, 3, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -1}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": float("inf")}, "beta"),
        ({"ref_w": 0.0}, "ref_w"),
        ({"ref_w": 1.5}, "ref_w"),
        ({"ref_l": -0.1}, "ref_l"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name) as err:
        DPO(**kwargs)
    assert repr(next(iter(kwargs.values())))[:3] in str(err.value)


def test_registry():
    assert LOSSES["dpo"] is DPO
    assert make_loss("dpo", beta=0.3) == DPO(beta=0.3)
    with pytest.raises(ValueError, match="loss kind"):
        make_loss("ipo")


def test_domain_check_names_the_point():
    loss = DPO(ref_w=0.5)
    loss.check_domain("x0", [2.0, 1.0])  # x1 may reach 1/ref_w
    with pytest.raises(ValueError, match=r"x0 must lie in the domain.*2\.5"):
        loss.check_domain("x0", [2.5, 0.5])
    with pytest.raises(ValueError, match="x0 must be finite"):
        loss.check_domain("x0", [np.nan, 0.5])
