"""Discrete optimisers (flowsim.dynamics.optimisers): update rules by hand, order of convergence
to the flow, stops, and the vectorised runner against rows run alone."""

import math

import numpy as np
import pytest

from flowsim._validation import ParamError
from flowsim.dynamics.closed_forms.dpo_logits import theta_at_time
from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.optimisers import (
    GD,
    OPTIMISERS,
    Adam,
    AdamW,
    Momentum,
    Optimiser,
    make_optimiser,
    run_discrete,
    step_limit,
)
from flowsim.dynamics.optimisers.kernels import Evaluator, evaluator_for
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, STATUSES, StopRule
from flowsim.model import PARAMETERISATIONS, Objective
from flowsim.model.losses import DPO, IPO
from flowsim.model.parameterisations import LogLinearFeatures, RatioPlane, SoftmaxLogits

STARTS = np.array([[0.3, 0.4], [0.2, 0.5], [0.4, 0.3], [0.25, 0.25], [0.1, 0.6], [0.5, 0.2], [0.35, 0.45], [0.15, 0.3]])


def bind(kind: str, p0: np.ndarray = STARTS, **params):
    """A policy of every start: the ratio plane with ref = 1, the softmax models with the standard ref = p0."""
    par = PARAMETERISATIONS[kind](**params)
    return par.bind(p0, np.ones_like(p0) if kind == "ratio" else p0)


def assert_same_record(a: dict, b: dict) -> None:
    """Two records equal field by field, bitwise (NaN where NaN)."""
    for f in (*RESULT_FIELDS, *PATH_FIELDS):
        assert a[f].dtype == b[f].dtype, f
        np.testing.assert_array_equal(a[f], b[f], err_msg=f, strict=True)


# -- the registry and the hyperparameters ---------------------------------------------------------


def test_registry():
    assert sorted(OPTIMISERS) == ["adam", "adamw", "gd", "momentum"]
    for kind, cls in OPTIMISERS.items():
        assert cls.kind == kind and issubclass(cls, Optimiser)
        opt = make_optimiser(kind, lr=0.5)
        assert opt.lr == 0.5 and opt.params()["lr"] == 0.5
    assert Momentum().momentum == 0.9
    assert (Adam().beta1, Adam().beta2, Adam().eps, Adam().weight_decay) == (0.9, 0.999, 1e-8, 0.0)
    assert AdamW().weight_decay == 0.0
    with pytest.raises(ValueError, match="optimiser kind must be one of"):
        make_optimiser("sgd")


@pytest.mark.parametrize(
    ("cls", "key", "value", "rule"),
    [
        (GD, "lr", 0.0, "> 0"),
        (GD, "lr", -0.1, "> 0"),
        (GD, "lr", math.inf, "finite"),
        (Momentum, "lr", 0.0, "> 0"),
        (Momentum, "momentum", 1.0, "[0, 1)"),
        (Momentum, "momentum", -0.5, "[0, 1)"),
        (Adam, "lr", -1.0, "> 0"),
        (Adam, "beta1", 1.0, "[0, 1)"),
        (Adam, "beta1", -0.1, "[0, 1)"),
        (Adam, "beta2", 1.5, "[0, 1)"),
        (Adam, "eps", 0.0, "> 0"),
        (Adam, "weight_decay", -1e-3, ">= 0"),
        (AdamW, "beta1", 1.0, "[0, 1)"),
        (AdamW, "weight_decay", -1.0, ">= 0"),
    ],
)
def test_bad_hyperparameters_name_the_key(cls, key, value, rule):
    with pytest.raises(ParamError) as exc:
        cls(**{key: value})
    assert exc.value.key == key
    assert str(exc.value).startswith(f"{key} ") and rule in str(exc.value) and repr(value) in str(exc.value)


def test_a_non_number_is_refused():
    with pytest.raises(ParamError) as exc:
        Adam(lr="0.1")
    assert exc.value.key == "lr"


# -- order of convergence to the flow -------------------------------------------------------------

LRS = (0.1, 0.05, 0.025, 0.0125)  # each divides t = 1 exactly: 10, 20, 40, 80 steps


def _slope(lrs, errors) -> float:
    return float(np.polyfit(np.log(lrs), np.log(errors), 1)[0])


def test_gd_approaches_the_flow_at_order_one_on_the_ratio_plane():
    loss = DPO(beta=0.1)
    policy = RatioPlane().bind(np.array([[0.3, 0.6]]), np.array([[1.0, 1.0]]))
    flow = integrate(
        loss, policy=policy.row(0), stop=StopRule(t_max=1.0), options=SolverOptions(rtol=1e-12, atol=1e-14)
    )
    assert flow.status == "timeout" and flow.t_stop == 1.0
    errors = []
    for lr in LRS:
        out = run_discrete(loss, policy, GD(lr=lr), StopRule(t_max=1.0))
        assert out["status"][0] == "timeout" and out["steps"][0] == round(1 / lr)
        assert out["t_stop"][0] == pytest.approx(1.0, abs=1e-15)
        errors.append(math.hypot(out["x1_final"][0] - flow.x1_final, out["x2_final"][0] - flow.x2_final))
    slope = _slope(LRS, errors)  # measured 1.012
    assert 0.9 <= slope <= 1.1, (slope, errors)


def test_gd_approaches_the_flow_at_order_one_on_logits():
    loss = DPO(beta=0.1)
    policy = SoftmaxLogits(K=10).bind(np.array([[0.3, 0.6]]), np.array([[0.3, 0.6]]))  # standard ref = start
    exact = theta_at_time(policy.theta0[0], policy.log_ref[0], loss.beta, 1.0)  # the closed form at t = 1
    errors = []
    for lr in LRS:
        opt = GD(lr=lr)
        out = run_discrete(loss, policy, opt, StopRule(t_max=1.0))
        assert out["status"][0] == "timeout" and out["steps"][0] == round(1 / lr)
        theta = policy.theta0  # the same steps by hand, for the parameters themselves
        obj = Objective(loss, policy)
        for _ in range(round(1 / lr)):
            theta = theta - lr * obj.grad(theta)
        assert out["p1_final"][0] == policy.probs(theta)[0, 0]
        errors.append(float(np.max(np.abs(theta[0] - exact))))
    slope = _slope(LRS, errors)  # measured 1.000
    assert 0.9 <= slope <= 1.1, (slope, errors)


# -- update rules by hand -------------------------------------------------------------------------


def dpo_ratio_grad(x1: float, x2: float, beta: float = 0.1) -> tuple[float, float]:
    """DPO on the ratio plane by hand: dL/dx1 = -beta s / x1, dL/dx2 = beta s / x2, s = x2^b / (x1^b + x2^b)."""
    s = x2**beta / (x1**beta + x2**beta)
    return -beta * s / x1, beta * s / x2


def _ratio_run(opt, steps: int, x0=(0.5, 0.5)) -> tuple[float, float]:
    pol = RatioPlane().bind(np.array([x0]), np.array([[1.0, 1.0]]))
    out = run_discrete(DPO(beta=0.1), pol, opt, StopRule(max_steps=steps))
    assert out["status"][0] == "timeout" and out["steps"][0] == steps and out["nfev"][0] == steps
    return float(out["x1_final"][0]), float(out["x2_final"][0])


def test_adam_first_three_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam(lr=lr)
    # step 1 at x = (0.5, 0.5): s = 1/2, g = (-0.1, 0.1)
    g = dpo_ratio_grad(0.5, 0.5)
    assert g == pytest.approx((-0.1, 0.1), abs=1e-15)
    m = [(1 - b1) * gi for gi in g]  # (-0.01, 0.01)
    v = [(1 - b2) * gi * gi for gi in g]  # (1e-5, 1e-5)
    mhat = [mi / (1 - b1) for mi in m]  # = g
    vhat = [vi / (1 - b2) for vi in v]  # = g^2: sqrt = 0.1
    x = [0.5 - lr * mhat[i] / (math.sqrt(vhat[i]) + eps) for i in range(2)]  # 0.5 -+ 0.01 * 0.1 / (0.1 + 1e-8)
    assert x == pytest.approx([0.509999999, 0.490000001], abs=1e-12)
    assert _ratio_run(opt, 1) == pytest.approx(tuple(x), abs=1e-12)
    # step 2 at x = (0.509999999, 0.490000001): s = 0.4989998681, g = (-0.0978431116, 0.1018367076)
    g = dpo_ratio_grad(*x)
    assert g == pytest.approx((-0.0978431116, 0.1018367076), abs=1e-10)
    m = [b1 * m[i] + (1 - b1) * g[i] for i in range(2)]  # (-0.0187843112, 0.0191836708)
    v = [b2 * v[i] + (1 - b2) * g[i] ** 2 for i in range(2)]  # (1.95632745e-5, 2.03607150e-5)
    mhat = [mi / (1 - b1**2) for mi in m]
    vhat = [vi / (1 - b2**2) for vi in v]
    x = [x[i] - lr * mhat[i] / (math.sqrt(vhat[i]) + eps) for i in range(2)]
    assert x == pytest.approx([0.5199937207, 0.4799956723], abs=1e-10)
    assert _ratio_run(opt, 2) == pytest.approx(tuple(x), abs=1e-12)
    # step 3 at x = (0.5199937207, 0.4799956723): s = 0.4979990195, g = (-0.0957701987, 0.1037507311)
    g = dpo_ratio_grad(*x)
    assert g == pytest.approx((-0.0957701987, 0.1037507311), abs=1e-10)
    m = [b1 * m[i] + (1 - b1) * g[i] for i in range(2)]
    v = [b2 * v[i] + (1 - b2) * g[i] ** 2 for i in range(2)]
    mhat = [mi / (1 - b1**3) for mi in m]
    vhat = [vi / (1 - b2**3) for vi in v]
    x = [x[i] - lr * mhat[i] / (math.sqrt(vhat[i]) + eps) for i in range(2)]
    assert x == pytest.approx([0.5299771646, 0.4699840149], abs=1e-10)
    assert _ratio_run(opt, 3) == pytest.approx(tuple(x), abs=1e-12)


def test_adam_weight_decay_is_an_l2_term_in_the_gradient():
    lr, lam, b1, b2, eps = 0.01, 0.5, 0.9, 0.999, 1e-8
    # one step at x = (0.5, 0.5): g = (-0.1, 0.1) + 0.5 * (0.5, 0.5) = (0.15, 0.35), both positive
    g = [-0.1 + lam * 0.5, 0.1 + lam * 0.5]
    mhat = [(1 - b1) * gi / (1 - b1) for gi in g]
    vhat = [(1 - b2) * gi * gi / (1 - b2) for gi in g]
    x = [0.5 - lr * mhat[i] / (math.sqrt(vhat[i]) + eps) for i in range(2)]  # ~ 0.5 - 0.01 for both
    assert x == pytest.approx([0.49, 0.49], abs=1e-6)
    assert _ratio_run(Adam(lr=lr, weight_decay=lam), 1) == pytest.approx(tuple(x), abs=1e-12)


def test_adamw_decay_is_decoupled_by_hand():
    lr, lam, b1, b2, eps = 0.01, 0.5, 0.9, 0.999, 1e-8
    opt = AdamW(lr=lr, weight_decay=lam)
    # step 1: theta <- theta - lr lam theta = 0.5 (1 - 0.005) = 0.4975, then Adam from g = (-0.1, 0.1)
    g = dpo_ratio_grad(0.5, 0.5)
    m = [(1 - b1) * gi for gi in g]
    v = [(1 - b2) * gi * gi for gi in g]
    x = [0.5 - lr * lam * 0.5 for _ in range(2)]
    x = [x[i] - lr * (m[i] / (1 - b1)) / (math.sqrt(v[i] / (1 - b2)) + eps) for i in range(2)]
    assert x == pytest.approx([0.5075, 0.4875], abs=1e-8)  # 0.4975 +- 0.01
    assert _ratio_run(opt, 1) == pytest.approx(tuple(x), abs=1e-12)
    # step 2: the gradient at x = (0.507499999, 0.487500001), by hand; decay from that x, not the moments
    g = dpo_ratio_grad(*x)
    m = [b1 * m[i] + (1 - b1) * g[i] for i in range(2)]
    v = [b2 * v[i] + (1 - b2) * g[i] ** 2 for i in range(2)]
    x = [xi - lr * lam * xi for xi in x]
    x = [x[i] - lr * (m[i] / (1 - b1**2)) / (math.sqrt(v[i] / (1 - b2**2)) + eps) for i in range(2)]
    assert _ratio_run(opt, 2) == pytest.approx(tuple(x), abs=1e-12)
    # and with no decay AdamW is Adam, bitwise
    pol = bind("logits")
    assert_same_record(
        run_discrete(DPO(), pol, AdamW(lr=0.05), StopRule(max_steps=30)),
        run_discrete(DPO(), pol, Adam(lr=0.05), StopRule(max_steps=30)),
    )


def test_momentum_first_two_steps_by_hand():
    lr, mu = 0.1, 0.9
    opt = Momentum(lr=lr, momentum=mu)
    # step 1: b_1 = g_1 = (-0.1, 0.1); x = (0.5, 0.5) - 0.1 b_1 = (0.51, 0.49)
    b = list(dpo_ratio_grad(0.5, 0.5))
    x = [0.5 - lr * bi for bi in b]
    assert x == pytest.approx([0.51, 0.49], abs=1e-15)
    assert _ratio_run(opt, 1) == pytest.approx(tuple(x), abs=1e-12)
    # step 2 at x = (0.51, 0.49): s = 0.49899987, g = (-0.0978431, 0.1018367); b_2 = 0.9 b_1 + g_2
    g = dpo_ratio_grad(*x)
    assert g == pytest.approx((-0.0978431, 0.1018367), abs=1e-7)
    b = [mu * b[i] + g[i] for i in range(2)]  # (-0.1878431, 0.1918367)
    x = [x[i] - lr * b[i] for i in range(2)]  # (0.5287843, 0.4708163)
    assert x == pytest.approx([0.5287843, 0.4708163], abs=1e-7)
    assert _ratio_run(opt, 2) == pytest.approx(tuple(x), abs=1e-12)
    # momentum 0 is gradient descent, bitwise
    pol = bind("features")
    assert_same_record(
        run_discrete(DPO(), pol, Momentum(lr=0.3, momentum=0.0), StopRule(max_steps=25)),
        run_discrete(DPO(), pol, GD(lr=0.3), StopRule(max_steps=25)),
    )


def test_optimisers_do_not_modify_their_inputs():
    theta, grad = np.ones((3, 2)), np.full((3, 2), 0.5)
    for cls in OPTIMISERS.values():
        opt = cls(lr=0.1)
        state = opt.init(theta)
        snapshot = [s.copy() for s in state]
        for k in (1, 2):
            new, new_state = opt.step(theta, grad, state, k)
            assert new.shape == theta.shape and all(s.shape == theta.shape for s in new_state)
            state = new_state
        np.testing.assert_array_equal(theta, 1.0)
        np.testing.assert_array_equal(grad, 0.5)
        assert all(np.array_equal(a, b) for a, b in zip(opt.init(theta), snapshot, strict=True))


# -- the evaluators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "par",
    [
        SoftmaxLogits(K=10),
        SoftmaxLogits(K=3, zipf=1.0),
        LogLinearFeatures(),
        LogLinearFeatures(train_bias=True, cos_wl=0.7),
    ],
    ids=["logits", "logits-K3", "features", "features-bias"],
)
def test_fused_evaluators_are_the_objective(par, rng):
    # logits: bitwise the generic path; features: to rounding (Phi products summed by hand, not BLAS)
    pol = par.bind(STARTS, STARTS[::-1])
    fused = evaluator_for(DPO(beta=0.3), pol)
    assert type(fused) is not Evaluator
    check = (
        (lambda a, b: np.testing.assert_array_equal(a, b, strict=True))
        if par.kind == "logits"
        else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15))
    )
    generic = Evaluator(DPO(beta=0.3), pol)
    obj = Objective(DPO(beta=0.3), pol)
    theta = pol.theta0 + rng.normal(scale=2.0, size=pol.theta0.shape)
    for a, b in zip(fused(theta), generic(theta), strict=True):
        check(a, b)
    h, p, g = fused(theta)
    L, g_obj = obj.value_and_grad(theta)
    check(g, g_obj)
    check(fused.value(h), L)
    check(p, pol.probs(theta))
    check(fused.ratios(theta, h), pol.ratios(theta))
    # and a row's numbers are the same alone as in the batch, bitwise
    for i in (0, 3):
        alone = fused.take(np.array([i]))(theta[i : i + 1])
        for a, b in zip(alone, fused(theta), strict=True):
            np.testing.assert_array_equal(a[0], b[i], strict=True)


# -- the runner: conformance on every parameterisation ----------------------------------------------

KINDS = sorted(PARAMETERISATIONS)
#: A learning rate each optimiser handles on every model in the scenarios below.
LR = {"gd": 0.5, "momentum": 0.1, "adam": 0.05, "adamw": 0.05}


@pytest.mark.parametrize("kind", KINDS)
def test_gd_never_increases_the_loss_at_a_small_lr(kind):
    pol = bind(kind)
    loss = DPO(beta=0.1)
    obj = Objective(loss, pol)
    theta = pol.theta0
    values = [obj.value(theta)]
    for _ in range(200):
        theta = theta - 1e-3 * obj.grad(theta)
        values.append(obj.value(theta))
    assert np.all(np.diff(np.array(values), axis=0) <= 0.0)
    out = run_discrete(loss, pol, GD(lr=1e-3), StopRule(max_steps=200))
    np.testing.assert_array_equal(out["loss_final"], values[-1])  # the runner takes exactly these steps
    assert np.all(out["steps"] == 200) and np.all(out["status"] == "timeout")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("opt_kind", sorted(OPTIMISERS))
def test_every_optimiser_lowers_the_loss(kind, opt_kind):
    pol = bind(kind)
    out = run_discrete(DPO(beta=0.1), pol, make_optimiser(opt_kind, lr=1e-3), StopRule(max_steps=200))
    assert np.all(out["loss_final"] < Objective(DPO(beta=0.1), pol).value(pol.theta0))


#: (status, loss, stop, lr factor): every start should end with the status.  IPO's minimiser is
#: finite (h_w - h_l = 1/(2 beta)); GD at lr 0.5 would flip the residual's sign each step there.
SCENARIOS = [
    ("converged", DPO(beta=1.0), StopRule(p2_floor=0.1, p2_target=0.15, max_steps=5000), 1.0),
    ("reached_loss", DPO(beta=1.0), StopRule(p2_floor=1e-3, loss_target=0.5, max_steps=5000), 1.0),
    ("reached_margin", DPO(beta=1.0), StopRule(p2_floor=1e-3, margin_target=1.0, max_steps=5000), 1.0),
    ("stationary", IPO(beta=1.0), StopRule(p2_floor=1e-9, p2_target=1e-9, stationary_tol=1e-5, max_steps=5000), 0.2),
    ("timeout", DPO(beta=1.0), StopRule(p2_floor=1e-9, p2_target=1e-9, max_steps=3), 1.0),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("opt_kind", sorted(OPTIMISERS))
def test_every_stop_is_honoured(kind, opt_kind):
    p0 = STARTS[:4]
    pol = bind(kind, p0)
    lr = LR[opt_kind] * (0.05 if kind == "ratio" else 1.0)  # the ratio plane's box wants shorter steps
    for status, loss, stop, factor in SCENARIOS:
        opt = make_optimiser(opt_kind, lr=lr * factor)
        out = run_discrete(loss, pol, opt, stop)
        assert list(out["status"]) == [status] * len(p0), (status, out["status"], out["message"])
        _check_record(out, pol, loss, opt, stop)


def _check_record(out: dict, pol, loss, opt, stop: StopRule) -> None:
    """What every record must satisfy, whatever the status."""
    n = pol.theta0.shape[0]
    assert set(out) == {*RESULT_FIELDS, *PATH_FIELDS}
    assert all(out[f].shape == (n,) for f in out)
    assert set(out["status"]) <= set(STATUSES)
    np.testing.assert_array_equal(out["nfev"], out["steps"])
    np.testing.assert_allclose(out["t_stop"], out["steps"] * opt.lr, rtol=1e-15)
    assert np.all(out["steps"] <= step_limit(stop, opt.lr))
    for name, fn in (
        ("converged", lambda: out["p2_final"] <= stop.p2_floor),
        ("reached_loss", lambda: out["loss_final"] <= stop.loss_target),
        ("reached_margin", lambda: out["margin_final"] >= stop.margin_target),
    ):
        sel = out["status"] == name
        if sel.any():
            assert np.all(fn()[sel]), name
    live = out["status"] != "diverged"
    assert np.all(out["message"][live] == "")
    # t_w / t_l: crossed by the stop (and only then) where recorded
    for t_x, met in (("t_w", out["p1_final"] >= stop.p1_target), ("t_l", out["p2_final"] <= stop.p2_target)):
        recorded = ~np.isnan(out[t_x])
        assert np.all(out[t_x][recorded] <= out["t_stop"][recorded] + 1e-12)
        assert np.all(recorded[live & met])
    # the path: minima and maxima include the start and the end
    p0 = pol.probs(pol.theta0)
    assert np.all(out["p_w_min"] <= np.minimum(p0[:, 0], out["p1_final"]))
    assert np.all((out["t_p_w_min"] >= 0) & (out["t_p_w_min"] <= out["t_stop"]))
    assert np.all(out["max_mass"] >= np.maximum(p0[:, 0] + p0[:, 1], out["p1_final"] + out["p2_final"]) - 1e-15)
    np.testing.assert_array_equal(out["displaced"], out["p_w_min"] < p0[:, 0] * (1 - 1e-12))
    if pol.n_responses > 2:
        np.testing.assert_allclose(out["rest_final"], 1.0 - out["p1_final"] - out["p2_final"], atol=1e-14)
        assert np.all((out["top_other"] >= 2) & (out["top_other"] <= pol.n_responses - 1))
        assert np.all(out["p_top_other"] <= out["rest_final"])
    else:
        assert np.all(np.isnan(out["rest_final"]) & np.isnan(out["top_other"]) & np.isnan(out["p_top_other"]))


@pytest.mark.parametrize("opt_kind", sorted(OPTIMISERS))
def test_the_ratio_plane_caps_and_diverges(opt_kind):
    # (0.9, 0.6): DPO keeps x1^2 + x2^2 = 1.17, so x1 reaches 1 while x2 is still ~0.41: capped
    pol = RatioPlane().bind(np.array([[0.9, 0.6], [0.95, 0.5]]), np.ones((2, 2)))
    opt = make_optimiser(opt_kind, lr=0.02)
    out = run_discrete(DPO(beta=0.5), pol, opt, StopRule(max_steps=10_000))
    assert list(out["status"]) == ["capped", "capped"], out["message"]
    np.testing.assert_array_equal(out["x1_final"], 1.0)  # put on the cap, as the flow's record is
    np.testing.assert_array_equal(out["p1_final"], 1.0)
    assert np.all(out["x2_final"] > 0.1)
    _check_record(out, pol, DPO(beta=0.5), opt, StopRule(max_steps=10_000))
    # a huge step leaves the box on the first step: diverged, the record at the start
    big = make_optimiser(opt_kind, lr=50.0)
    out = run_discrete(DPO(beta=0.1), bind("ratio", STARTS[:3]), big, StopRule())
    assert list(out["status"]) == ["diverged"] * 3
    np.testing.assert_array_equal(out["steps"], 0)
    np.testing.assert_array_equal(out["t_stop"], 0.0)
    np.testing.assert_array_equal(np.column_stack([out["x1_final"], out["x2_final"]]), STARTS[:3])
    for msg in out["message"]:
        assert msg.startswith("step 1: theta[") and "left the domain (0 < x1 <= 1, 0 < x2 <= 1" in msg


def test_an_euler_overshoot_below_zero_is_diverged_with_the_last_valid_point():
    # DPO at beta = 0.1 near the end: dx2/dt ~ -beta / x2, so a step overshoots x2 below 0
    loss, pol = DPO(beta=0.1), RatioPlane().bind(np.array([[0.3, 0.6]]), np.ones((1, 2)))
    out = run_discrete(loss, pol, GD(lr=0.5), StopRule())
    assert out["status"][0] == "diverged"
    k = int(out["steps"][0])
    assert out["message"][0].startswith(f"step {k + 1}: theta[1] = -")
    assert "left the domain" in out["message"][0]
    theta = pol.theta0  # the last valid point is the one after k steps
    for _ in range(k):
        theta = theta - 0.5 * Objective(loss, pol).grad(theta)
    assert (out["x1_final"][0], out["x2_final"][0]) == tuple(theta[0])
    assert out["t_stop"][0] == k * 0.5 and 0 < out["x2_final"][0] < 1


def test_starts_that_already_meet_a_stop():
    pol = bind("logits", STARTS[:3])  # p0 = (0.3, 0.4), (0.2, 0.5), (0.4, 0.3)
    out = run_discrete(DPO(beta=1.0), pol, GD(lr=0.1), StopRule(p2_floor=0.35, p2_target=0.45, p1_target=0.25))
    assert list(out["status"]) == ["converged"] * 3
    assert out["t_stop"][2] == 0 and out["steps"][2] == 0 and out["t_l"][2] == 0 and out["t_w"][2] == 0
    assert out["p2_final"][2] == pytest.approx(0.3) and out["p_w_min"][2] == pytest.approx(0.4)
    assert out["max_mass"][2] == pytest.approx(0.7) and out["loss_final"][2] == pytest.approx(math.log(2))
    assert np.all(out["steps"][:2] > 0) and out["t_w"][0] == 0 and out["t_l"][0] == 0  # crossed at the start
    assert 0 < out["t_w"][1] <= out["t_stop"][1] and 0 < out["t_l"][1] <= out["t_stop"][1]
    # every start: reached_loss at the start (DPO at h = 0 is log 2)
    out = run_discrete(DPO(), pol, GD(lr=0.1), StopRule(loss_target=0.7))
    assert list(out["status"]) == ["reached_loss"] * 3 and np.all(out["steps"] == 0) and np.all(out["t_stop"] == 0)
    # IPO with h_w - h_l = 0, near 1/(2 beta) = 0.05 at the start: |grad| ~ 0.1, stationary at once
    out = run_discrete(IPO(beta=10.0), pol, GD(lr=0.1), StopRule(stationary_tol=1.0))
    assert list(out["status"]) == ["stationary"] * 3 and np.all(out["steps"] == 0)
    # stationary_tol = 0 turns the test off
    out = run_discrete(IPO(beta=10.0), pol, GD(lr=0.1), StopRule(stationary_tol=0.0, max_steps=3))
    assert list(out["status"]) == ["timeout"] * 3


def test_the_order_of_precedence_at_one_step():
    # one big GD step takes p_l below the floor *and* the loss below its target: converged wins
    pol = bind("logits", STARTS[:1])
    stop = StopRule(p2_floor=0.2, p2_target=0.2, loss_target=0.5, margin_target=0.1, max_steps=1)
    out = run_discrete(DPO(beta=1.0), pol, GD(lr=5.0), stop)
    assert out["status"][0] == "converged" and out["steps"][0] == 1
    assert out["loss_final"][0] <= 0.5 and out["margin_final"][0] >= 0.1  # met too, but later in the order
    out = run_discrete(DPO(beta=1.0), pol, GD(lr=5.0), StopRule(loss_target=0.5, margin_target=0.1, max_steps=1))
    assert out["status"][0] == "reached_loss"  # ... and before timeout at the last step


def test_timeout_counts_steps_on_the_flow_clock():
    assert step_limit(StopRule(t_max=1.0), 0.1) == 10
    assert step_limit(StopRule(t_max=0.3), 0.1) == 3  # 0.3 / 0.1 = 2.9999999999999996
    assert step_limit(StopRule(t_max=1.0), 0.3) == 4
    assert step_limit(StopRule(t_max=1.0, max_steps=5), 0.01) == 5
    assert step_limit(StopRule(t_max=1e4), 1e-300) == 100_000
    out = run_discrete(DPO(), bind("ratio", STARTS[:2]), GD(lr=0.3), StopRule(t_max=1.0))
    np.testing.assert_array_equal(out["steps"], 4)
    np.testing.assert_array_equal(out["t_stop"], 4 * 0.3)


def test_crossings_and_displacement_follow_the_flow():
    # logits, standard reference: the closed form gives t_l (p_l = 0.1) and p_w rises all the way
    pol = SoftmaxLogits(K=10).bind(np.array([[0.3, 0.6]]), np.array([[0.3, 0.6]]))
    stop = StopRule(p2_floor=0.05, p2_target=0.1, p1_target=0.5, t_max=200.0)
    flow = integrate(DPO(beta=1.0), policy=pol.row(0), stop=stop, options=SolverOptions(rtol=1e-11, atol=1e-13))
    for lr in (0.04, 0.02, 0.01):  # each time within two steps of the flow's (measured: within 1.3 steps)
        out = run_discrete(DPO(beta=1.0), pol, GD(lr=lr), stop)
        assert out["status"][0] == flow.status == "converged"
        for f in ("t_stop", "t_w", "t_l"):
            assert abs(out[f][0] - getattr(flow, f)) <= 2 * lr, (lr, f, out[f][0], getattr(flow, f))
        assert not out["displaced"][0] and out["p_w_min"][0] == pytest.approx(0.3) and out["t_p_w_min"][0] == 0
    # features whose phi_w and phi_l nearly coincide: pushing y_l down drags y_w down first
    pol = LogLinearFeatures(K=10, d=4, cos_wl=0.95, norm_ratio=1.5).bind(np.array([[0.3, 0.5]]), np.array([[0.3, 0.5]]))
    out = run_discrete(DPO(beta=1.0), pol, GD(lr=0.05), StopRule(t_max=20.0))
    assert out["displaced"][0] and out["p_w_min"][0] < 0.3 and 0 < out["t_p_w_min"][0] <= out["t_stop"][0]


# -- the runner: vectorised equals rows alone -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("opt_kind", sorted(OPTIMISERS))
def test_vectorised_is_bitwise_each_row_alone(kind, opt_kind):
    # stops at different steps and of different kinds, so rows retire (and the arrays compact) mid-run
    pol = bind(kind)
    lr = LR[opt_kind] * (0.2 if kind == "ratio" else 1.0)
    opt = make_optimiser(opt_kind, lr=lr)
    stop = StopRule(p2_floor=0.12, p2_target=0.2, p1_target=0.45, margin_target=2.0, max_steps=40)
    both = run_discrete(DPO(beta=1.0), pol, opt, stop)
    assert len(set(both["steps"])) >= 3, both["steps"]
    for i in range(len(STARTS)):
        alone = run_discrete(DPO(beta=1.0), pol.row(np.array([i])), opt, stop)
        assert_same_record({f: v[i : i + 1] for f, v in both.items()}, alone)


def test_vectorised_is_bitwise_each_row_alone_with_divergence():
    pol = RatioPlane().bind(np.array([[0.3, 0.6], [0.9, 0.6], [0.5, 0.5], [0.2, 0.2]]), np.ones((4, 2)))
    both = run_discrete(DPO(beta=0.1), pol, GD(lr=0.5), StopRule())
    assert {"diverged", "capped"} <= set(both["status"])
    for i in range(4):
        assert_same_record(
            {f: v[i : i + 1] for f, v in both.items()},
            run_discrete(DPO(beta=0.1), pol.row(np.array([i])), GD(lr=0.5), StopRule()),
        )


def test_the_runner_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        run_discrete(DPO(), RatioPlane().bind([0.3, 0.6], [1.0, 1.0]), GD())
    with pytest.raises(TypeError, match="Optimiser"):
        run_discrete(DPO(), bind("ratio"), "gd")
    out = run_discrete(Objective(DPO(), bind("ratio", STARTS[:2])), None, GD(), StopRule(max_steps=2))
    assert list(out["steps"]) == [2, 2]


@pytest.mark.parametrize("kind", ["ratio", "logits"])
def test_a_recorded_path_is_the_steps_replayed(kind):
    # run_discrete(path=True) keeps the points of the steps themselves: replaying the optimiser's own
    # steps from the start reaches the same parameters, and each path ends at the row's record
    pol, opt, stop = bind(kind), Adam(lr=0.05), StopRule(max_steps=300, loss_target=0.3)
    out = run_discrete(DPO(beta=0.5), pol, opt, stop, path=True, path_points=16)
    objective, theta, state = Objective(DPO(beta=0.5), pol), pol.theta0, opt.init(pol.theta0)
    every = [theta]
    with np.errstate(all="ignore"):  # rows that stopped step on, unread, out of their domain
        for k in range(1, int(out["steps"].max()) + 1):
            theta, state = opt.step(theta, objective.grad(theta), state, k)
            every.append(theta)
    for i in range(len(STARTS)):
        t, x = out["path_t"][i], out["path_x"][i]
        steps = np.rint(t / opt.lr).astype(int)
        assert steps[0] == 0 and steps[-1] == out["steps"][i] and np.all(np.diff(steps) > 0)
        assert len(t) >= min(16, out["steps"][i] + 1)
        np.testing.assert_allclose(x, np.array(every)[steps, i], rtol=1e-12, atol=1e-14)
        p = pol.row(i).probs(x[-1])
        assert (p[0], p[1]) == (out["p1_final"][i], out["p2_final"][i])
