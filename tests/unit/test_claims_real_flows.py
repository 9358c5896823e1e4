"""The claims on real flows: small sweeps run by the experiment layer, then judged.

One setting where a verdict is ``supported`` and one where it is not, per model, with the
field read through the experiment (``evaluate_claims(..., experiment=exp)``).
"""

import pytest

from flowsim.analysis.studies.dpo_field import evaluate_claims
from flowsim.analysis.verdicts import (
    NA,
    NOT,
    PARTLY,
    SUPPORTED,
    claims_markdown,
    conclusions,
    failed_rows,
    verdict_matrix,
)
from flowsim.dynamics.record import FlowResult
from flowsim.experiment.config import parse_experiment
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.store import read_flows

# the module's integrated flows built on one worker, not on each that takes a test
pytestmark = pytest.mark.xdist_group("claims_real_flows")

GRID = {"p1": {"start": 0.05, "stop": 0.95, "num": 10}, "p2": {"start": 0.05, "stop": 0.95, "num": 10}}
N_FAILED = 3
SMALL = {"p1": {"start": 0.1, "stop": 0.7, "num": 4}, "p2": {"start": 0.1, "stop": 0.7, "num": 4}}
DOCS = {
    # the paper's setting, integrated: the conservation law is a real check here
    "ratio": {"name": "ratio", "loss": {"kind": "dpo", "beta": 0.1}, "grid": GRID, "solver": {"method": "auto"}},
    "logits": {
        "name": "logits",
        "loss": {"kind": "dpo", "beta": 0.1},
        "grid": GRID,
        "solver": {"engine": "exact"},
        "model": {"kind": "logits", "K": 10, "reference": "initial"},
        "stop": {"t_max": 1e7},
    },
    "reference": {
        "name": "reference",
        "loss": {"kind": "dpo", "beta": 0.1, "ref_w": [0.5, 1.0], "ref_l": [0.5, 1.0]},
        "grid": GRID,
        "solver": {"engine": "exact"},
    },
    # 3 of 16 rows made failed below, as the sweep records a solver failure: no claim on the flows may stand
    "failing": {"name": "failing", "loss": {"kind": "dpo", "beta": 0.5}, "grid": SMALL, "solver": {"method": "auto"}},
    "features": {
        "name": "features",
        "loss": {"kind": "dpo", "beta": 0.1},
        "grid": SMALL,
        "stop": {"t_max": 1e3},
        "model": {"kind": "features", "K": 10, "d": 8, "cos_wl": [0.0, 0.9], "reference": "initial"},
    },
}


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    out = {}
    for name, doc in DOCS.items():
        exp = parse_experiment(doc)
        folder = tmp_path_factory.mktemp(name) / "run"
        run_sweep(exp, folder, n_jobs=1, progress=False)
        flows = read_flows(folder / "flows.csv")
        if name == "failing":
            failed = FlowResult.failed("ArithmeticError: injected").as_dict()
            for k, v in failed.items():
                if k in flows.columns:  # a bool column with a failed row's NaN holds objects, as read back
                    flows[k] = flows[k].astype(object) if flows[k].dtype == bool else flows[k]
                    flows.loc[: N_FAILED - 1, k] = v
        out[name] = evaluate_claims(flows, exp.stop, experiment=exp)
    return out


def verdicts(claims, cid, subset="all"):
    return set(claims.loc[(claims["claim"] == cid) & (claims["subset"] == subset), "verdict"])


def test_ratio_plane_integrated(judged):
    c = judged["ratio"]
    assert (c["n_failed"] == 0).all()
    assert verdicts(c, "C1") == verdicts(c, "C6b") == {SUPPORTED}  # integrated rows: the law is checked
    assert "0 closed-form rows" in c.loc[c["claim"] == "C6b", "details"].iloc[0]
    # the field grows at low x on the ratio plane, and p_w is favoured on the left
    assert verdicts(c, "C7") == verdicts(c, "C8") == verdicts(c, "C3") == {NOT}
    assert verdicts(c, "C5b", "feasible") == {NA}


def test_logits(judged):
    c = judged["logits"]
    for cid in ("C1", "C2", "C6b"):
        assert verdicts(c, cid) == {NA}
    # a normalised model stays on the simplex, and with the SFT reference x1 rises above 1
    assert verdicts(c, "C12") == verdicts(c, "C3") == {SUPPORTED}
    # p_l reaches its target first everywhere, but at the start it does not always fall faster
    assert verdicts(c, "C4") == {PARTLY}
    assert "t_l < t_w: 1 " in c.loc[c["claim"] == "C4", "details"].iloc[0]
    assert verdicts(c, "C11") == {NOT}


def test_reference_sweep_changes_verdicts(judged):
    c = judged["reference"]
    row = c[(c["claim"] == "C10") & (c["subset"] == "all")]
    assert len(row) == 1 and row["ref_w"].isna().all()
    assert row["verdict"].iloc[0] == NOT
    assert "C3" in row["details"].iloc[0] and "4 references" in row["details"].iloc[0]


def test_similar_responses(judged):
    c = judged["features"]
    row = c[(c["claim"] == "C9") & (c["subset"] == "all")]
    assert len(row) == 1 and row["cos_wl"].isna().all()
    assert row["verdict"].iloc[0] == SUPPORTED
    assert "cos_wl = 0.9" in row["details"].iloc[0]


def test_matrix_across_real_settings(judged):
    m = verdict_matrix({"ratio": judged["ratio"], "logits": judged["logits"], "features": judged["features"]})
    assert m.attrs["models"] == {"ratio": ["ratio"], "logits": ["logits"], "features": ["features"]}
    text = conclusions(m)
    nowhere = next(row for row in text.splitlines() if row.startswith("- **Holds nowhere**"))
    assert "C11 (" in nowhere  # no flow gets stuck at a stationary point in any model
    only = next(row for row in text.splitlines() if row.startswith("- **Holds only on the ratio plane**"))
    assert "C6b" not in only  # applies to the ratio plane alone: it holds in every setting where it applies


def test_failed_rows_make_claims_not_applicable(judged):
    c = judged["failing"]
    n_failed, n_rows = failed_rows(c)
    assert n_rows == 16 and n_failed == N_FAILED
    assert verdicts(c, "C5b") == verdicts(c, "C11") == verdicts(c, "C6b") == {NA}
    assert f"{n_failed} of 16 rows failed" in c.loc[c["claim"] == "C5b", "details"].iloc[0]
    assert f"**{n_failed} of 16 flows failed**" in claims_markdown(c).split("## ")[0]
