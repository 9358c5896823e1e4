"""``flowsim plot``: the figures of a results folder; the drawn paths are integrated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.tables import check_flows
from flowsim.app.analyze import results_folder
from flowsim.app.run import recorded
from flowsim.dynamics.driver import integrate
from flowsim.dynamics.record import StopRule
from flowsim.experiment.config import Experiment
from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS
from flowsim.experiment.store import read_flows
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import RatioPlane
from flowsim.plotting import PathData, plot_results


def start_points(p1_cuts=DEFAULT_CUTS, p2_cuts=DEFAULT_CUTS) -> np.ndarray:
    """The centres of the nine regions, (9, 2) in REGIONS order: where the drawn paths start."""
    xs = np.diff([0, *p1_cuts, 1]) / 2 + np.array([0, *p1_cuts])
    ys = (np.diff([0, *p2_cuts, 1]) / 2 + np.array([0, *p2_cuts]))[::-1]
    return np.array([(xs[k % 3], ys[k // 3]) for k in range(9)])


def _model_of(exp: Experiment | None, row: pd.Series):
    """The loss and parameterisation of a flows row (DPO on the ratio plane without meta.json)."""
    if exp is None:
        return DPO(float(row["beta"])), RatioPlane()
    return exp.split(exp.combo_of(row))


def region_paths(flows: pd.DataFrame, exp: Experiment | None, stop: StopRule, cuts) -> dict[tuple, list[PathData]]:
    """Per parameter combination, the flows from the region centres (starts a model cannot take are skipped)."""
    params = check_flows(flows)
    options = exp.solver if exp else None
    out = {}
    for key, group in flows.groupby(params, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = group.iloc[0]
        reference = str(row["reference"])
        loss, model = _model_of(exp, row)
        drawn = []
        for p, region in zip(start_points(*cuts), REGIONS, strict=True):
            if model.normalised and p.sum() >= 1:
                continue
            ref = p if reference == "initial" else np.ones(2) if reference == "none" else \
                np.array([row["ref_w"], row["ref_l"]])  # fmt: skip
            pol = model.bind(p, ref)
            r = integrate(loss, policy=pol, stop=stop, options=options, path=True)
            path = None if r.path_x is None else pol.probs(r.path_x)[:, :2]
            drawn.append(PathData(p, path, np.array([r.p1_final, r.p2_final]), r.t_stop, r.status, region))
        out[key] = drawn
    return out


def plot(path: str | Path, fmt: str = "png") -> list[Path]:
    """Write the heatmaps, facets and path figures into <folder>/figures."""
    folder = results_folder(path)
    exp = recorded(folder)
    flows = read_flows(folder / "flows.csv")
    stop = exp.stop if exp else StopRule()
    cuts = (exp.p1_cuts, exp.p2_cuts) if exp else (DEFAULT_CUTS, DEFAULT_CUTS)
    paths = region_paths(flows, exp, stop, cuts)
    return plot_results(flows, folder / "figures", fmt=fmt, p1_cuts=cuts[0], p2_cuts=cuts[1], stop=stop,
                        paths=paths)  # fmt: skip
