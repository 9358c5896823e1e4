"""The how-to "Extend flowsim" (docs/how-to/extend.md) is true: its claim and its figure, taken from its text, run.

The page's Python blocks are, in order: a claim module, its registry line, a figure module.
Each module is written where its first line says (into a temporary folder on sys.path, as a
top-level module), registered the way the page says (the registry's modules plus the new
one), and used: the claim is judged beside the DPO study's claims, the figure is drawn.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from flowsim.analysis.claims import MODULES, REGISTRY, claims, register
from flowsim.analysis.evaluation import Study, evaluate
from flowsim.analysis.studies.dpo_field import STUDY
from flowsim.analysis.testing import make_flows
from flowsim.analysis.verdicts import NA, NOT, SUPPORTED
from flowsim.dynamics.record import StopRule
from flowsim.plotting import plot_results
from flowsim.plotting import registry as figures

PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "extend.md"
G = np.linspace(0.05, 0.95, 8)


def _page_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def _blocks() -> list[str]:
    """The page's claim, its registry line and its figure (the engine's module is :func:`_page_engine`)."""
    return [b for b in _page_blocks() if not b.startswith("# flowsim/dynamics/engines/")]


def _page_engine() -> str:
    """The engine module the page shows."""
    (engine,) = [b for b in _page_blocks() if b.startswith("# flowsim/dynamics/engines/")]
    return engine


def _install(source: str, package: str, folder: Path) -> str:
    """Write a module the page shows into ``folder``; return its (top-level) name."""
    first = source.splitlines()[0]
    path = first.removeprefix("# ")
    assert first.startswith("# ") and path.startswith(package + "/") and path.endswith(".py"), first
    name = Path(path).stem
    (folder / f"{name}.py").write_text(source)
    return name


def test_the_readme_shows_a_claim_its_registry_line_and_a_figure():
    claim, line, figure = _blocks()
    assert "CLAIM = Claim(" in claim and "FAMILY = Family(" in figure
    assert line.strip() == f'"{"." + Path(claim.splitlines()[0].removeprefix("# ")).stem}",'


def test_the_readme_claim_is_one_file_and_one_registry_line(tmp_path, monkeypatch):
    source, line, _ = _blocks()
    name = _install(source, "flowsim/analysis/claims", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert line.strip().strip('",') == f".{name}"  # in the package; here a top-level module
    registry = register((*MODULES, name))
    assert list(registry)[:-1] == list(REGISTRY) and list(registry)[-1] == "C13"
    study = Study("dpo_field + C13", claims(*(c.id for c in STUDY.claims), "C13", registry=registry), STUDY.cuts)

    def c13(flows):
        out = evaluate(study, flows, StopRule(), sensitivity=False)
        return out.loc[(out["claim"] == "C13") & (out["subset"] == "all"), "verdict"].tolist()

    flows = make_flows(G, G)  # DPO on the ratio plane: x1 only rises, p_w is never displaced
    assert c13(flows) == [SUPPORTED]
    assert c13(flows.assign(displaced=True)) == [NOT]
    assert c13(flows.assign(model="no-such-model")) == [NA]


def test_the_readme_figure_is_one_file_and_one_registry_line(tmp_path, monkeypatch):
    _, _, source = _blocks()
    name = _install(source, "flowsim/plotting", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    families = figures.register((*figures.MODULES, name))
    flows = make_flows(G, G, betas=(0.1, 0.5))
    written = plot_results(flows, tmp_path / "figures", kinds=("t_stop_hist",), families=families)
    assert [p.name for p in written] == ["t_stop_hist_beta0.1_refw1_refl1.png", "t_stop_hist_beta0.5_refw1_refl1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        plot_results(flows, tmp_path / "none", kinds=("t_stop_hist",))  # not registered: unknown


# -- every extension kind: one file and one registry line, run through a sweep ----------------------------
#
# Each module below is one file as a contributor would write it (installed as a top-level module in a
# temporary folder); its registry line is the one entry it adds (``monkeypatch.setitem`` on the registry
# dict, or the registry's modules plus its own); then a small sweep (run_sweep in this process) runs it.

LOSS = '''
"""Squared margin: L = (beta (h_w - h_l) - 3)^2 / 2, minimised on the line beta (h_w - h_l) = 3."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.model.losses.base import Loss


@dataclass(frozen=True)
class SquaredMargin(Loss):
    kind: ClassVar[str] = "squared_margin"
    beta: float = 0.1

    def value(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        return 0.5 * (self.beta * (h[..., 0] - h[..., 1]) - 3.0) ** 2

    def grad(self, h, log_ref=0.0):
        h = np.asarray(h, dtype=float)
        r = self.beta * (self.beta * (h[..., 0] - h[..., 1]) - 3.0)
        return np.stack([r, -r], axis=-1)
'''

MODEL = '''
"""Tempered softmax over y_w, y_l and one other response: pi = softmax(theta / T)."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.model.parameterisations.base import Parameterisation, Policy


class TemperedPolicy(Policy):
    kind = "tempered"

    def __init__(self, p0, ref, T):
        self.p0, self.ref, self.T = p0, ref, T
        self.log_ref = np.log(ref)
        self.dim = self.n_responses = 3

    @property
    def theta0(self):
        rest = 1.0 - self.p0[..., 0] - self.p0[..., 1]
        return self.T * np.log(np.concatenate([self.p0, rest[..., None]], axis=-1))

    def log_probs(self, theta):
        z = np.asarray(theta, dtype=float) / self.T
        return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)

    def vjp(self, theta, g):
        g = np.asarray(g, dtype=float)
        out = -np.exp(self.log_probs(theta)) * (g[..., 0] + g[..., 1])[..., None]
        out[..., 0] += g[..., 0]
        out[..., 1] += g[..., 1]
        return out / self.T

    def row(self, i):
        return TemperedPolicy(self.p0[i], self.ref[i], self.T)


@dataclass(frozen=True)
class Tempered(Parameterisation):
    kind: ClassVar[str] = "tempered"
    T: float = 2.0

    def bind(self, p0, ref):
        p0, ref = np.broadcast_arrays(np.asarray(p0, dtype=float), np.asarray(ref, dtype=float))
        return TemperedPolicy(p0, ref, self.T)
'''

OPTIMISER = '''
"""Sign gradient descent: theta <- theta - lr sign(grad L)."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flowsim.dynamics.optimisers.base import Optimiser, check_lr


@dataclass(frozen=True)
class SignGD(Optimiser):
    kind: ClassVar[str] = "signgd"
    lr: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "lr", check_lr(self.lr))

    def init(self, theta):
        return ()

    def step(self, theta, grad, state, k):
        return theta - self.lr * np.sign(grad), state
'''

CLAIM = '''
"""CX: p(y_l) ends below its start in every moving flow."""
from flowsim.analysis.claims.measures import share_of
from flowsim.analysis.claims.rules import EVERY_MODEL, SHARE_THRESHOLDS, rule_share
from flowsim.analysis.verdicts import Claim, NotApplicable


def measure(d, th):
    """Fails if moving flows end with p_l >= p_l0."""
    if not d.moving.any():
        raise NotApplicable("no moving flows")
    share = share_of(d.pf[:, 1] < d.p0[:, 1], d.moving)
    return share, {"share": share}, f"{share:.3g} of the moving flows end with p_l below p_l0"


CLAIM = Claim(
    id="CX", title="p(y_l) falls", paper="(the dispreferred response is unlearned)", where="-",
    metric="share of moving flows ending with p_l < p_l0", rule=rule_share, measure=measure,
    models=EVERY_MODEL, columns=("p2_0", "p2_final", "status", "t_stop"), thresholds=SHARE_THRESHOLDS,
)
'''

FIGURE = '''
"""End points of the flows, one per combination: ends_{TAG}."""
from matplotlib.figure import Figure

from flowsim.plotting.base import Family


def draw(plot):
    for p in plot.panels:
        fig = Figure(figsize=(4, 4))
        fig.add_subplot().plot(p.rows["p1_final"], p.rows["p2_final"], ".")
        path = plot.file(f"ends_{p.tag}")
        fig.savefig(path)
        yield path


FAMILY = Family("ends", ("ends",), draw)
'''

SMALL_GRID = {"p1": {"start": 0.1, "stop": 0.9, "num": 4}, "p2": {"start": 0.1, "stop": 0.9, "num": 4}}


def _module(tmp_path, monkeypatch, source: str, name: str):
    """Write ``source`` as the file ``name``.py and import it: the one file of an extension."""
    import importlib

    (tmp_path / f"{name}.py").write_text(source.lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def _sweep(tmp_path, doc: dict, out: str):
    """A sweep of ``doc`` in this process (so the registry lines hold): (experiment, rows, meta)."""
    from flowsim.experiment.config import parse_experiment
    from flowsim.experiment.execute import run_sweep
    from flowsim.experiment.store import read_flows

    exp = parse_experiment({"name": out, "grid": SMALL_GRID} | doc)
    meta = run_sweep(exp, tmp_path / out, n_jobs=1, progress=False)
    return exp, read_flows(tmp_path / out), meta


def _same_rows(a, b, rtol: float = 1e-6) -> None:
    assert a["status"].tolist() == b["status"].tolist()
    np.testing.assert_allclose(a["t_stop"], b["t_stop"], rtol=rtol)
    np.testing.assert_allclose(a[["p1_final", "p2_final"]], b[["p1_final", "p2_final"]], rtol=rtol, atol=1e-12)


def test_a_loss_is_one_file_and_one_line_and_runs_batched_or_says_why(tmp_path, monkeypatch):
    from flowsim.model.losses import LOSSES

    cls = _module(tmp_path, monkeypatch, LOSS, "squared_margin").SquaredMargin
    monkeypatch.setitem(LOSSES, cls.kind, cls)  # the registry line
    doc = {
        "loss": {"kind": "squared_margin"},
        "model": {"kind": "logits", "K": 4, "reference": "initial"},
        "stop": {"margin_target": 4.0},
    }
    _, auto, meta = _sweep(tmp_path, doc, "auto")
    assert meta["counts_by_engine"] == {"batched": len(auto)} and (auto["status"] == "reached_margin").all()
    _, driver, _ = _sweep(tmp_path, doc | {"solver": {"engine": "driver"}}, "driver")
    _same_rows(auto, driver)
    monkeypatch.setattr(cls, "batched", "its rows are not checked against the driver")  # it says why not
    _, _, meta = _sweep(tmp_path, doc, "refused")
    assert meta["counts_by_engine"] == {"driver": len(auto)}


def test_a_model_is_one_file_and_one_line_and_runs_on_every_engine_that_declares_it(tmp_path, monkeypatch):
    from flowsim.model.parameterisations import MODELS

    cls = _module(tmp_path, monkeypatch, MODEL, "tempered").Tempered
    monkeypatch.setitem(MODELS, cls.kind, cls)  # the registry line
    doc = {
        "model": {"kind": "tempered", "T": [0.5, 2.0], "reference": "initial"},
        "dynamics": {"kind": ["flow", "gd"], "gd": {"lr": 0.5}},
        "stop": {"t_max": 5.0},
    }
    exp, auto, meta = _sweep(tmp_path, doc, "auto")
    grid = exp.grid.points()  # normalised (Parameterisation's default declaration): starts with p1 + p2 < 1 only
    assert meta["starts_left_out"] == int((grid.sum(axis=1) >= 1).sum()) > 0
    assert set(auto["engine"]) == {"batched", "discrete"} and not (auto["status"] == "failed").any()
    flow = auto[auto["dynamics"] == "flow"].reset_index(drop=True)
    _, driver, _ = _sweep(tmp_path, doc | {"solver": {"engine": "driver"}}, "driver")
    _same_rows(flow, driver[driver["dynamics"] == "flow"].reset_index(drop=True))
    slow, fast = (flow[flow["T"] == t]["p2_final"].to_numpy() for t in (2.0, 0.5))
    assert (flow["status"] == "timeout").all() and np.all(slow > fast)  # a hotter softmax unlearns y_l more slowly


def test_an_optimiser_is_one_file_and_one_line(tmp_path, monkeypatch):
    from flowsim.dynamics.optimisers import OPTIMISERS
    from flowsim.model.losses import DPO
    from flowsim.model.objective import Objective
    from flowsim.model.parameterisations import SoftmaxLogits

    cls = _module(tmp_path, monkeypatch, OPTIMISER, "signgd").SignGD
    monkeypatch.setitem(OPTIMISERS, cls.kind, cls)  # the registry line
    doc = {
        "model": {"kind": "logits", "K": 4, "reference": "initial"},
        "dynamics": {"kind": "signgd", "lr": 0.05},
        "stop": {"max_steps": 7},
    }
    _, rows, meta = _sweep(tmp_path, doc, "signgd")
    assert meta["counts_by_engine"] == {"discrete": len(rows)} and (rows["steps"] == 7).all()
    p0 = rows[["p1_0", "p2_0"]].to_numpy()
    pol = SoftmaxLogits(K=4).bind(p0, p0)
    theta = pol.theta0
    for _ in range(7):  # its own rule, by hand
        theta = theta - 0.05 * np.sign(Objective(DPO(), pol).grad(theta))
    np.testing.assert_allclose(rows[["p1_final", "p2_final"]], pol.probs(theta)[:, :2], rtol=1e-12)


def test_an_engine_is_one_file_and_one_line(tmp_path, monkeypatch):
    from flowsim.dynamics.engines import ENGINES

    engine = _module(tmp_path, monkeypatch, _page_engine(), "euler").Euler()  # the module extend.md shows
    monkeypatch.setitem(ENGINES, engine.name, engine)  # the registry line
    doc = {"model": {"kind": "logits", "K": 4, "reference": "initial"}, "stop": {"t_max": 20.0}}
    _, euler, meta = _sweep(tmp_path, doc | {"solver": {"engine": "euler"}}, "euler")
    assert meta["counts_by_engine"] == {"euler": len(euler)}
    _, exact, _ = _sweep(tmp_path, doc | {"solver": {"engine": "exact"}}, "exact")
    assert euler["status"].tolist() == exact["status"].tolist()
    ends = ["p1_final", "p2_final"]
    gap = np.max(np.abs(euler[ends].to_numpy() - exact[ends].to_numpy()))
    assert 0 < gap < 10 * engine.dt  # first order in dt


def test_a_claim_and_a_figure_are_one_file_and_one_line_each(tmp_path, monkeypatch):
    from flowsim.analysis.claims import MODULES
    from flowsim.analysis.evaluation import Study, evaluate

    claim_module = _module(tmp_path, monkeypatch, CLAIM, "cx_l_falls")
    registry = register((*MODULES, "cx_l_falls"))  # the registry line
    assert registry["CX"] is claim_module.CLAIM
    exp, rows, _ = _sweep(tmp_path, {"solver": {"engine": "exact"}}, "exact")
    study = Study("dpo_field + CX", claims(*(c.id for c in STUDY.claims), "CX", registry=registry), STUDY.cuts)

    def verdict(flows):
        out = evaluate(study, flows, exp.stop, experiment=exp, sensitivity=False)
        return out.loc[(out["claim"] == "CX") & (out["subset"] == "all"), "verdict"].tolist()

    assert verdict(rows) == [SUPPORTED]  # DPO unlearns y_l from every start
    assert verdict(rows.assign(p2_final=rows["p2_0"] + 0.01)) == [NOT]

    _module(tmp_path, monkeypatch, FIGURE, "ends")
    families = figures.register((*figures.MODULES, "ends"))  # the registry line
    written = plot_results(rows, tmp_path / "figures", kinds=("ends",), families=families)
    assert sorted(p.name for p in written) == ["ends_beta0.1_refw1_refl1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
