"""The DPO field on the ratio plane: Theorem 1, Corollary 1, the Hessian, stability at the extremes.

The loss is a function of the log-ratios h; on the ratio plane (theta = x, h = log x) the
objective is the paper's L(x1, x2), which is what these tests check.
"""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from flowsim.model.losses import DPO, LOSSES, make_loss
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import RatioPlane

BETAS = [0.01, 0.1, 0.5, 1.0, 5.0]


def xloss(beta: float) -> Objective:
    """DPO as a function of x on the ratio plane (references 1)."""
    return Objective(DPO(beta=beta), RatioPlane().bind(np.ones(2), np.ones(2)))


def sympy_dpo():
    x1, x2, b = sp.symbols("x1 x2 beta", positive=True)
    L = -sp.log(x1**b / (x1**b + x2**b))
    grad = [sp.diff(L, v) for v in (x1, x2)]
    hess = [[sp.diff(g, v) for v in (x1, x2)] for g in grad]
    return sp.lambdify((x1, x2, b), [L, grad, hess], modules="mpmath")


def test_reference_values_by_hand():
    # At x1 = x2 the two responses are tied: L = log 2, sigma = 1/2, grad = beta/2 * (-1/x1, 1/x2).
    loss = xloss(0.2)
    assert loss.value([0.5, 0.5]) == pytest.approx(np.log(2), rel=1e-15)
    np.testing.assert_allclose(loss.grad([0.5, 0.5]), [-0.2, 0.2], rtol=1e-15)
    # x1 = 1, x2 = e^-5, beta = 1: L = log(1 + e^-5), dL/dx2 = 1 / (1 + e^-5) (Theorem 1: b x2^(b-1)/(x1^b+x2^b)).
    loss = xloss(1.0)
    x = [1.0, np.exp(-5.0)]
    assert loss.value(x) == pytest.approx(np.log1p(np.exp(-5.0)), rel=1e-14)
    np.testing.assert_allclose(loss.grad(x), [-np.exp(-5) / (1 + np.exp(-5)), 1 / (1 + np.exp(-5))], rtol=1e-14)
    # in h: dL/dh = beta sigma (-1, 1), d2L/dh2 = beta^2 sigma (1 - sigma) [[1, -1], [-1, 1]]; at h = 0, sigma = 1/2
    np.testing.assert_allclose(DPO(beta=0.4).grad([0.0, 0.0]), [-0.2, 0.2], rtol=1e-15)
    np.testing.assert_allclose(DPO(beta=0.4).hessian([0.0, 0.0]), [[0.04, -0.04], [-0.04, 0.04]], rtol=1e-15)


@pytest.mark.parametrize("beta", BETAS)
def test_theorem1_and_hessian_against_sympy(beta, rng):
    import mpmath

    mpmath.mp.dps = 120  # L can be ~1e-60 at the extreme points
    f = sympy_dpo()
    pts = np.concatenate([rng.uniform(1e-3, 1, (20, 2)), [[0.7, 1e-12], [1e-12, 0.7], [1.0, 1.0], [1e-6, 1e-9]]])
    loss = xloss(beta)
    for x in pts:
        L, g, H = f(mpmath.mpf(float(x[0])), mpmath.mpf(float(x[1])), mpmath.mpf(beta))
        assert float(loss.value(x)) == pytest.approx(float(L), rel=1e-12, abs=1e-300)
        np.testing.assert_allclose(loss.grad(x), np.array(g, dtype=float), rtol=1e-12)
        np.testing.assert_allclose(
            loss.hessian(x), np.array(H.tolist() if hasattr(H, "tolist") else H, dtype=float), rtol=1e-10
        )


@pytest.mark.parametrize("beta", BETAS)
def test_theorem1_against_central_differences(beta, rng):
    loss = xloss(beta)
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
    num_h = np.stack(
        [(loss.grad(x + h * e) - loss.grad(x - h * e)) / (2 * h[:, [k]]) for k, e in enumerate(np.eye(2))], -1
    )
    np.testing.assert_allclose(loss.hessian(x), num_h, rtol=1e-5, atol=1e-10)


@given(
    x=st.tuples(st.floats(1e-300, 1.0), st.floats(1e-300, 1.0)),
    beta=st.floats(0.01, 10.0),
)
def test_finite_at_extremes(x, beta):
    loss = xloss(beta)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        v, g = loss.value(np.array(x)), loss.grad(np.array(x))
    assert np.isfinite(v) and v >= 0
    assert np.all(np.isfinite(g))
    assert g[0] <= 0 <= g[1]  # DPO always pushes x1 up and x2 down


@given(x=st.tuples(st.floats(1e-12, 1.0), st.floats(1e-12, 1.0)), beta=st.floats(0.01, 10.0))
def test_corollary1_ratio_is_x2_over_x1(x, beta):
    g = xloss(beta).grad(np.array(x))
    if g[1] > 1e-290:  # the ratio is defined where the x2-derivative does not underflow
        assert abs(g[0] / g[1]) == pytest.approx(x[1] / x[0], rel=1e-12)


def test_vectorised_shapes():
    loss = xloss(0.1)
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
        make_loss("no_such_loss")


def test_ratio_domain_names_the_bound():
    pol = RatioPlane().bind(np.array([1.0, 1.0]), np.array([0.5, 1.0]))
    assert pol.in_domain(np.array([2.0, 1.0]))  # x1 may reach 1/ref_w
    assert not pol.in_domain(np.array([2.5, 0.5]))
    assert "x1 <= 2" in pol.describe_domain()


@pytest.mark.parametrize("f_divergence", ["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_margin_only_is_true_exactly_where_the_loss_reads_only_the_margin(f_divergence, alpha):
    """Reverse KL (and the alpha divergence at alpha = 1, TRL's reverse KL) is a function of h_w - h_l: a common
    shift of h leaves it unchanged; the other scores move with it."""
    loss = DPO(beta=0.3, f_divergence=f_divergence, alpha=alpha)
    h = np.array([[0.4, -0.7], [-1.2, 0.3]])
    moved = np.abs(loss.value(h + 0.9) - loss.value(h)).max()
    assert loss.margin_only() == (moved < 1e-12)  # measured: 0 or > 0.05
    assert loss.margin_only() == (f_divergence == "reverse_kl" or (f_divergence == "alpha_divergence" and alpha == 1.0))


def test_the_alpha_divergence_clamp_passes_the_gradient_at_its_bound_as_torch_does():
    """TRL clamps (alpha - 1) h at 80 before the exponential; torch.clamp's gradient passes where t <= 80."""
    torch = pytest.importorskip("torch")
    from flowsim.model.losses.dpo import ALPHA_CLAMP, f_scores

    a = -0.5  # alpha 0.5: t = a h = 80 exactly at h = -160
    h = np.array([-150.0, -160.0, -170.0])
    ht = torch.tensor(h, dtype=torch.float64, requires_grad=True)
    (torch.exp(torch.clamp(a * ht, max=ALPHA_CLAMP)) / a).sum().backward()
    s, ds, dds = f_scores(h, "alpha_divergence", 0.5)
    np.testing.assert_allclose(ds, ht.grad.numpy(), rtol=1e-14)
    assert ds[1] > 0.0 and ds[2] == 0.0 and dds[1] == a * ds[1] and dds[2] == 0.0
    np.testing.assert_allclose(s, np.exp(np.minimum(a * h, ALPHA_CLAMP)) / a, rtol=1e-15)
