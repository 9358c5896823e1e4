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


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


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
