"""``flowsim plot``: the figures of a results folder; the drawn paths are integrated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.tables import check_flows
from flowsim.app.analyze import results_folder
from flowsim.app.progress import Steps, figure_bar
from flowsim.app.run import recorded
from flowsim.dynamics.driver import integrate
from flowsim.dynamics.optimisers import run_discrete
from flowsim.dynamics.record import StopRule
from flowsim.experiment.config import Experiment
from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS
from flowsim.experiment.store import read_flows
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import TRAINED_MODELS, RatioPlane
from flowsim.plotting import PathData, group_key, plot_results
from flowsim.plotting.registry import families_for, kinds_of
from flowsim.plotting.results import models_of


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

    A trained model (:data:`~flowsim.model.parameterisations.TRAINED_MODELS`: a network) has no policy
    to start at a region centre; its combinations get none (its rows record their own paths).
    """
    params = check_flows(flows)
    options = exp.solver if exp else None
    out = {}
    for key, group in flows.groupby(params, sort=True, dropna=False):
        key = group_key(key)
        row = group.iloc[0]
        if str(row.get("model", "ratio")) in TRAINED_MODELS:
            continue
        reference = str(row["reference"])
        loss, model = _model_of(exp, row)
        # a normalised model keeps mass for the other responses: a centre on or past p1 + p2 = 1 (to rounding)
        # has no path; one on the line (not in the hatched triangle) is drawn as such, with the reason
        off = [model.normalised and p.sum() >= 1 - 1e-9 for p in start_points(*cuts)]
        starts = [(p, r) for p, r, o in zip(start_points(*cuts), REGIONS, off, strict=True) if not o]
        none = [PathData(p, None, p, float("nan"), "no path", r, NO_START) for p, r, o in
                zip(start_points(*cuts), REGIONS, off, strict=True) if o and p.sum() <= 1 + 1e-9]  # fmt: skip
        p0 = np.array([p for p, _ in starts])
        ref = p0 if reference == "initial" else np.ones_like(p0) if reference == "none" else \
            np.broadcast_to([row["ref_w"], row["ref_l"]], p0.shape)  # fmt: skip
        pol = model.bind(p0, np.asarray(ref, dtype=float))
        optimiser = exp.optimiser(exp.combo_of(row)) if exp else None
        if optimiser is None:
            out[key] = [_flow_path(loss, pol.row(i), stop, options, p, r) for i, (p, r) in enumerate(starts)]
        else:
            out[key] = discrete_paths(loss, pol, optimiser, stop, [r for _, r in starts])
        out[key] += none
    return out


#: Why a region centre has no path on a normalised model.
NO_START = "region centre on p1 + p2 = 1; a normalised model needs p1 + p2 < 1"


def _flow_path(loss, pol, stop: StopRule, options, p: np.ndarray, region: str) -> PathData:
    r = integrate(loss, policy=pol, stop=stop, options=options, path=True)
    path = None if r.path_x is None else pol.probs(r.path_x)[:, :2]
    return PathData(p, path, np.array([r.p1_final, r.p2_final]), r.t_stop, r.status, region)


def discrete_paths(loss, pol, optimiser, stop: StopRule, regions: list[str], points: int = 400) -> list[PathData]:
    """The discrete runs from every start of ``pol``, replayed step by step to record their paths.

    :func:`run_discrete` gives each row's record and step count; the replay repeats the same
    steps (the optimiser's own ``step``) and keeps about ``points`` points per path.
    """
    res = run_discrete(loss, pol, optimiser, stop)
    steps = np.asarray(res["steps"], dtype=np.int64)
    objective = Objective(loss, pol)
    theta = pol.theta0
    state = optimiser.init(theta)
    stride = max(1, int(steps.max(initial=0)) // points)
    trace = [pol.probs(theta)[:, :2]]
    for k in range(1, int(steps.max(initial=0)) + 1):
        theta, state = optimiser.step(theta, objective.grad(theta), state, k)
        if k % stride == 0 or k == steps.max():
            trace.append(np.where((k <= steps)[:, None], pol.probs(theta)[:, :2], np.nan))
    path = np.stack(trace, axis=1)
    out = []
    for i, region in enumerate(regions):
        keep = path[i][np.all(np.isfinite(path[i]), axis=1)]
        final = np.array([res["p1_final"][i], res["p2_final"][i]])
        out.append(PathData(pol.p0[i], np.vstack([keep, final]), final, float(res["t_stop"][i]),
                            str(res["status"][i]), region))  # fmt: skip
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
        return plot_results(flows, folder / "figures", fmt=fmt, p1_cuts=cuts[0], p2_cuts=cuts[1], stop=stop,
                            paths=paths, progress=lambda _: bar.update(), every=every,
                            experiment=exp)  # fmt: skip
