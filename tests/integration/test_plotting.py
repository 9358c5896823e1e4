"""Figures: files written, valid PNG/SVG, regular and scattered grids, both reference modes."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from flowsim.analysis.testing import make_flows as _make_flows
from flowsim.app.plot import region_paths, start_points
from flowsim.dynamics.record import STATUSES, StopRule
from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS, region_labels
from flowsim.plotting import plot_field, plot_results
from flowsim.plotting.canvas import mesh_of
from flowsim.plotting.quantities import NAMES as QUANTITY_NAMES
from flowsim.plotting.quantities import quantities, values
from flowsim.plotting.style import FORMATS

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = [q.name for q in quantities(StopRule())]


def test_quantity_names_are_the_heatmap_kinds():
    assert tuple(NAMES) == QUANTITY_NAMES


def make_flows(points, **kw):
    return _make_flows(points=points, **kw)


def mesh(n, low=0.02, spacing=np.linspace):
    g = spacing(low, 1.0, n)
    g1, g2 = np.meshgrid(g, g, indexing="ij")
    return np.stack([g1.ravel(), g2.ravel()], -1)


def test_regular_grid_every_figure(tmp_path):
    flows = make_flows(mesh(12), betas=(1.5,))
    drawn = region_paths(flows, None, StopRule(), (DEFAULT_CUTS, DEFAULT_CUTS))
    paths = plot_results(flows, tmp_path / "figs", paths=drawn)
    tag = "beta1.5_refw1_refl1"
    expected = {f"{q}_{tag}.png" for q in NAMES} | {f"facet_{q}.png" for q in NAMES}
    expected |= {f"basin_{tag}.png", f"paths_{tag}.png"}
    assert {p.name for p in paths} == expected
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(expected)
    for p in paths:
        assert p.read_bytes()[:8] == PNG, p


def test_facets_across_combinations(tmp_path):
    flows = make_flows(mesh(8), betas=(0.1, 0.5), refs=((1.0, 1.0), (0.2, 0.9)))
    paths = plot_results(flows, tmp_path, kinds=("status",))
    assert [p.name for p in paths] == ["facet_status.png"]  # the default set: no file per combination
    paths = plot_results(flows, tmp_path, kinds=("status",), every=True)
    assert len(paths) == 4 + 1
    assert (tmp_path / "facet_status.png").exists() and (tmp_path / "status_beta0.5_refw0.2_refl0.9.png").exists()


def test_scattered_grid_standard_dpo_svg(tmp_path, rng):
    points = rng.uniform(0.01, 1.0, (150, 2))
    flows = make_flows(points, betas=(0.5,), reference="initial", stop=StopRule(t_max=3.0))
    drawn = region_paths(flows, None, StopRule(t_max=3.0), (DEFAULT_CUTS, DEFAULT_CUTS))
    paths = plot_results(flows, tmp_path, fmt="svg", kinds=("t_stop", "status", "paths"), paths=drawn)
    names = {
        "t_stop_beta0.5_refSFT.svg",
        "facet_t_stop.svg",
        "status_beta0.5_refSFT.svg",
        "facet_status.svg",
        "paths_beta0.5_refSFT.svg",
    }
    assert {p.name for p in paths} == names
    for p in paths:
        text = p.read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text, p


def test_log_mesh_with_timeouts_and_custom_cuts(tmp_path):
    stop = StopRule(t_max=2.0)
    flows = make_flows(mesh(10, 1e-3, np.geomspace), refs=((0.5, 0.2),), stop=stop)
    assert (flows["status"] == "timeout").any()
    kinds = ("t_w", "t_l_over_t_w", "basin")
    paths = plot_results(flows, tmp_path, p1_cuts=(0.2, 0.5), p2_cuts=(0.1, 0.6), stop=stop, kinds=kinds)
    assert len(paths) == 5 and all(p.stat().st_size > 5000 for p in paths)


def test_csv_round_trip_and_failed_rows(tmp_path):
    flows = make_flows(mesh(6))
    flows.loc[:3, "status"] = "failed"
    flows.loc[:3, ["t_stop", "p1_final", "p2_final", "t_w", "t_l"]] = np.nan
    csv = tmp_path / "flows.csv"
    flows.to_csv(csv, index=False)
    back = pd.read_csv(csv, dtype={"message": str}).fillna({"message": ""})
    drawn = region_paths(back, None, StopRule(), (DEFAULT_CUTS, DEFAULT_CUTS))
    paths = plot_results(back, tmp_path / "out", fmt="pdf", kinds=("t_stop", "p2_final", "basin", "paths"), paths=drawn)
    assert len(paths) == 6 and all(p.read_bytes()[:5] == b"%PDF-" for p in paths)


def test_bad_input(tmp_path):
    flows = make_flows(mesh(4))
    with pytest.raises(ValueError, match="fmt must be one of"):
        plot_results(flows, tmp_path, fmt="jpg")
    with pytest.raises(ValueError, match="p1_cuts"):
        plot_results(flows, tmp_path, p1_cuts=(0.7, 0.3))
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        plot_results(flows, tmp_path, kinds=("t_stop", "heat"))
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['t_stop'\]"):
        plot_results(flows.drop(columns="t_stop"), tmp_path)


def test_mesh_detection():
    p = mesh(5)
    e1, e2, i1, i2 = mesh_of(p[:, 0], p[:, 1])
    assert len(e1) == len(e2) == 6 and i1.max() == i2.max() == 4
    assert np.all(np.diff(e1) > 0)
    assert mesh_of(p[:-1, 0], p[:-1, 1]) is None  # a cell missing
    assert mesh_of(np.r_[p[:, 0], 0.5], np.r_[p[:, 1], 0.5]) is None  # an extra point
    assert mesh_of(np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.1, 0.2])) is None


def test_ratio_of_crossing_times():
    f = pd.DataFrame({"t_l": [1.0, 2.0, np.nan, np.nan, 0.0, 0.0], "t_w": [2.0, np.nan, 1.0, np.nan, 3.0, 0.0]})
    np.testing.assert_array_equal(values(f, "t_l_over_t_w"), [0.5, 0.0, np.inf, np.nan, 0.0, np.nan])
    s = pd.DataFrame({"status": ["capped", "converged", "failed"]})  # codes: their index in STATUSES
    np.testing.assert_array_equal(values(s, "status"), [STATUSES.index(k) for k in s["status"]])


def test_start_points_are_region_centres():
    c = start_points()
    assert c.shape == (9, 2)
    assert region_labels(c).tolist() == list(REGIONS)


def test_plot_field(tmp_path):
    out = plot_field(out=tmp_path / "fig1.png")
    assert out == tmp_path / "fig1.png" and out.read_bytes()[:8] == PNG
    lin = plot_field(beta=0.5, ref_w=0.5, ref_l=0.25, out=tmp_path / "sub" / "lin", fmt="svg", log_scale=False)
    assert lin.suffix == ".svg" and "<svg" in lin.read_text()
    with pytest.raises(ValueError, match="out suffix must be one of"):
        plot_field(out=tmp_path / "fig.jpg")
    with pytest.raises(ValueError, match="beta"):
        plot_field(beta=-1.0, out=tmp_path / "x.png")
    assert FORMATS == ("png", "svg", "pdf")


def test_scattered_squares_stay_inside_the_sampled_square(tmp_path, rng):
    """Sobol or random starts in [0.01, 0.5]^2: no square spills past the starts' extent."""
    from matplotlib.figure import Figure

    from flowsim.plotting.canvas import draw_values

    points = rng.uniform(0.01, 0.5, (200, 2))
    ax = Figure().add_subplot()
    dots = draw_values(ax, points, np.ones(len(points)), "viridis", None, 300.0)
    box = dots.get_clip_box()  # a Rectangle clip is kept as a box in display units
    lo, hi = ax.transData.transform(points.min(axis=0)), ax.transData.transform(points.max(axis=0))
    assert np.allclose([box.x0, box.y0], lo) and np.allclose([box.x1, box.y1], hi)


def test_at_the_target_at_start_is_not_the_colour_of_no_data():
    from matplotlib.colors import to_rgb

    from flowsim.plotting.style import AT_START, NEVER

    assert to_rgb(AT_START) != to_rgb("white") and to_rgb(AT_START) != to_rgb(NEVER)


@pytest.mark.parametrize("beta", [1e-6, 1e6])
def test_field_at_the_ends_of_the_beta_range(tmp_path, beta):
    """Tiny beta: L is drawn as L - min L (no offset text); huge beta: arrows where |grad L| > 0, dots elsewhere."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no log of 0, no empty colour range
        out = plot_field(beta=beta, out=tmp_path / "f.svg")
    text = out.read_text()
    assert ("L − 0.693" in text) == (beta == 1e-6)
    assert ("|∇L| = 0 in double precision" in text) == (beta == 1e6)


def test_import_leaves_pyplot_and_backend_alone():
    code = "import sys, flowsim.plotting; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
