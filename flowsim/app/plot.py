"""``flowsim plot``: the figures of a results folder; the drawn paths are computed here, by the engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.tables import check_flows
from flowsim.app.analyze import results_folder
from flowsim.app.progress import Steps, figure_bar
from flowsim.app.run import recorded
from flowsim.dynamics.engines import Task
from flowsim.dynamics.record import StopRule
from flowsim.experiment.config import Experiment
from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS
from flowsim.experiment.store import read_flows
from flowsim.experiment.sweep import paths
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import RatioPlane
from flowsim.plotting import PathData, group_key, plot_results
from flowsim.plotting.registry import families_for, kinds_of
from flowsim.plotting.results import models_of

#: Points recorded along each drawn path.
POINTS = 200


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
    """Per parameter combination, the flows from the region centres (starts a model cannot take are skipped).

    A model that is not a policy of independent starts (a network) has no start at a region
    centre; its combinations get none (its rows record their own paths).
    """
    params = check_flows(flows)
    out = {}
    for key, group in flows.groupby(params, sort=True, dropna=False):
        key = group_key(key)
        row = group.iloc[0]
        if exp is not None and not exp.model_class.policy_of_starts:
            continue
        reference = str(row["reference"])
        loss, model = _model_of(exp, row)
        # a normalised model keeps mass for the other responses: a centre on or past p1 + p2 = 1 (to rounding)
        # has no path; one on the line (not in the hatched triangle) is drawn as such, with the reason
        off = [model.normalised and p.sum() >= 1 - 1e-9 for p in start_points(*cuts)]
        starts = [(p, r) for p, r, o in zip(start_points(*cuts), REGIONS, off, strict=True) if not o]
        none = [
            PathData(p, None, p, float("nan"), "no path", r, NO_START)
            for p, r, o in zip(start_points(*cuts), REGIONS, off, strict=True)
            if o and p.sum() <= 1 + 1e-9
        ]
        p0 = np.array([p for p, _ in starts])
        ref = (
            p0
            if reference == "initial"
            else np.ones_like(p0)
            if reference == "none"
            else np.broadcast_to([row["ref_w"], row["ref_l"]], p0.shape)
        )
        ref = np.asarray(ref, dtype=float)
        task = exp.task(exp.combo_of(row), path=POINTS) if exp else Task(loss, model, stop=stop, path=POINTS)
        out[key] = path_data(task, p0, ref, [r for _, r in starts]) + none
    return out


#: Why a region centre has no path on a normalised model.
NO_START = "region centre on p1 + p2 = 1; a normalised model needs p1 + p2 < 1"


def path_data(task: Task, p0: np.ndarray, ref: np.ndarray, regions: list[str]) -> list[PathData]:
    """The paths from starts p0 (n, 2), as the task's engine records them (:func:`~flowsim.experiment.sweep.paths`)."""
    res = paths(task, p0, ref)
    pol = task.model.bind(p0, ref)
    out = []
    for i, region in enumerate(regions):
        x = res["path_x"][i]
        path = None if x is None else pol.row(i).probs(np.asarray(x, dtype=float))[:, :2]
        final = np.array([res["p1_final"][i], res["p2_final"][i]])
        out.append(PathData(p0[i], path, final, float(res["t_stop"][i]), str(res["status"][i]), region))
    return out


def plot(path: str | Path, fmt: str = "png", progress: bool = False, every: bool = False) -> list[Path]:
    """Write the figures into <folder>/figures: the default set, and with ``every`` the files per
    combination too (:func:`~flowsim.plotting.plot_results`).

    With ``progress``, the steps and a count of the figures written go to stderr.
    """
    folder = results_folder(path)
    steps = Steps(f"plot {folder.name}", progress)
    exp = recorded(folder)
    with steps("reading flows.csv"):
        flows = read_flows(folder / "flows.csv")
    stop = exp.stop if exp else StopRule()
    cuts = (exp.p1_cuts, exp.p2_cuts) if exp else (DEFAULT_CUTS, DEFAULT_CUTS)
    paths = None
    if "paths" in kinds_of(families_for(models_of(flows))):  # only the families that draw them need them
        with steps("the paths from the region centres"):
            paths = region_paths(flows, exp, stop, cuts)
    with figure_bar(f"plot {folder.name}", progress) as bar:
        return plot_results(
            flows,
            folder / "figures",
            fmt=fmt,
            p1_cuts=cuts[0],
            p2_cuts=cuts[1],
            stop=stop,
            paths=paths,
            progress=lambda _: bar.update(),
            every=every,
            experiment=exp,
        )
