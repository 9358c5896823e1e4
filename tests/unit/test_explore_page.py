"""The explore page's callbacks on a Bokeh Document, without a browser or a server (the browser test has both)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import flowsim

pytest.importorskip("bokeh", reason="flowsim explore needs bokeh: pip install -e '.[explore]'")
from bokeh.document import Document

from flowsim.app.explore.page import Explorer, run_data


@pytest.fixture(scope="module")
def data(tmp_path_factory, small_exact_run):
    res = flowsim.load(small_exact_run(tmp_path_factory.mktemp("page"), "two"))
    return run_data("two", res.flows, res.experiment)


def test_the_page_shows_each_combination_and_resets_the_compared_setting(data):
    assert [g.label for g in data.groups] == ["beta = 0.1, ref_w = 1, ref_l = 1", "beta = 0.5, ref_w = 1, ref_l = 1"]
    ex = Explorer(data, Document())
    assert len(ex.cells.data["p1_0"]) == 25 and len(ex.field.data["x0"]) == 15 * 15
    ex.combination.value = data.groups[1].label
    assert set(ex.cells.data["beta"]) == {0.5} and ex.inputs["beta"].value == "0.5"
    ex.column.value = "p1_final"
    np.testing.assert_array_equal(ex.cells.data["_value"], data.groups[1].rows["p1_final"])
    assert ex.colorbar.title == "p1 at the stop"


def test_a_tap_snaps_to_a_start_and_draws_both_settings(data):
    ex = Explorer(data, Document())
    ex.on_tap(SimpleNamespace(x=0.31, y=0.68))
    p0 = [ex.start_src.data["p1"][0], ex.start_src.data["p2"][0]]
    np.testing.assert_allclose(p0, [0.3, 0.7], rtol=1e-15)  # the grid's start nearest the tap
    r = flowsim.integrate(flowsim.DPO(0.1), p0, stop=data.experiment.stop, path=True)
    np.testing.assert_allclose(ex.run_path.data["p1"], r.path_x[:, 0], rtol=1e-13)
    np.testing.assert_allclose(ex.compare_path.data["p2"], r.path_x[:, 1], rtol=1e-13)
    assert "flows.csv" in ex.info.text and ex.error.text == ""
    ex.inputs["dynamics"].value = "adam"
    assert ex.error.text == "" and len(ex.compare_path.data["p1"]) > 1 and "adam lr = 0.1" in ex.info.text


def test_bad_input_is_said_on_the_page_and_the_page_recovers(data):
    ex = Explorer(data, Document())
    ex.on_tap(SimpleNamespace(x=0.5, y=0.3))
    ex.inputs["lr"].value = "fast"
    assert ex.error.text == ""  # lr is not used by the flow
    ex.inputs["dynamics"].value = "gd"
    assert "page: dynamics.lr must be a number; got &#x27;fast&#x27;" in ex.error.text
    assert len(ex.compare_path.data["p1"]) == 0 and len(ex.run_path.data["p1"]) > 0
    ex.inputs["lr"].value = "0.5"
    assert ex.error.text == "" and len(ex.compare_path.data["p1"]) > 1
    ex.inputs["model"].value = "logits"
    ex.snap.active = False
    guarded_tap = ex._guard(lambda: ex.on_tap(SimpleNamespace(x=0.8, y=0.7)))
    guarded_tap()
    assert "needs p1 + p2 &lt; 1" in ex.error.text


def test_the_hover_shows_a_few_fields_and_a_click_the_whole_row(data):
    ex = Explorer(data, Document())
    hover = next(t for t in ex.plane.tools if type(t).__name__ == "HoverTool")
    assert [name for name, _ in hover.tooltips] == ["p1_0", "p2_0", "status", "t_stop", "p1_final", "p2_final", "click"]
    ex.on_tap(SimpleNamespace(x=0.31, y=0.68))
    n = len(data.groups[0].rows.columns)
    assert f"the run's row: all {n} fields" in ex.info.text and "<td>nfev</td>" in ex.info.text


def test_a_refused_value_clears_the_stale_comparison(data):
    ex = Explorer(data, Document())
    ex.on_tap(SimpleNamespace(x=0.5, y=0.3))
    assert "<td>compare</td>" in ex.info.text
    ex.inputs["beta"].value = "-1"
    assert "beta" in ex.error.text and len(ex.compare_path.data["p1"]) == 0
    assert "<td>compare</td>" not in ex.info.text and "<td>run</td>" in ex.info.text  # the run's path is still valid
    ex.inputs["beta"].value = "0.2"
    assert ex.error.text == "" and "<td>compare</td>" in ex.info.text and "β = 0.2" in ex.info.text
