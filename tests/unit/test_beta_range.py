"""Every loss refuses a beta outside its declared range, naming it; inside, rows are correct.

The ends of DPO's range [1e-6, 1e6] are checked against independent references: on the ratio
plane the closed form (beta < 2) and mpmath quadrature of the conserved arc (beta = 1e6, where
the flow saturates on the diagonal); in softmax logits the closed form.  The other losses'
range [1e-6, 10] (DiscoPOP's [0.01, 10]) comes from a scan of their flows at its ends (README).
"""

from __future__ import annotations

import functools
import math

import mpmath as mp
import numpy as np
import pytest

from flowsim._validation import BETA_RANGE, ParamError
from flowsim.dynamics.batched import integrate_batch
from flowsim.dynamics.charts.dpo_ratio import EXP_CAP, _power_product, power_products
from flowsim.dynamics.closed_forms import dpo_logits
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.record import StopRule
from flowsim.experiment.config import ConfigError, parse_experiment
from flowsim.model.losses import DPO, LOSSES
from flowsim.model.parameterisations import RatioPlane, SoftmaxLogits

LO, HI = DPO.beta_range  # DPO's: checked against closed forms and quadrature
STARTS = np.array([[0.3, 0.6], [0.1, 0.9], [0.45, 0.5], [0.6, 0.3], [0.9, 0.2]])


BETA_LOSSES = sorted(k for k, cls in LOSSES.items() if "beta" in cls.__dataclass_fields__)


def _range(kind: str) -> tuple[float, float]:
    return getattr(LOSSES[kind], "beta_range", BETA_RANGE)


@pytest.mark.parametrize("kind", BETA_LOSSES)
@pytest.mark.parametrize("where", ["below", "above", "zero", "negative"])
def test_every_loss_refuses_a_beta_outside_its_range(kind, where):
    lo, hi = _range(kind)
    beta = {"below": lo / 2, "above": hi * 2, "zero": 0.0, "negative": -1.0}[where]
    with pytest.raises(ParamError, match=rf"beta must be a number in \[{lo:g}, {hi:g}\]".replace("+", r"\+")):
        LOSSES[kind](beta=beta)


@pytest.mark.parametrize("kind", BETA_LOSSES)
def test_every_loss_takes_the_ends_of_its_range(kind):
    for beta in _range(kind):
        assert LOSSES[kind](beta=beta).beta == beta


def test_the_declared_ranges():
    assert BETA_RANGE == (1e-6, 10.0)
    assert {k: _range(k) for k in BETA_LOSSES if _range(k) != BETA_RANGE} == {
        "dpo": (1e-6, 1e6),
        "discopop": (0.01, 10.0),
        "nca_pair": (1e-6, 2.0),
    }


def test_an_experiment_file_names_the_key_and_the_range():
    doc = {"name": "x", "loss": {"kind": "ipo", "beta": [0.1, 100.0]}, "grid": {"p1": {"num": 2}, "p2": {"num": 2}}}
    with pytest.raises(ConfigError, match=r"loss\.beta.*\[1e-06, 10\].*100\.0"):
        parse_experiment(doc, source="x.toml")


@pytest.mark.parametrize("beta", [0.1, 1.9, 3.0, 100.0, 1e3, 1e6])
def test_the_chart_product_never_overflows_and_keeps_its_bits(beta, rng):
    z1 = rng.uniform(1e-4, 4.0, 400)
    z2 = rng.uniform(-40.0, 0.5, 400)
    vec = power_products(z1, z2, beta)
    scalar = np.array([_power_product(a, b, beta) for a, b in zip(z1, z2, strict=True)])
    cap = math.exp(EXP_CAP) * (1 + 1e-15)  # numpy's and math's exp may differ in the last bit
    assert np.isfinite(vec).all() and (vec >= 0).all() and (vec <= cap).all() and (scalar <= cap).all()
    np.testing.assert_allclose(vec, scalar, rtol=1e-15, atol=0)
    # where the plain product is representable, both are exactly the expressions used before
    with np.errstate(over="ignore", invalid="ignore"):
        plain = z1 ** (0.5 * beta) * np.exp((2.0 - beta) * z2)
    a, b = 0.5 * beta * np.log(z1), (2.0 - beta) * z2
    fine = (np.abs(a) < EXP_CAP) & (np.abs(b) < EXP_CAP) & (a + b < EXP_CAP)
    assert np.array_equal(vec[fine], plain[fine])
    for i in np.flatnonzero(fine)[:50]:
        assert scalar[i] == z1[i] ** (0.5 * beta) * math.exp((2.0 - beta) * z2[i])


@functools.cache
def _mp_saturated(x0: tuple[float, float], beta: float, t_max: float) -> tuple[float, float]:
    """(p1, p2) at t_max of the reference-free ratio-plane flow at large beta, to 30 digits.

    On the arc x1^2 + x2^2 = R^2, with v = log(x1^2 / x2^2): dt/dv = (1 + e^(beta v / 2))
    R^2 sigmoid(v) sigmoid(-v) / (2 beta).  The time to v is integrated by quadrature and
    T(v) = t_max solved by Newton's method from the saturation estimate.
    """
    with mp.workdps(30):
        b, t_max = mp.mpf(beta), mp.mpf(t_max)
        x1, x2 = (mp.mpf(float(v)) for v in x0)
        r2, v0 = x1**2 + x2**2, mp.log(x1**2 / x2**2)

        def rate(v):
            return (1 + mp.exp(b * v / 2)) * r2 / ((1 + mp.exp(-v)) * (1 + mp.exp(v))) / (2 * b)

        def time(v):
            return mp.quad(rate, mp.linspace(v0, v, 12))

        # T is convex: T(v) >= rate(v0) (v - v0) bounds the root above; Newton then converges from there
        v = min(v0 + t_max / rate(v0), max(v0, mp.mpf(0)) + 2 / b * mp.log(2 * b * t_max * b / r2))
        for _ in range(60):
            step = (time(v) - t_max) / rate(v)
            v -= step
            if abs(step) < mp.mpf(10) ** -25 * (1 + abs(v)):
                break
        s = r2 / (1 + mp.exp(-v))
        return float(mp.sqrt(s)), float(mp.sqrt(r2 - s))


@pytest.mark.parametrize(("t_max", "status"), [(1e4, "timeout"), (1e12, "converged")])
@pytest.mark.parametrize("engine", ["driver", "batched"])
def test_ratio_plane_at_the_small_end_matches_the_closed_form(engine, t_max, status):
    stop, opts = StopRule(t_max=t_max), SolverOptions()
    exact = exact_dpo(STARTS, beta=LO, stop=stop)
    got = _integrate(DPO(beta=LO), RatioPlane().bind(STARTS, np.ones_like(STARTS)), stop, opts, engine)
    assert got["status"].tolist() == exact["status"].tolist() == [status] * len(STARTS)
    for k in ("p1_final", "p2_final", "t_stop"):
        assert np.max(np.abs(got[k] / exact[k] - 1)) < 1e-8, k


@pytest.mark.parametrize("engine", ["driver", "batched"])
def test_ratio_plane_at_the_large_end_matches_quadrature(engine):
    stop, opts = StopRule(), SolverOptions()
    got = _integrate(DPO(beta=HI), RatioPlane().bind(STARTS, np.ones_like(STARTS)), stop, opts, engine)
    assert got["status"].tolist() == ["timeout"] * len(STARTS)
    for i, x0 in enumerate(STARTS):
        p1, p2 = _mp_saturated(tuple(x0), HI, stop.t_max)  # cached: both engines use it
        assert abs(got["p1_final"][i] / p1 - 1) < 1e-9 and abs(got["p2_final"][i] / p2 - 1) < 1e-9


@pytest.mark.parametrize("beta", DPO.beta_range)
@pytest.mark.parametrize("engine", ["driver", "batched"])
def test_logits_at_both_ends_match_the_closed_form(beta, engine):
    stop, opts = StopRule(), SolverOptions()
    starts = STARTS[STARTS.sum(axis=1) < 1]
    policy = SoftmaxLogits(K=10).bind(starts, starts.copy())
    exact = dpo_logits.flows(DPO(beta=beta), policy, stop)
    got = _integrate(DPO(beta=beta), policy, stop, opts, engine)
    assert got["status"].tolist() == list(exact["status"])
    for k in ("p1_final", "p2_final", "t_stop"):
        assert np.max(np.abs(got[k] / exact[k] - 1)) < 1e-7, k


def _integrate(loss, policy, stop, opts, engine: str) -> dict[str, np.ndarray]:
    if engine == "batched":
        return integrate_batch(loss, policy, stop, opts)
    rows = [integrate(loss, policy=policy.row(i), stop=stop, options=opts) for i in range(len(policy.theta0))]
    return {k: np.array([getattr(r, k) for r in rows]) for k in ("status", "p1_final", "p2_final", "t_stop")}
