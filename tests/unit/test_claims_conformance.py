"""Every registered claim, on rows built so that the truth is known: each verdict it can give is reached.

For each claim of :data:`flowsim.analysis.claims.REGISTRY`, :data:`CASES` holds a table for
``supported``, ``partly supported``, ``not supported`` and ``not applicable``, each built from
the closed-form DPO flows and edited where the claim needs another truth (an end point moved,
a status set, a reference changed).  A claim with no case for ``not supported`` is a claim
that cannot fail, and fails here; so does a registered claim without cases.  On every case
the verdict must not change when the rows are reordered or an unrelated column is added.
The generic checks: a model the claim does not declare, a declared column missing, too many
failed rows, and a threshold the claim does not declare (which may not move its verdict).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis import intervals
from flowsim.analysis.claims import REGISTRY, claims
from flowsim.analysis.claims import group as group_module
from flowsim.analysis.claims.group import ratio_objective
from flowsim.analysis.claims.rules import rule_share
from flowsim.analysis.evaluation import Study, evaluate
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import REQUIRED_COLUMNS, parameter_columns
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import NA, NOT, PARTLY, SUPPORTED, Claim
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import REGIONS

G = np.linspace(0.05, 0.95, 10)  # a 10 x 10 grid of starts (p1_0, p2_0)
LOG = np.geomspace(0.01, 0.95, 10)
#: Claims whose rule has no "partly supported" (none so far); each needs a reason.
NO_PARTLY: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    """A table, the verdict it must get (on ``subset``), and what else the evaluation needs.

    ``with_``: other claims judged beside it (C10 reads their verdicts); ``patch``: a change of
    the code under test the case needs (a wrong gradient, for an identity); ``why``: text the
    details must hold.
    """

    flows: pd.DataFrame
    expect: str
    subset: str = "all"
    with_: tuple[str, ...] = ()
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    why: str = ""


@cache
def _table(kind: str) -> pd.DataFrame:
    """Closed-form DPO flows on the ratio plane, by name (cached: copy before editing)."""
    points = np.array([(a, b) for a in G for b in G if b > a])  # p_l above p_w
    return {
        "paper": lambda: make_flows(G, G),  # reference-free, beta = 0.1
        "standard": lambda: make_flows(G, G, reference="initial"),
        "upper": lambda: make_flows(points=points, reference="initial"),
        "ref91": lambda: make_flows(G, G, refs=((0.9, 0.1),)),
        "ref19": lambda: make_flows(G, G, refs=((0.1, 0.9),)),
        "beta1": lambda: make_flows(G, G, betas=(1.0,)),
        "log": lambda: make_flows(LOG, LOG),
        "stretch": lambda: make_flows(G, G, betas=(1.0,), refs=((1.0, 1.0), (0.5, 0.5))),
        "bent": lambda: make_flows(G, G, refs=((1.0, 1.0), (0.9, 0.1))),
    }[kind]()


def t(kind: str) -> pd.DataFrame:
    return _table(kind).copy()


def _some(flows: pd.DataFrame, share: float, where: np.ndarray | None = None) -> np.ndarray:
    """A deterministic mask of about ``share`` of the rows (within ``where``)."""
    idx = np.flatnonzero(np.ones(len(flows), bool) if where is None else where)
    mask = np.zeros(len(flows), bool)
    mask[idx[: round(share * len(idx))]] = True
    return mask


def _skewed(grad_factor: float = 1.0, value_slope: float = 0.0):
    """A patch: DPO on the ratio plane whose gradient is off by ``grad_factor`` (its value not),
    or whose loss gains ``value_slope * x1`` (gradient and value alike, so Corollary 1 fails)."""

    class Skewed:
        def __init__(self, beta: float) -> None:
            self.base = ratio_objective(beta)

        def value(self, x):
            return self.base.value(x) + value_slope * x[..., 0]

        def grad(self, x):
            g = self.base.grad(x) * grad_factor
            g[..., 0] += value_slope
            return g

    return lambda mp: mp.setattr(group_module, "ratio_objective", Skewed)


def _with_refs(flows: pd.DataFrame, mask: np.ndarray, x: float) -> pd.DataFrame:
    """Rows where the reference is the start / ``x``: the flow starts at x = (x, x) there."""
    f = flows.copy()
    f.loc[mask, "ref_w"] = f.loc[mask, "p1_0"] / x
    f.loc[mask, "ref_l"] = f.loc[mask, "p2_0"] / x
    f.loc[mask, ["x1_0", "x2_0"]] = x
    return f


def _bottom_left_at(x: float) -> pd.DataFrame:
    """Standard DPO, but the bottom-left flows start at x = (x, x) (their reference is p0 / x)."""
    f = t("standard")
    return _with_refs(f, (f["region"] == "bottom-left").to_numpy(), x)


def _moved(flows: pd.DataFrame, mask: np.ndarray, **values) -> pd.DataFrame:
    f = flows.copy()
    for k, v in values.items():
        f.loc[mask, k] = v
    return f


def _cos(*rows: pd.DataFrame) -> pd.DataFrame:
    """Sets of features rows at cos_wl = 0, 0.9 (in this order), cos_wl a parameter column."""
    parts = [d.copy() for d in rows]
    for d, c in zip(parts, (0.0, 0.9), strict=False):
        d.insert(3, "cos_wl", c)
    return pd.concat(parts, ignore_index=True).assign(model="features")


def _contested_first(flows: pd.DataFrame, share_l_first: float) -> pd.DataFrame:
    """t_l < t_w on about ``share_l_first`` of the rows, t_w < t_l on the rest."""
    first = _some(flows, share_l_first)
    return flows.assign(t_l=np.where(first, 1.0, 3.0), t_w=2.0)


def _top_left_dragged(flows: pd.DataFrame, share: float) -> pd.DataFrame:
    """In the top-left, about ``share`` of the flows move p_l as much as p_w (not "barely")."""
    f = flows.copy()
    mask = _some(f, share, (f["region"] == "top-left").to_numpy())
    f.loc[mask, "p2_final"] = f.loc[mask, "p2_0"] - (f.loc[mask, "p1_final"] - f.loc[mask, "p1_0"])
    return f


def _stationary(flows: pd.DataFrame, n: int) -> pd.DataFrame:
    f = flows.copy()
    f.loc[f.index[:n], "status"] = "stationary"
    return f


def _points(flows: pd.DataFrame, keep) -> pd.DataFrame:
    return flows[keep(flows)].reset_index(drop=True)


CASES: dict[str, dict[str, Callable[[], Case]]] = {
    "C1": {
        SUPPORTED: lambda: Case(t("paper"), SUPPORTED),
        PARTLY: lambda: Case(t("paper"), PARTLY, patch=_skewed(grad_factor=1 + 1e-5)),
        NOT: lambda: Case(t("paper"), NOT, patch=_skewed(grad_factor=1.01)),
        NA: lambda: Case(t("paper").assign(loss="ipo"), NA, why="not ipo"),
    },
    "C2": {
        SUPPORTED: lambda: Case(t("paper"), SUPPORTED),
        PARTLY: lambda: Case(t("paper"), PARTLY, patch=_skewed(value_slope=1e-6)),
        NOT: lambda: Case(t("paper"), NOT, patch=_skewed(value_slope=1e-2)),
        NA: lambda: Case(t("paper").assign(model="logits"), NA, why="not logits"),
    },
    "C3": {  # standard DPO: every flow starts at x = (1, 1) and ends with x1 > 1, x2 < 1
        SUPPORTED: lambda: Case(t("standard"), SUPPORTED),
        PARTLY: lambda: Case(_moved(t("standard"), _some(t("standard"), 0.3), x1_final=0.5), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),  # reference 1: x1 = p1 <= 1
        NA: lambda: Case(t("standard").assign(t_stop=0.0), NA, why="no moving flows"),
    },
    "C4": {
        SUPPORTED: lambda: Case(_contested_first(t("ref19"), 1.0), SUPPORTED),
        PARTLY: lambda: Case(_contested_first(t("ref19"), 0.3), PARTLY),  # the field: p_l faster everywhere
        NOT: lambda: Case(_contested_first(t("ref91"), 0.0), NOT),  # a reference favouring p_w
        NA: lambda: Case(t("paper").assign(t_w=0.0), NA, why="no start where neither target"),
    },
    "C5a": {
        SUPPORTED: lambda: Case(t("ref91"), SUPPORTED),
        PARTLY: lambda: Case(_top_left_dragged(t("ref91"), 0.3), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),
        NA: lambda: Case(_points(t("paper"), lambda f: f["p1_0"] > 0.34), NA, why="0 starts in top-left"),
    },
    "C5b": {  # beta = 5 on rows of the closed form: the field and the mesh are read at beta = 5
        SUPPORTED: lambda: Case(t("log").assign(beta=5.0), SUPPORTED),
        PARTLY: lambda: Case(t("paper"), PARTLY),  # slow there, but no stationary mesh point at beta = 0.1
        NOT: lambda: Case(t("beta1"), NOT),
        NA: lambda: Case(t("paper"), NA, subset="feasible", why="0 starts in top-right"),
    },
    "C5c": {
        SUPPORTED: lambda: Case(t("ref19"), SUPPORTED),
        PARTLY: lambda: Case(t("paper"), PARTLY),
        NOT: lambda: Case(t("standard"), NOT),
        NA: lambda: Case(_points(t("paper"), lambda f: f["p2_0"] > 0.34), NA, why="0 starts in the bottom row"),
    },
    "C6": {
        SUPPORTED: lambda: Case(t("ref19"), SUPPORTED),
        PARTLY: lambda: Case(t("paper"), PARTLY),
        NOT: lambda: Case(t("paper").assign(p1_final=0.5), NOT),  # every start ends alike
        NA: lambda: Case(_moved(t("paper"), _some(t("paper"), 0.05), status="failed"), NA, why="rows failed"),
    },
    "C6b": {  # the rows marked integrated (nfev > 0), so that the law is checked
        SUPPORTED: lambda: Case(t("paper").assign(nfev=7), SUPPORTED),
        PARTLY: lambda: Case(t("paper").assign(nfev=7, x1_final=t("paper")["x1_final"] * (1 + 1e-5)), PARTLY),
        NOT: lambda: Case(t("paper").assign(nfev=7, x1_final=t("paper")["x1_final"] * 1.01), NOT),
        NA: lambda: Case(t("paper"), NA, why="by construction"),
    },
    "C7": {  # |grad L| = b / (x sqrt 2) on the diagonal x1 = x2 = x: small where x is large
        SUPPORTED: lambda: Case(_bottom_left_at(10.0), SUPPORTED),
        PARTLY: lambda: Case(_bottom_left_at(1.5), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),  # the ratio plane's field grows as 1/x
        NA: lambda: Case(_points(t("paper"), lambda f: f["region"] == "bottom-left"), NA, why="nothing to compare"),
    },
    "C8": {
        SUPPORTED: lambda: Case(t("upper"), SUPPORTED),
        PARTLY: lambda: Case(t("standard"), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),
        NA: lambda: Case(_points(t("paper"), lambda f: f["p1_0"] > 0.34), NA, why="0 starts in the left column"),
    },
    "C9": {  # the high-cos_wl rows end lower and/or are displaced more often
        SUPPORTED: lambda: Case(_cos(t("paper"), t("paper").assign(p1_final=0.01, displaced=True)), SUPPORTED),
        PARTLY: lambda: Case(_cos(t("paper"), t("paper").assign(p1_final=0.01)), PARTLY),
        NOT: lambda: Case(_cos(t("paper"), t("paper")), NOT),
        NA: lambda: Case(_cos(t("paper")), NA, why="one value of cos_wl"),
    },
    "C10": {  # references (1, 1) and (0.5, 0.5) scale both axes alike: dp/dt is a pure stretch
        SUPPORTED: lambda: Case(t("stretch"), SUPPORTED, with_=("C1",)),
        PARTLY: lambda: Case(t("bent"), PARTLY, with_=("C1",)),  # C1 holds alike, but the field is bent
        NOT: lambda: Case(t("bent"), NOT, with_=("C5a",)),  # and C5a flips with the reference
        NA: lambda: Case(t("paper"), NA, with_=("C1",), why="one value of ref_w, ref_l"),
    },
    "C11": {
        SUPPORTED: lambda: Case(_stationary(t("paper"), 20), SUPPORTED),
        PARTLY: lambda: Case(_stationary(t("paper"), 1), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),  # no flow stuck, no stationary mesh point at beta = 0.1
        NA: lambda: Case(_moved(t("paper"), _some(t("paper"), 0.05), status="failed"), NA, why="rows failed"),
    },
    "C12": {
        SUPPORTED: lambda: Case(t("upper"), SUPPORTED),
        PARTLY: lambda: Case(_moved(t("upper"), _some(t("upper"), 0.05), max_mass=1.5), PARTLY),
        NOT: lambda: Case(t("paper"), NOT),  # the unnormalised ratio plane leaves the simplex
        NA: lambda: Case(t("upper").assign(max_mass=np.nan), NA, why="no feasible start with a recorded path"),
    },
    "LD": {  # rows labelled with shared features, which can displace p_w; DPO on the ratio plane cannot
        SUPPORTED: lambda: Case(_moved(_feat(), _some(_feat(), 0.6), displaced=True), SUPPORTED),
        PARTLY: lambda: Case(_moved(_feat(), _some(_feat(), 0.2), displaced=True), PARTLY),
        NOT: lambda: Case(_feat(), NOT),
        NA: lambda: Case(t("paper"), NA, why="impossible by construction (dpo is a function of the margin h_w - h_l"),
    },
}


def _feat() -> pd.DataFrame:
    """The paper's rows, labelled as a model whose p_w can fall (shared features: no declared limit)."""
    return t("paper").assign(model="features")


def test_ld_without_moving_flows_is_not_applicable():
    case = Case(_feat().assign(t_stop=0.0), NA, why="no moving flows")
    check_case(REGISTRY["LD"], case)


def _judge(claim: Claim, case: Case, flows: pd.DataFrame, th: ClaimThresholds | None = None) -> pd.DataFrame:
    study = Study("conformance", (*claims(*case.with_), claim), cuts=((0.25, 0.75),))
    out = evaluate(study, flows, StopRule(), th, sensitivity=False)
    return out[out["claim"] == claim.id].reset_index(drop=True)


def check_case(claim: Claim, case: Case) -> None:
    """The case's verdict is reached, and kept with the rows reordered or an unrelated column added."""
    got = _judge(claim, case, case.flows)
    row = got[got["subset"] == case.subset]
    assert len(row) == 1, row
    assert row["verdict"].iloc[0] == case.expect, f"{claim.id}: {row['verdict'].iloc[0]} ({row['details'].iloc[0]})"
    assert case.why in row["details"].iloc[0]
    # the rows reordered and two columns no claim reads added, at once (one evaluation, not two:
    # only two faults cancelling each other could hide one of them)
    rng = np.random.default_rng(1)
    other = case.flows.assign(annotator="someone", score=rng.random(len(case.flows)))
    again = _judge(claim, case, other.iloc[rng.permutation(len(other))].reset_index(drop=True))
    assert again["verdict"].tolist() == got["verdict"].tolist(), claim.id
    np.testing.assert_allclose(again["value"].to_numpy(float), got["value"].to_numpy(float), rtol=1e-9)


PAIRS = [(cid, v) for cid in REGISTRY for v in CASES.get(cid, {})]


def test_every_registered_claim_can_reach_every_verdict_of_its_rule():
    assert set(CASES) == set(REGISTRY), "a registered claim without conformance cases, or cases without a claim"
    for cid, cases in CASES.items():
        needed = {SUPPORTED, NOT, NA} | ({PARTLY} if cid not in NO_PARTLY else set())
        assert set(cases) == needed, f"{cid}: cases for {sorted(cases)}, needs {sorted(needed)}"


@pytest.mark.parametrize(("cid", "verdict"), PAIRS, ids=[f"{c}-{v.replace(' ', '_')}" for c, v in PAIRS])
def test_case(cid, verdict, monkeypatch):
    case = CASES[cid][verdict]()
    if case.patch is not None:
        case.patch(monkeypatch)
    check_case(REGISTRY[cid], case)


def test_a_claim_that_cannot_fail_fails_the_harness():
    always = Claim(
        id="X",
        title="t",
        paper="p",
        where="w",
        metric="m",
        rule=rule_share,
        measure=lambda d, th: (1.0, {"share": 1.0}, "all of them"),
        models=("ratio",),
    )
    with pytest.raises(AssertionError, match="X: supported"):
        check_case(always, Case(t("paper"), NOT))


@pytest.mark.parametrize("cid", list(REGISTRY))
def test_not_applicable_outside_the_declared_models(cid):
    claim, case = REGISTRY[cid], CASES[cid][SUPPORTED]()
    got = _judge(claim, case, case.flows.assign(model="no-such-model"))
    assert (got["verdict"] == NA).all() and got["details"].str.contains("speaks of the model").all(), cid


OPTIONAL = [
    (cid, col) for cid, c in REGISTRY.items() for col in c.columns if col not in (*REQUIRED_COLUMNS, "ref_w", "ref_l")
]


@pytest.mark.parametrize(("cid", "column"), OPTIONAL, ids=[f"{c}-{col}" for c, col in OPTIONAL])
def test_not_applicable_without_a_declared_column(cid, column):
    claim, case = REGISTRY[cid], CASES[cid][SUPPORTED]()
    got = _judge(claim, case, case.flows.drop(columns=column))
    assert (got["verdict"] == NA).all() and got["details"].str.contains(f"lacks the column.*{column}").all()


def test_declared_columns_are_columns_of_flows_tables():
    for cid, c in REGISTRY.items():
        missing = set(c.columns) - set(CASES[cid][SUPPORTED]().flows.columns)
        assert not missing, f"{cid} declares {missing}"


@pytest.mark.parametrize("cid", list(REGISTRY))
def test_many_failed_rows_make_a_claim_on_the_flows_not_applicable(cid, monkeypatch):
    claim, case = REGISTRY[cid], CASES[cid][SUPPORTED]()
    flows = _moved(case.flows, _some(case.flows, 0.05), status="failed")
    row = _judge(claim, case, flows).iloc[0]
    assert (row["verdict"] == NA) == claim.uses_flows, (cid, row["details"])


#: Values for every threshold, valid in any mix with the defaults, far from them.
FAR = {
    "rtol_supported": 1e-9,
    "rtol_partly": 1e-2,
    "share_supported": 0.97,
    "share_partly": 0.2,
    "dominance": 5.0,
    "speed_factor": 6.0,
    "p1_gap": 0.45,
    "stationary_tol": 1e-3,
}


@pytest.mark.parametrize(("cid", "verdict"), [p for p in PAIRS if p[1] != NA], ids=lambda v: str(v).replace(" ", "_"))
def test_undeclared_thresholds_do_not_move_the_verdict(cid, verdict, monkeypatch):
    claim, case = REGISTRY[cid], CASES[cid][verdict]()
    if case.patch is not None:
        case.patch(monkeypatch)
    declared = {*claim.thresholds, *(r for o in claims(*case.with_) for r in o.thresholds)}
    assert set(FAR) == {f.name for f in fields(ClaimThresholds)}
    th = ClaimThresholds(**{k: v for k, v in FAR.items() if k not in declared})
    got = _judge(claim, case, case.flows, th)
    assert got.loc[got["subset"] == case.subset, "verdict"].iloc[0] == verdict, cid


def _network_similar(similar_end: int) -> pd.DataFrame:
    """Network rows at edit distance 1 and 3; those at ``similar_end`` end low and displaced."""
    parts = []
    for e in (1, 3):
        d = t("standard").assign(model="network")
        if e == similar_end:
            d = d.assign(p1_final=0.01, displaced=True)
        d.insert(3, "edit_distance", e)
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def test_c9_reads_the_similarity_axis_each_model_declares():
    """For a network the axis is edit_distance, and the *smaller* distance is the more similar pair."""
    c9 = REGISTRY["C9"]
    assert c9.axis("network") == ("edit_distance",) and c9.axis("features") == ("cos_wl",)
    verdict = {e: _judge(c9, Case(_network_similar(e), SUPPORTED), _network_similar(e)) for e in (1, 3)}
    assert verdict[1].loc[verdict[1]["subset"] == "all", "verdict"].iloc[0] == SUPPORTED
    assert verdict[3].loc[verdict[3]["subset"] == "all", "verdict"].iloc[0] == NOT
    # a features table with only an edit_distance column has no cos_wl to compare across
    feats = _network_similar(1).assign(model="features")
    got = _judge(c9, Case(feats, NA), feats)
    assert (got["verdict"] == NA).all() and got["details"].str.contains("one value of cos_wl").all()


# -- uncertain: the mark of a verdict whose interval over seeds straddles its threshold ---------------

#: Claims that cannot be marked uncertain, each with its reason.
NO_UNCERTAIN: dict[str, str] = {
    "C1": "an identity of the closed form: the rows' outcomes (what seeds change) do not enter it",
    "C2": "an identity of the closed form: the rows' outcomes (what seeds change) do not enter it",
    "C10": "reads the other claims' verdicts, which are not re-judged per resample: no interval",
}


def _seeded_mix(a: pd.DataFrame, b: pd.DataFrame, n_a: int = 4) -> pd.DataFrame:
    """8 init_seeds, ``n_a`` whose rows are ``a`` and the rest ``b`` (a parameter column before p1_0)."""
    parts = []
    for s in range(8):
        d = (a if s < n_a else b).copy()
        d.insert(0, "init_seed", s)
        parts.append(d)
    return pd.concat(parts, ignore_index=True)


def _mixable(cid: str) -> tuple[Case, Case] | None:
    """Two cases of ``cid`` with different verdicts on the same parameter combinations and no patch."""
    for hi, lo in ((SUPPORTED, NOT), (SUPPORTED, PARTLY), (PARTLY, NOT)):
        if hi not in CASES[cid] or lo not in CASES[cid]:
            continue
        a, b = CASES[cid][hi](), CASES[cid][lo]()
        if a.patch or b.patch or a.subset != b.subset or list(a.flows.columns) != list(b.flows.columns):
            continue
        params = parameter_columns(a.flows)
        if params != parameter_columns(b.flows):
            continue
        same = (
            a.flows[params]
            .drop_duplicates()
            .reset_index(drop=True)
            .equals(b.flows[params].drop_duplicates().reset_index(drop=True))
        )
        if same and a.with_ == b.with_:
            return a, b
    # no two cases on the same combinations (C5b, C5c: their cases differ in beta or references): the
    # supported case beside itself with its regions mirrored, so that the corner it reads holds other starts
    a = CASES[cid][SUPPORTED]()
    mirror = {r: REGIONS[len(REGIONS) - 1 - i] for i, r in enumerate(REGIONS)}
    b = Case(a.flows.assign(region=a.flows["region"].map(mirror)), NOT, a.subset, a.with_)
    return (a, b) if REGISTRY[cid].regional and not a.patch else None


@pytest.mark.parametrize("cid", [c for c in REGISTRY if c not in NO_UNCERTAIN])
def test_every_claim_on_the_flows_can_be_marked_uncertain(cid, monkeypatch):
    """Seeds from a case of one verdict and from a case of another (7:1, 4:4 or 1:7): the interval over
    seeds spans both verdicts, so the verdict is uncertain; eight seeds of the one case: a point, certain."""
    monkeypatch.setattr(intervals, "N_RESAMPLES", 200)  # the mark, not the interval's precision, is tested
    pair = _mixable(cid)
    assert pair is not None, f"{cid}: no two cases to mix (add one, or name it in NO_UNCERTAIN with a reason)"
    a, b = pair
    seen = []
    for n_a in (7, 4, 1):
        mixed = _judge(REGISTRY[cid], a, _seeded_mix(a.flows, b.flows, n_a))
        row = mixed[mixed["subset"] == a.subset].iloc[0]
        assert row["n_seeds"] == 8, row
        seen.append((row["verdict"], row["intervals"]))
        if bool(row["uncertain"]):
            break
    else:
        raise AssertionError(f"{cid}: never uncertain: {seen}")
    same = _judge(REGISTRY[cid], a, _seeded_mix(a.flows, a.flows))
    row = same[same["subset"] == a.subset].iloc[0]
    assert row["verdict"] == a.expect and not bool(row["uncertain"]), (cid, row["verdict"], row["intervals"])


@pytest.mark.parametrize("cid", list(NO_UNCERTAIN))
def test_a_claim_that_cannot_be_uncertain_says_why(cid, monkeypatch):
    monkeypatch.setattr(intervals, "N_RESAMPLES", 200)
    case = CASES[cid][SUPPORTED]()
    if case.patch is not None:
        return
    got = _judge(REGISTRY[cid], case, _seeded_mix(case.flows, case.flows))
    assert not got["uncertain"].astype(bool).any(), cid
