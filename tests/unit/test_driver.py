"""The integrator, checked against the closed form (the oracle) and for every way it can stop."""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from flowsim.dynamics.charts import RATIO_CHARTS, RatioChart, RatioChartSpec
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo
from flowsim.dynamics.driver import METHODS, SolverOptions, integrate
from flowsim.dynamics.record import RESULT_FIELDS, StopRule
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import RatioPlane


def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    same = (np.isnan(a) & np.isnan(b)) | (a == b)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(a - b) / np.abs(b)
    err[same] = 0.0
    err[np.isnan(err)] = np.inf  # NaN on one side only
    return err


def test_against_exact_flow_at_500_random_initial_conditions():
    rng = np.random.default_rng(7)
    n = 500
    beta, ref_w, ref_l = rng.uniform(0.05, 1, n), rng.uniform(0.05, 1, n), rng.uniform(0.05, 1, n)
    p0 = rng.uniform(1e-3, 1, (n, 2))
    x0 = p0 / np.stack([ref_w, ref_l], -1)
    exact = exact_dpo(x0, beta=beta, ref_w=ref_w, ref_l=ref_l)
    runs = [integrate(DPO(b), x, ref=(w, lo)) for b, w, lo, x in zip(beta, ref_w, ref_l, x0, strict=True)]
    got = {k: np.array([getattr(r, k) for r in runs]) for k in RESULT_FIELDS}
    assert np.array_equal(got["status"], exact["status"])
    assert set(exact["status"]) == {"converged", "capped"}  # both outcomes are exercised
    # within ~3x of the worst error measured (DOP853 at rtol 1e-9): t_w's crossing, found on the
    # dense output and not landed on, is the least accurate; x1 (= p_w / ref_w) the most
    tol = {
        "t_stop": 3e-8,
        "t_w": 3e-7,
        "t_l": 1.5e-8,
        "x1_final": 1e-10,
        "x2_final": 5e-9,
        "p1_final": 1e-10,
        "p2_final": 5e-9,
    }  # measured: 8.8e-9, 9.1e-8, 3.6e-9, 3.2e-11, 1.2e-9, 3.2e-11, 1.2e-9
    for k, bound in tol.items():
        assert rel_err(got[k], exact[k]).max() <= bound, k
    assert np.all(got["nfev"] > 0)


#: Relative error bounds (t_stop, x1_final) per method at rtol 1e-10: ~3x the worst measured over
#: both charts (RK23 2.8e-9, 6.1e-10; RK45 5.3e-10, 1.2e-10; DOP853 5.5e-11, 3.8e-12;
#: Radau 2.3e-12, 2.3e-13; BDF 1.9e-8, 2.9e-9; LSODA 2.8e-9, 6.1e-10).
METHOD_TOL = {
    "RK23": (1e-8, 2e-9),
    "RK45": (2e-9, 4e-10),
    "DOP853": (2e-10, 1.5e-11),
    "Radau": (1e-11, 1e-12),
    "BDF": (6e-8, 1e-8),
    "LSODA": (1e-8, 2e-9),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("chart", ["smooth", "identity"])
def test_every_method_and_chart_agrees_with_the_exact_flow(method, chart):
    x0 = np.array([[0.05, 0.9], [0.6, 0.4], [0.9, 0.9], [0.2, 0.02]])
    exact = exact_dpo(x0, beta=0.3)
    opts = SolverOptions(method=method, rtol=1e-10, atol=1e-13, chart=chart)
    t_tol, x_tol = METHOD_TOL[method]
    for i, x in enumerate(x0):
        r = integrate(DPO(beta=0.3), x, options=opts)
        assert r.status == exact["status"][i]
        assert r.t_stop == pytest.approx(exact["t_stop"][i], rel=t_tol)
        assert r.x1_final == pytest.approx(exact["x1_final"][i], rel=x_tol)


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.0, 3.0])
def test_conservation_along_paths(beta):
    # x1^2 + x2^2 is constant on every path, for every beta (also beta >= 2, where there is no closed form).
    for x0 in ([0.1, 0.9], [0.5, 0.5], [0.95, 0.2]):
        r = integrate(DPO(beta=beta), x0, path=True)
        r2 = (r.path_x**2).sum(1)
        np.testing.assert_allclose(r2, sum(v * v for v in x0), rtol=5e-10)  # measured: <= 1.7e-10
        assert np.all(np.diff(r.path_x[:, 0]) >= 0) and np.all(np.diff(r.path_x[:, 1]) <= 0)
        assert r.path_t[-1] == pytest.approx(r.t_stop)


def test_every_status_is_reachable():
    loss = DPO(beta=0.1)
    assert integrate(loss, [0.5, 0.5]).status == "converged"
    assert integrate(loss, [0.9, 0.9]).status == "capped"
    r = integrate(loss, [0.5, 0.5], StopRule(t_max=1e-3))
    assert (r.status, r.t_stop) == ("timeout", 1e-3)
    assert math.isnan(r.t_w) and math.isnan(r.t_l)

    # another kind than "dpo": no chart is registered for it, so its own gradient is integrated
    @dataclass(frozen=True)
    class Broken(DPO):
        kind = "broken"

        def grad(self, h, log_ref=0.0):
            return np.full(np.shape(h), math.nan)

    r = integrate(Broken(), [0.5, 0.5])
    assert r.status == "failed" and r.message and math.isnan(r.t_stop)

    @dataclass(frozen=True)
    class Raising(DPO):
        kind = "raising"

        def grad(self, h, log_ref=0.0):
            raise ZeroDivisionError("boom")

    r = integrate(Raising(), [0.5, 0.5])
    assert r.status == "failed" and "ZeroDivisionError: boom" in r.message


def test_start_already_stopped_costs_nothing():
    r = integrate(DPO(), [0.3, 1e-7])
    assert (r.status, r.t_stop, r.nfev, r.t_l) == ("converged", 0.0, 0, 0.0)
    assert math.isnan(r.t_w)
    r = integrate(DPO(), [2.0, 0.5], ref=(0.5, 1.0))
    assert (r.status, r.t_stop, r.p1_final, r.t_w) == ("capped", 0.0, 1.0, 0.0)


def test_crossings_found_by_events_not_sampling():
    # with a huge t_max the saved path is a handful of steps, but t_w and t_l still match the closed form
    x0 = [0.1, 0.95]
    exact = exact_dpo(x0, beta=0.5)
    r = integrate(DPO(beta=0.5), x0)
    assert r.t_w == pytest.approx(float(exact["t_w"]), rel=1e-9)  # measured: 3.3e-10
    assert r.t_l == pytest.approx(float(exact["t_l"]), rel=1e-9)  # measured: 2.6e-10


def test_beta_two_uses_the_log_chart():
    spec = RATIO_CHARTS["dpo"]
    assert (spec.exponents, spec.clock) == ((2.0, 0.0), 1) and spec.applies(DPO(beta=2.0))
    r = integrate(DPO(beta=2.0), [0.5, 0.5])
    assert r.status == "converged" and np.isfinite(r.t_stop)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: integrate(DPO(), [1.5, 0.5]), r"start must lie in the model's domain.*1\.5.*x1 <= 1"),
        (lambda: integrate(DPO(), [0.0, 0.5]), "start must lie in the model's domain"),
        (lambda: integrate(DPO(), [np.nan, 0.5]), "start must lie in the model's domain"),
        (lambda: integrate(DPO(), [[0.5, 0.5]]), r"shape \(2,\)"),
        (lambda: SolverOptions(method="Euler"), "method must be one of.*'Euler'"),
        (lambda: SolverOptions(rtol=0), "rtol"),
        (lambda: SolverOptions(atol=-1), "atol"),
        (lambda: StopRule(p2_floor=0), "p2_floor"),
        (lambda: StopRule(p2_target=1e-9), "p2_target"),
        (lambda: StopRule(t_max=math.inf), "t_max"),
        (lambda: StopRule(p1_target=1.2), "p1_target"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_auto_means_the_default_method():
    assert SolverOptions(method="auto") == SolverOptions()


def _ratio_chart(loss, spec):
    return RatioChart(Objective(loss, RatioPlane().bind(np.array([0.5, 0.5]), np.ones(2))), spec)


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5, 1.0, 2.0, 3.0])
def test_closed_form_field_agrees_with_the_composed_one(beta, rng):
    loss, spec = DPO(beta=beta), RATIO_CHARTS["dpo"]
    composed = RatioChartSpec(spec.exponents, spec.clock, field=None)  # the same chart, field from the gradient
    x = rng.uniform(1e-6, 1, (200, 2))
    z = np.stack([x[:, 0] ** 2, np.log(x[:, 1])], -1)
    fast = _ratio_chart(loss, spec)._field(tuple(z[0]))
    slow = _ratio_chart(loss, composed)._field(tuple(z[0]))
    for z1, z2 in z.tolist():
        np.testing.assert_allclose(fast(z1, z2), slow(z1, z2), rtol=1e-13)


@pytest.fixture
def register_chart(monkeypatch):
    """Register a chart for a test-only loss kind, for the duration of a test."""

    def register(kind, spec):
        monkeypatch.setitem(RATIO_CHARTS, kind, spec)

    return register


@dataclass(frozen=True)
class Composed(DPO):
    """DPO under another kind: its registered chart has no closed-form field."""

    kind = "dpo_composed"


def test_the_composed_field_integrates_as_accurately(register_chart):
    spec = RATIO_CHARTS["dpo"]
    register_chart("dpo_composed", RatioChartSpec(spec.exponents, spec.clock, field=None))
    x0 = np.array([[0.05, 0.9], [0.6, 0.4], [0.9, 0.9], [0.2, 0.02], [0.98, 0.05]])
    exact = exact_dpo(x0, beta=0.3)
    for i, x in enumerate(x0):
        r = integrate(Composed(beta=0.3), x)
        assert r.status == exact["status"][i]
        for k in ("t_stop", "t_w", "t_l"):
            assert rel_err([getattr(r, k)], [exact[k][i]]).max() <= 1e-9, k  # measured: <= 3.4e-10


def test_a_chart_without_a_clock_integrates_in_time(register_chart):
    register_chart("dpo_composed", RatioChartSpec((2.0, 1.5), None, field=None))  # z = (x1^2, x2^(2 - beta))
    x0 = np.array([[0.3, 0.6], [0.9, 0.5]])
    exact = exact_dpo(x0, beta=0.5)
    for i, x in enumerate(x0):
        r = integrate(Composed(beta=0.5), x)
        assert r.status == exact["status"][i]
        assert r.t_stop == pytest.approx(exact["t_stop"][i], rel=5e-10)  # measured: 1.3e-10
    r = integrate(Composed(beta=0.5), [0.3, 0.6], StopRule(t_max=0.1))
    assert (r.status, r.t_stop) == ("timeout", 0.1)


def test_a_stop_found_by_an_event_is_landed_on():
    # short capped flows take two long steps: the cap, found on the dense output, used to carry
    # 7.5e-9 of relative error at rtol 1e-9; landing on it brings that to the steps' own accuracy
    x0 = np.array([[0.925, 0.648], [0.899, 0.774], [0.925, 0.6]])
    exact = exact_dpo(x0, beta=0.1)
    got = [integrate(DPO(beta=0.1), x) for x in x0]
    assert [r.status for r in got] == ["capped"] * 3
    assert rel_err([r.t_stop for r in got], exact["t_stop"]).max() <= 2e-9
    assert rel_err([r.x2_final for r in got], exact["x2_final"]).max() <= 1e-9


def test_a_stop_at_the_last_accepted_point_needs_no_landing_step():
    """An event root at (or before) the last accepted point is landed on as it is: no step, 0 evaluations
    (a count of 1 there would overstate nfev for flows that stop at their first point, e.g. beta = 1e6)."""
    from types import SimpleNamespace

    from flowsim.dynamics.driver import _land

    sol = SimpleNamespace(t=np.array([0.0, 0.5]), y=np.array([[1.0, 2.0], [3.0, 4.0]]))
    y_e = np.array([5.0, 6.0])

    def never(*args):  # a landing step would call the field, the event or its slope
        raise AssertionError("no landing step expected")

    for tau_e in (0.0, -0.1):
        tau, y, nfev = _land(SimpleNamespace(rhs=never, jac=None), sol, SolverOptions(), never, never, tau_e, y_e)
        assert (tau, nfev) == (tau_e, 0) and y is y_e


def test_a_stiff_flow_is_integrated_again_with_lsoda():
    """IPO's finite minimiser makes the flow stiff: DOP853 would crawl at its stability limit for
    millions of steps without |grad L| ever reaching stationary_tol; once Hairer's test sees its
    steps held there (or past max_nfev) the flow is integrated again with LSODA, and says so."""
    from flowsim.dynamics.batched import integrate_batch
    from flowsim.model.losses import IPO

    fast = SolverOptions(max_nfev=2000)
    r = integrate(IPO(beta=0.1), [0.05, 0.05], options=fast)
    assert r.status == "stationary" and r.message.startswith("stiff: DOP853's steps were held at its stability")
    assert "(Hairer's test, at tau = " in r.message and r.message.endswith("; integrated with LSODA")
    direct = integrate(IPO(beta=0.1), [0.05, 0.05], options=SolverOptions(method="LSODA"))
    assert (r.t_stop, r.p1_final, r.p2_final) == (direct.t_stop, direct.p1_final, direct.p2_final)
    assert direct.nfev < r.nfev < direct.nfev + 2000  # found before the budget
    tiny = integrate(IPO(beta=0.1), [0.05, 0.05], options=SolverOptions(max_nfev=100))  # the budget, first
    assert tiny.message == "stiff: DOP853 needed more than 100 evaluations; integrated with LSODA"
    assert tiny.nfev == direct.nfev + 100 and tiny.t_stop == direct.t_stop
    pol = RatioPlane().bind(np.array([[0.05, 0.05], [0.3, 0.6]]), np.ones((2, 2)))
    out = integrate_batch(IPO(beta=0.1), pol, StopRule(), SolverOptions(max_nfev=2000))
    assert out["status"].tolist() == ["stationary"] * 2 and out["t_stop"][0] == r.t_stop
    assert all(m.startswith("stiff: DOP853") for m in out["message"])
    for bad in (0, 0.5, 2000.0, True):
        with pytest.raises(ValueError, match="max_nfev must be a whole number >= 1"):
            SolverOptions(max_nfev=bad)


def test_stop_rule_defaults_are_the_documented_ones():
    # each "name : type, default V" line of StopRule's docstring against the dataclass's default
    import dataclasses
    import re

    documented = dict(re.findall(r"^\s+(\w+) : [\w ,|]+?, default ([-+.\w]+)$", StopRule.__doc__, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(StopRule) if f.default is not None}
    assert documented.keys() == fields.keys()
    for name, text in documented.items():
        assert float(text) == fields[name], name
    assert StopRule().loss_target is None and StopRule().margin_target is None  # "off by default"


@pytest.mark.parametrize("chart", ["smooth", "identity"])  # the clock an event, or the end of the integration
def test_a_timeout_ends_where_the_exact_flow_is_at_t_max(chart):
    x0 = np.array([[0.05, 0.9], [0.6, 0.4], [0.3, 0.7]])
    stop = StopRule(t_max=0.5)
    exact = exact_dpo(x0, beta=0.3, stop=stop)
    assert exact["status"].tolist() == ["timeout"] * 3
    for i, x in enumerate(x0):
        r = integrate(DPO(beta=0.3), x, stop, SolverOptions(chart=chart))
        assert (r.status, r.t_stop) == ("timeout", 0.5)
        for k in ("x1_final", "x2_final", "p1_final", "p2_final", "loss_final"):
            assert getattr(r, k) == pytest.approx(exact[k][i], rel=1e-9), k
    # a crossing in the last step before the clock stops it still counts
    t_l = float(exact_dpo(x0[1], beta=0.3)["t_l"])
    r = integrate(DPO(beta=0.3), x0[1], StopRule(t_max=t_l * 1.001), SolverOptions(chart=chart))
    assert r.status == "timeout" and r.t_l == pytest.approx(t_l, rel=1e-9)


def test_top_other_is_the_most_probable_other_response():
    from flowsim.model.parameterisations import SoftmaxLogits

    p0 = np.array([0.3, 0.4])
    pol = SoftmaxLogits(K=6, zipf=1.0).bind(p0, p0)
    others = pol.probs(pol.theta0)[2:]
    assert len(set(np.round(others, 12))) == 4  # the other responses' probabilities differ
    r = integrate(DPO(beta=0.5), policy=pol, stop=StopRule(t_max=1.0))
    assert r.top_other == 2 + int(np.argmax(others))  # DPO moves the others' logits alike: their order stays
    # ... and their proportions: the top one holds its share of the rest
    assert r.rest_final == pytest.approx(1 - r.p1_final - r.p2_final, rel=1e-12)
    assert r.p_top_other == pytest.approx(others.max() / others.sum() * r.rest_final, rel=1e-9)


@pytest.mark.parametrize("max_nfev", [1, 20, 2000])
@pytest.mark.parametrize("method", ["DOP853", "LSODA"])
def test_a_flows_evaluations_stay_within_the_work_budget(max_nfev, method):
    # the budget flowsim promises (and the conformance sweep checks): a stiff flow that runs out of
    # evaluations in both methods, one switched to LSODA, an easy one -- each landing on its stop
    from flowsim.dynamics.driver import work_budget
    from flowsim.model.losses import IPO

    opts = SolverOptions(method=method, max_nfev=max_nfev)
    budget = work_budget(opts)
    assert budget > max_nfev and work_budget(SolverOptions(max_nfev=None)) == math.inf
    for loss, x0 in ((IPO(beta=0.1), [0.05, 0.05]), (DPO(beta=0.1), [0.5, 0.5]), (DPO(beta=0.1), [0.9, 0.9])):
        r = integrate(loss, x0, options=opts)
        assert 0 < r.nfev <= budget, (loss, x0, r.status, r.nfev, budget)


def test_a_stop_rules_dict_leaves_out_the_rules_that_are_off():
    d = StopRule(loss_target=0.3, t_max=5.0).as_dict()
    assert "margin_target" not in d and d["loss_target"] == 0.3 and d["t_max"] == 5.0
    assert StopRule(**d) == StopRule(loss_target=0.3, t_max=5.0)  # as an experiment file has it: read back the same


def test_the_earliest_stop_and_ties_in_the_order_of_precedence():
    # when (on a common clock) each stop is met, per row: the earliest wins; a tie goes to the first in STOP_ORDER
    when = {"timeout": [2.0, 2.0, 5.0], "reached_loss": [3.0, 1.0, 5.0], "converged": [np.inf, 1.5, 5.0]}
    status, clock = StopRule.earliest(when)
    assert status.tolist() == ["timeout", "reached_loss", "converged"] and clock.tolist() == [2.0, 1.0, 5.0]


def test_function_stops_in_order_and_stationary_only_where_a_flow_may_stall():
    stop = StopRule(loss_target=0.1, margin_target=2.0)
    assert stop.functions() == ("reached_loss", "reached_margin", "stationary")  # by default a flow may stall
    assert stop.functions(may_stall=False) == ("reached_loss", "reached_margin")
    assert StopRule(stationary_tol=0.0).functions() == ()
