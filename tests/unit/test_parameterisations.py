"""The softmax-logits and log-linear-features parameterisations: values by hand, geometry, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowsim._validation import ParamError
from flowsim.model import Objective
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import (
    PARAMETERISATIONS,
    LogLinearFeatures,
    SoftmaxLogits,
    make_parameterisation,
)


def test_registered_by_kind():
    assert PARAMETERISATIONS["logits"] is SoftmaxLogits
    assert PARAMETERISATIONS["features"] is LogLinearFeatures
    assert make_parameterisation("logits", K=5, zipf=1.0) == SoftmaxLogits(K=5, zipf=1.0)
    assert SoftmaxLogits().params() == {"K": 10, "zipf": 0.0}
    assert LogLinearFeatures().params() == {
        "K": 10,
        "d": 8,
        "cos_wl": 0.0,
        "norm_ratio": 1.0,
        "other_scale": 1.0,
        "seed": 0,
        "train_bias": False,
        "zipf": 0.0,
    }
    assert SoftmaxLogits.normalised and LogLinearFeatures.normalised


# ---- logits ----------------------------------------------------------------------------


def test_logits_even_split_by_hand():
    pol = SoftmaxLogits(K=3).bind([0.3, 0.6], [0.3, 0.6])
    np.testing.assert_allclose(pol.theta0, np.log([0.3, 0.6, 0.1]), rtol=1e-15)
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.3, 0.6, 0.1], rtol=1e-14)
    np.testing.assert_allclose(pol.log_ratios(pol.theta0), [0.0, 0.0], atol=1e-15)
    pol = SoftmaxLogits(K=6).bind([0.3, 0.6], [1.0, 1.0])  # 0.1 over four others
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.3, 0.6, 0.025, 0.025, 0.025, 0.025], rtol=1e-14)
    np.testing.assert_allclose(pol.log_ratios(pol.theta0), np.log([0.3, 0.6]), rtol=1e-15)
    assert pol.dim == pol.n_responses == 6


def test_logits_zipf_split_by_hand():
    # K = 5, zipf = 1: the three others get 0.1 (1, 1/2, 1/3) / (11/6) = (6, 3, 2)/110
    pol = SoftmaxLogits(K=5, zipf=1.0).bind([0.3, 0.6], [1.0, 1.0])
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.3, 0.6, 6 / 110, 3 / 110, 2 / 110], rtol=1e-14)
    # K = 4, zipf = 2: (1, 1/4) / (5/4) of 0.5
    pol = SoftmaxLogits(K=4, zipf=2.0).bind([0.2, 0.3], [1.0, 1.0])
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.2, 0.3, 0.4, 0.1], rtol=1e-14)


def test_logits_are_stable_and_shift_invariant():
    pol = SoftmaxLogits(K=4).bind([0.3, 0.6], [0.3, 0.6])
    theta = np.array([1000.0, -1000.0, 999.0, 0.0])
    lp = pol.log_probs(theta)
    assert np.all(np.isfinite(lp)) and np.isclose(np.exp(lp).sum(), 1.0)
    np.testing.assert_allclose(pol.log_probs(theta + 123.0), lp, rtol=1e-15)
    assert pol.in_domain(theta) and not pol.in_domain(np.array([np.nan, 0, 0, 0]))
    assert not pol.in_domain(np.array([np.inf, 0, 0, 0]))
    np.testing.assert_array_equal(pol.theta_scale(np.array([0.5, -3.0, 0.0, 2.0])), [1.0, 3.0, 1.0, 2.0])


def test_logits_vjp_by_hand():
    pol = SoftmaxLogits(K=3).bind([0.3, 0.6], [0.3, 0.6])
    # g = (g_w, g_l): e_{w,l} . g - p (g_w + g_l)
    np.testing.assert_allclose(pol.vjp(pol.theta0, [1.0, 0.0]), [0.7, -0.6, -0.1], atol=1e-15)
    np.testing.assert_allclose(pol.vjp(pol.theta0, [2.0, 1.0]), [2 - 0.9, 1 - 1.8, -0.3], atol=1e-15)
    np.testing.assert_allclose(pol.vjp(pol.theta0, [-1.0, 1.0]), [-1.0, 1.0, 0.0], atol=1e-15)


def test_rows_and_batches_agree():
    p0 = np.array([[0.3, 0.6], [0.05, 0.05], [0.7, 0.2]])
    ref = np.array([[0.3, 0.6], [0.5, 0.2], [1.0, 1.0]])
    for par in (SoftmaxLogits(K=7, zipf=0.5), LogLinearFeatures(K=7, d=3), LogLinearFeatures(K=5, train_bias=True)):
        pol = par.bind(p0, ref)
        theta = pol.theta0 + 0.1 * np.random.default_rng(0).normal(size=pol.theta0.shape)
        g = np.random.default_rng(1).normal(size=(3, 2))
        for i in range(3):
            one, single = pol.row(i), par.bind(p0[i], ref[i])
            np.testing.assert_array_equal(one.theta0, single.theta0)
            np.testing.assert_allclose(one.log_ratios(theta[i]), pol.log_ratios(theta)[i], rtol=1e-14)
            np.testing.assert_allclose(single.vjp(theta[i], g[i]), pol.vjp(theta, g)[i], rtol=1e-14)


@pytest.mark.parametrize("par", [SoftmaxLogits(K=3), LogLinearFeatures(K=3, d=2)])
def test_normalised_models_need_mass_left_for_the_others(par):
    with pytest.raises(ValueError, match=r"p0 must have p_w0 \+ p_l0 < 1.*\[0.5, 0.5\]"):
        par.bind([0.5, 0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"p0 must have p_w0 > 0"):
        par.bind([[0.3, 0.6], [0.0, 0.5]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"ref must be in \(0, 1\]"):
        par.bind([0.3, 0.6], [1.5, 1.0])


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    [
        (SoftmaxLogits, {"K": 2}, ValueError, "K must be a whole number >= 3; got 2"),
        (SoftmaxLogits, {"K": 3.5}, ValueError, "K must be a whole number; got 3.5"),
        (SoftmaxLogits, {"K": True}, ValueError, "K must be a whole number; got True"),
        (SoftmaxLogits, {"zipf": -0.5}, ValueError, "zipf must be a finite number >= 0; got -0.5"),
        (LogLinearFeatures, {"K": 1}, ValueError, "K must be a whole number >= 3; got 1"),
        (LogLinearFeatures, {"d": 1}, ValueError, "d must be a whole number >= 2; got 1"),
        (LogLinearFeatures, {"cos_wl": 1.5}, ValueError, r"cos_wl must be in \[-1, 1\]; got 1.5"),
        (LogLinearFeatures, {"norm_ratio": 0.0}, ValueError, "norm_ratio must be a finite number > 0; got 0.0"),
        (LogLinearFeatures, {"other_scale": -1.0}, ValueError, "other_scale must be a finite number >= 0; got -1.0"),
        (LogLinearFeatures, {"seed": -1}, ValueError, "seed must be a whole number >= 0; got -1"),
        (LogLinearFeatures, {"train_bias": "yes"}, ValueError, "train_bias must be true or false; got 'yes'"),
        (LogLinearFeatures, {"zipf": float("nan")}, ValueError, "zipf must be a finite number"),
    ],
)
def test_validation_names_field_rule_and_value(cls, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        cls(**kwargs)
    assert isinstance(info.value, ParamError) and info.value.key == next(iter(kwargs))


# ---- features ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cos_wl", "norm_ratio"), [(0.0, 1.0), (0.5, 2.0), (-1.0, 0.3), (1.0, 1.0), (0.9, 1.7)])
def test_feature_geometry(cos_wl, norm_ratio):
    par = LogLinearFeatures(K=50, d=6, cos_wl=cos_wl, norm_ratio=norm_ratio, other_scale=2.0, seed=3)
    phi = par.phi
    assert phi.shape == (50, 6)
    phi_w, phi_l = phi[0], phi[1]
    assert np.isclose(np.linalg.norm(phi_w), 1.0, rtol=1e-15)
    assert np.isclose(np.linalg.norm(phi_l), norm_ratio, rtol=1e-15)
    cos = phi_w @ phi_l / (np.linalg.norm(phi_w) * np.linalg.norm(phi_l))
    assert np.isclose(cos, cos_wl, rtol=1e-14, atol=1e-15)
    # others ~ N(0, other_scale^2 / d) per coordinate: mean squared row norm about other_scale^2
    assert 0.7 * 4.0 < np.mean(np.sum(phi[2:] ** 2, axis=1)) < 1.3 * 4.0


def test_features_are_reproducible_from_the_fields():
    a, b = LogLinearFeatures(seed=5), LogLinearFeatures(seed=5)
    np.testing.assert_array_equal(a.phi, b.phi)
    assert not np.array_equal(a.phi, LogLinearFeatures(seed=6).phi)
    assert a == b and hash(a) == hash(b)
    assert LogLinearFeatures(other_scale=0.0).phi[2:].tolist() == np.zeros((8, 8)).tolist()
    pol = a.bind([[0.3, 0.6], [0.1, 0.2]], [1.0, 1.0])
    np.testing.assert_array_equal(pol.phi, a.phi)
    np.testing.assert_array_equal(pol.row(1).phi, a.phi)  # one Phi for every row


def test_features_start_at_the_sft_model():
    pol = LogLinearFeatures(K=5, d=3, zipf=1.0).bind([0.3, 0.6], [0.3, 0.6])
    assert pol.dim == 3 and pol.n_responses == 5
    np.testing.assert_array_equal(pol.theta0, np.zeros(3))
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.3, 0.6, 6 / 110, 3 / 110, 2 / 110], rtol=1e-14)
    pol = LogLinearFeatures(K=3, d=2, train_bias=True).bind([0.3, 0.6], [1.0, 1.0])
    assert pol.dim == 5
    np.testing.assert_allclose(pol.theta0, [0.0, 0.0, *np.log([0.3, 0.6, 0.1])], rtol=1e-15)
    np.testing.assert_allclose(pol.probs(pol.theta0), [0.3, 0.6, 0.1], rtol=1e-14)


def test_features_logits_by_hand():
    par = LogLinearFeatures(K=3, d=2, cos_wl=0.0, norm_ratio=2.0, other_scale=0.0)
    pol = par.bind([0.3, 0.6], [0.3, 0.6])
    # Phi = [[1, 0], [0, 2], [0, 0]]: z = log p0 + (t1, 2 t2, 0)
    theta = np.array([0.4, -0.25])
    z = np.log([0.3, 0.6, 0.1]) + np.array([0.4, -0.5, 0.0])
    np.testing.assert_allclose(pol.log_probs(theta), z - np.logaddexp.reduce(z), rtol=1e-14)
    # vjp = Phi^T g_z with g_z = e . g - p (g_w + g_l)
    p = np.exp(z - np.logaddexp.reduce(z))
    gz = np.array([1.0, -1.0, 0.0]) - p * (1.0 - 1.0)  # g_w + g_l = 0: the normaliser drops out
    np.testing.assert_allclose(pol.vjp(theta, [1.0, -1.0]), [gz[0], 2 * gz[1]], rtol=1e-14)


def test_identical_features_cannot_separate_the_pair():
    # cos_wl = 1, norm_ratio = 1: phi_w = phi_l, so theta moves z_w and z_l together
    par = LogLinearFeatures(K=6, d=4, cos_wl=1.0, norm_ratio=1.0)
    pol = par.bind([0.3, 0.6], [0.3, 0.6])
    rng = np.random.default_rng(2)
    theta = rng.normal(scale=3.0, size=(100, 4))
    h = pol.log_ratios(theta)
    np.testing.assert_allclose(h[:, 0] - h[:, 1], 0.0, atol=1e-12)  # the margin stays at its start, 0
    obj = Objective(DPO(beta=0.5), pol)
    np.testing.assert_allclose(obj.grad(theta), 0.0, atol=1e-14)  # DPO's flow does not move at all
    # a trained bias can separate them
    pol = LogLinearFeatures(K=6, d=4, cos_wl=1.0, train_bias=True).bind([0.3, 0.6], [0.3, 0.6])
    g = Objective(DPO(beta=0.5), pol).grad(pol.theta0)
    np.testing.assert_allclose(g[:4], 0.0, atol=1e-15)
    np.testing.assert_allclose(g[4:], [-0.25, 0.25, 0, 0, 0, 0], atol=1e-15)


# ---- VJP against finite differences, for random theta ---------------------------------------

POLICIES = {
    "logits": SoftmaxLogits(K=5, zipf=1.0).bind([0.2, 0.5], [0.4, 0.3]),
    "features": LogLinearFeatures(K=6, d=3, cos_wl=0.4, norm_ratio=1.5).bind([0.2, 0.5], [0.4, 0.3]),
    "features_bias": LogLinearFeatures(K=4, d=2, cos_wl=-0.3, train_bias=True).bind([0.2, 0.5], [1.0, 1.0]),
}


@given(
    name=st.sampled_from(sorted(POLICIES)),
    theta=arrays(np.float64, 10, elements=st.floats(-4, 4)),
    g=arrays(np.float64, 2, elements=st.floats(-3, 3)),
)
def test_vjp_matches_central_differences(name, theta, g):
    pol = POLICIES[name]
    th = pol.theta0 + theta[: pol.dim]
    step = 1e-6
    jac = np.empty((2, pol.dim))
    for k in range(pol.dim):
        e = np.zeros(pol.dim)
        e[k] = step
        jac[:, k] = (pol.log_ratios(th + e) - pol.log_ratios(th - e)) / (2 * step)
    np.testing.assert_allclose(pol.vjp(th, g), g @ jac, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", sorted(__import__("flowsim.model.parameterisations", fromlist=["MODELS"]).MODELS))
def test_a_models_own_columns_do_not_repeat_its_keys_or_the_record(kind):
    """flows.csv's header has each name once: a model's extra columns (and predictors) are not its own
    configuration keys nor the record's columns (a per-pair edit distance once shadowed the network's key)."""
    from dataclasses import fields

    from flowsim.experiment.schema import LEADING, PROVENANCE
    from flowsim.model.parameterisations import MODELS

    cls = MODELS[kind]
    extra = list(cls.extra_columns)
    assert len(set(extra)) == len(extra)
    assert set(cls.probe_columns) <= set(extra) or not set(cls.probe_columns) & {f.name for f in fields(cls)}
    assert not set(extra) & ({f.name for f in fields(cls)} | set(LEADING) | set(PROVENANCE))
