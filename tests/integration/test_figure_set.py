"""The default figure set, the loss comparison (figure and table) and the starts that cannot have a path.

One small run of two losses on softmax logits (DPO, for which displacement is impossible by
construction there, and NCA, for which it is not declared), analysed and plotted.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from flowsim.analysis.tables import loss_comparison
from flowsim.app.analyze import analyze
from flowsim.app.plot import NO_START, plot, region_paths
from flowsim.app.run import recorded, run
from flowsim.experiment.regions import REGIONS
from flowsim.experiment.store import read_flows
from flowsim.plotting.base import Plot, panels_of
from flowsim.plotting.settings import settings, what_ran

# the module's run built on one worker, not on each that takes a test
pytestmark = pytest.mark.xdist_group("figure_set")

TOML = """name = "two"
[loss]
kind = ["dpo", "nca_pair"]
[model]
kind = "logits"
K = 4
reference = "initial"
[grid]
p1 = { start = 0.1, stop = 0.8, num = 4 }
p2 = { start = 0.1, stop = 0.8, num = 4 }
[stop]
t_max = 100.0
"""


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figset")
    (folder / "two.toml").write_text(TOML)
    run(folder / "two.toml", folder / "out", n_jobs=1, progress=False)
    analyze(folder / "out")
    return folder / "out"


def test_the_default_set_and_every_file_behind_an_option(two, monkeypatch):
    with monkeypatch.context() as m:  # the default set's names: its figures are built here, rendered below
        m.setattr(Figure, "savefig", lambda fig, path, **kw: Path(path).write_bytes(b""))
        names = {p.name for p in plot(two)}
    assert {"facet_p1_final.png", "paths_all.png", "loss_comparison.png"} <= names
    assert not any(n.startswith(("basin_", "paths_beta", "t_stop_")) for n in names)  # per combination: asked for
    every = {p.name for p in plot(two, every=True)}  # the default set too, rendered once
    assert names < every and any(n.startswith("basin_") for n in every)
    assert all((two / "figures" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in every)


def test_the_loss_comparison_table_says_what_is_impossible_by_construction(two):
    flows = read_flows(two / "flows.csv")
    table = pd.read_csv(two / "loss_comparison.csv")  # written by analyze
    assert list(table["loss"]) == ["dpo", "nca_pair"] and set(table["model"]) == {"logits"}
    assert list(table["displacement_impossible"]) == [True, False]
    ok = flows[flows["status"] != "failed"]
    for _, row in table.iterrows():
        mine = ok[ok["loss"] == row["loss"]]
        assert row["n"] == len(mine)
        assert row["share_displaced"] == pytest.approx(mine["displaced"].astype(str).str.lower().eq("true").mean())
        before = (mine["t_l"].fillna(np.inf) < mine["t_w"].fillna(np.inf)).mean()
        assert row["share_l_before_w"] == pytest.approx(before)
        for r in REGIONS:
            want = mine.loc[mine["region"] == r, "p1_final"].median()
            assert row[f"p_w_final_{r}"] == pytest.approx(want, nan_ok=True)
    assert loss_comparison(flows[flows["loss"] == "dpo"]) is None  # one loss: nothing to compare


def test_region_centres_on_the_line_have_no_path_and_say_why(two):
    flows, exp = read_flows(two / "flows.csv"), recorded(two)
    paths = region_paths(flows, exp, exp.stop, (exp.p1_cuts, exp.p2_cuts))
    for drawn in paths.values():
        none = [p for p in drawn if p.note]
        assert {p.region for p in none} == {"top-left", "center", "bottom-right"}  # p1 + p2 = 1 to rounding
        assert all(p.note == NO_START and p.path is None for p in none)
        assert all(p.path is not None for p in drawn if not p.note)


def test_network_panels_split_every_swept_axis_the_loss_first(two):
    flows = read_flows(two / "flows.csv").assign(dynamics=lambda d: np.where(d.index % 2, "gd", "adam"))
    params = ["loss", "dynamics"]
    plot_ = Plot(flows, params, panels_of(flows, params), frozenset(), ((0.3, 0.6), (0.3, 0.6)), None, "png", two)
    titles = [t for t, _, _ in settings(plot_)]
    assert titles == ["dpo, adam", "dpo, gd", "nca_pair, adam", "nca_pair, gd"]  # no axis pooled
    assert what_ran(plot_) == "DPO and NCA_PAIR" and what_ran(plot_, model=True).endswith("on softmax logits")
