"""The integrator at its defaults against the oracles, on every parameterisation (issue #10).

* logits: the DPO closed form (flowsim.dynamics.closed_forms.dpo_logits) over 500 random starts,
  beta in [0.05, 2], K in {3, 10, 100}, references fixed, the start, or none.
* features: no closed form; the defaults against a tight-tolerance run (rtol 1e-12).
* the parameterisation matters: ratio plane and logits end at different p_w from one start.
"""

import numpy as np
import pytest

from flowsim.dynamics.closed_forms import closed_form
from flowsim.dynamics.driver import SolverOptions, integrate
from flowsim.dynamics.record import StopRule
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import PARAMETERISATIONS

FIELDS = ("t_stop", "p1_final", "p2_final")


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.abs(a - b) / np.abs(b)
    return np.where(a == b, 0.0, out)


def _starts(rng, n):
    p = rng.uniform(0.01, 0.98, (4 * n, 2))
    return p[p.sum(1) < 0.99][:n]


@pytest.mark.slow
@pytest.mark.parametrize("K", [3, 10, 100])
def test_logits_integrator_matches_the_closed_form(K):
    rng = np.random.default_rng(K)
    n = 167 if K != 100 else 166  # 500 starts in all
    p0 = _starts(rng, n)
    kinds = rng.integers(0, 3, n)  # reference: fixed / the start / none
    ref = np.where((kinds == 0)[:, None], rng.uniform(0.05, 1, (n, 2)), np.where((kinds == 1)[:, None], p0, 1.0))
    betas = rng.uniform(0.05, 2.0, n)
    stop = StopRule(t_max=1e6)
    worst = dict.fromkeys(FIELDS, 0.0)
    pol = PARAMETERISATIONS["logits"](K=K).bind(p0, ref)
    for i in range(n):
        one = pol.row(i)
        exact = closed_form("dpo", "logits").flows(DPO(betas[i]), one, stop)
        r = integrate(DPO(betas[i]), policy=one, stop=stop)
        assert r.status == exact["status"], (i, r.status, exact["status"])
        for k in FIELDS:
            worst[k] = max(worst[k], float(rel(getattr(r, k), exact[k])))
    assert max(worst.values()) <= 1e-6, worst


@pytest.mark.slow
def test_features_defaults_match_a_tight_run():
    rng = np.random.default_rng(8)
    p0 = _starts(rng, 40)
    tight = SolverOptions(rtol=1e-12, atol=1e-14)
    for cos_wl, norm_ratio in ((0.0, 1.0), (0.9, 1.25), (0.99, 1.0)):
        pol = PARAMETERISATIONS["features"](cos_wl=cos_wl, norm_ratio=norm_ratio).bind(p0, p0)
        for i in range(len(p0)):
            a = integrate(DPO(0.1), policy=pol.row(i), stop=StopRule(t_max=1e3))
            b = integrate(DPO(0.1), policy=pol.row(i), stop=StopRule(t_max=1e3), options=tight)
            assert a.status == b.status
            for k in (*FIELDS, "p_w_min"):
                assert rel(getattr(a, k), getattr(b, k)) <= 1e-6, (cos_wl, norm_ratio, i, k)


def test_the_parameterisation_matters():
    # from (0.3, 0.6), beta = 0.1, reference = the start, stopping at p_l = 0.06:
    # the ratio plane's circle gives p_w = 0.3 sqrt(2 - 0.1^2) = 0.423; logits 0.886
    stop = StopRule(p2_floor=0.06, p2_target=0.06)
    p0 = np.array([0.3, 0.6])
    ends = {
        kind: integrate(DPO(0.1), policy=PARAMETERISATIONS[kind]().bind(p0, p0), stop=stop).p1_final
        for kind in ("ratio", "logits")
    }
    assert ends["ratio"] == pytest.approx(0.3 * np.sqrt(2 - 0.1**2), rel=1e-7)
    assert ends["logits"] == pytest.approx(0.885666, abs=1e-6)
