"""What the explore page computes, without the page: settings, trajectories, the field, heatmap cells.

A *setting* is the page's choice of model, loss, beta, reference, optimiser and learning
rate.  It is written as an experiment document and validated by flowsim's own experiment
parser (:func:`flowsim.experiment.config.parse_experiment`), so the page's error messages
are the ones an experiment file would get ("page: loss.beta must be > 0; got -1.0").
Trajectories are computed as the sweeps compute their rows, by the engines (the combination's
task, ``Experiment.task``, with its path recorded: :func:`flowsim.experiment.sweep.paths`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowsim.dynamics.optimisers import OPTIMISERS
from flowsim.errors import UserError
from flowsim.experiment.config import FLOW, ConfigError, Experiment, parse_experiment
from flowsim.experiment.sweep import paths, references
from flowsim.model.losses import LOSSES
from flowsim.model.objective import Objective

#: The source named in the page's validation errors.
SOURCE = "page"
#: Columns of flows.csv that name a setting rather than measure a flow.
SETTING_COLUMNS = ("loss", "model", "dynamics", "reference")


class StartError(UserError):
    """A start the chosen model cannot take."""


@dataclass(frozen=True)
class Setting:
    """The page's choices, as typed (numbers are strings until validated).

    ``ref_w`` and ``ref_l`` apply to reference = "fixed"; ``lr`` to a discrete optimiser.
    """

    model: str = "ratio"
    loss: str = "dpo"
    beta: str = "0.1"
    reference: str = "fixed"
    ref_w: str = "1"
    ref_l: str = "1"
    dynamics: str = FLOW
    lr: str = "0.1"

    def label(self) -> str:
        """A short legend entry: model, loss, beta, reference, dynamics (and lr)."""
        ref = {"initial": "ref = SFT", "none": "no ref"}.get(self.reference, f"ref = ({self.ref_w}, {self.ref_l})")
        dyn = self.dynamics if self.dynamics == FLOW else f"{self.dynamics} lr = {self.lr}"
        beta = f" β = {self.beta}" if "beta" in _fields(LOSSES.get(self.loss)) else ""
        return f"{self.model}, {self.loss}{beta}, {ref}, {dyn}"


@dataclass(frozen=True)
class Trajectory:
    """One computed path in probabilities, with its record and how long it took."""

    p1: np.ndarray
    p2: np.ndarray
    t: np.ndarray
    status: str
    t_stop: float
    evaluations: int  # nfev for a flow, steps for an optimiser
    ms: float
    message: str = ""


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls is not None else set()


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{SOURCE}: {key} must be a number; got {text!r}") from None


def setting_of(exp: Experiment | None, row: Mapping[str, Any]) -> Setting:
    """The setting of a flows row (its combination, as the page shows it)."""
    dyn = str(row.get("dynamics", FLOW))
    beta = row.get("beta", 0.1)
    lr = row.get("lr", math.nan)
    return Setting(
        model=str(row.get("model", exp.model_kind if exp else "ratio")),
        loss=str(row.get("loss", "dpo")),
        beta="" if pd.isna(beta) else f"{float(beta):g}",
        reference=str(row.get("reference", "fixed")),
        ref_w=f"{float(row['ref_w']):g}",
        ref_l=f"{float(row['ref_l']):g}",
        dynamics=dyn,
        lr="0.1" if pd.isna(lr) else f"{float(lr):g}",
    )


def experiment_of(setting: Setting, base: Experiment | None, base_combo: Mapping[str, Any] | None) -> Experiment:
    """The setting as a one-combination experiment, validated as an experiment file is.

    Parameters the page does not show (a loss's other parameters, K, the optimiser's other
    hyperparameters, the stop rule, the solver) are the run's (``base``, ``base_combo``)
    where the setting keeps the run's kind, else the defaults.  A run integrated by its
    closed form is integrated here (``method = "auto"``): the page draws the path.
    """
    base_doc = base.as_dict() if base is not None else {"name": "explore"}
    combo = dict(base_combo or {})
    same = (lambda key, kind: combo.get(key) == kind) if base is not None else (lambda key, kind: False)
    loss_cls = LOSSES.get(setting.loss)
    loss: dict[str, Any] = {"kind": setting.loss, "reference": setting.reference}
    if same("loss", setting.loss):
        loss |= {k: combo[k] for k in _fields(loss_cls)}
    if "beta" in _fields(loss_cls):
        loss["beta"] = _number("loss.beta", setting.beta)
    if setting.reference == "fixed":
        loss |= {"ref_w": _number("loss.ref_w", setting.ref_w), "ref_l": _number("loss.ref_l", setting.ref_l)}
    model: dict[str, Any] = {"kind": setting.model}
    if base is not None and base.model_kind == setting.model:
        model |= {k: combo[k] for k in base.model_params}
    doc = {"name": base_doc.get("name", "explore"), "loss": loss, "model": model}
    for key in ("grid", "stop", "regions"):
        if key in base_doc:
            doc[key] = base_doc[key]
    solver = dict(base_doc.get("solver", {}))
    solver.pop("engine", None)  # one start: the driver, the reference engine
    if solver.get("method") == "exact":
        solver["method"] = "auto"
    doc["solver"] = solver
    doc["dynamics"] = _dynamics_doc(setting, combo if same("dynamics", setting.dynamics) else {})
    return parse_experiment(doc, source=SOURCE)


def _dynamics_doc(setting: Setting, combo: Mapping[str, Any]) -> dict[str, Any]:
    if setting.dynamics not in OPTIMISERS:  # "flow", or an unknown kind the parser names
        return {"kind": setting.dynamics}
    params = {k: combo[k] for k in _fields(OPTIMISERS[setting.dynamics]) if k in combo}
    return {"kind": setting.dynamics, **params, "lr": _number("dynamics.lr", setting.lr)}


def check_start(exp: Experiment, p0: np.ndarray) -> None:
    """StartError unless ``p0`` is a start the experiment's model can take."""
    p1, p2 = (float(v) for v in p0)
    if not (0 < p1 <= 1 and 0 < p2 <= 1):
        raise StartError(f"the start (p1, p2) = ({p1:.4g}, {p2:.4g}) is outside (0, 1]²; click inside the square")
    if exp.model_class.normalised and p1 + p2 >= 1:
        raise StartError(
            f"model {exp.model_kind!r} is a distribution over its responses: it needs p1 + p2 < 1, "
            f"and this start has p1 + p2 = {p1 + p2:.4g}"
        )


def trajectory(exp: Experiment, combo: Mapping[str, Any], p0, ref=None, points: int = 200) -> Trajectory:
    """The path from one start under one combination of an experiment, as the sweep computes its row.

    ``ref`` defaults to the combination's references for ``p0``.  The engine that records paths
    computes it (:func:`~flowsim.experiment.sweep.paths`): a flow by the driver with the run's
    stop rule and solver options (``points`` evenly spaced in time), an optimiser by
    :func:`~flowsim.dynamics.optimisers.run_discrete` (about ``points`` of its steps, t = lr x steps).
    """
    p0 = np.asarray(p0, dtype=float)
    check_start(exp, p0)
    ref = references(combo, p0) if ref is None else np.asarray(ref, dtype=float)
    tic = time.perf_counter()
    res = paths(exp.task(combo, path=points), p0[None], ref[None])
    ms = 1e3 * (time.perf_counter() - tic)
    status, t_stop, nfev, message = (
        str(res["status"][0]),
        float(res["t_stop"][0]),
        int(res["nfev"][0]),
        str(res["message"][0]),
    )
    if res["path_x"][0] is None:  # a failed flow has no path
        return Trajectory(np.empty(0), np.empty(0), np.empty(0), status, t_stop, nfev, ms, message)
    policy = exp.split(combo)[1].bind(p0[None], ref[None]).row(0)
    p = policy.probs(np.asarray(res["path_x"][0], dtype=float))[:, :2]
    return Trajectory(p[:, 0], p[:, 1], np.asarray(res["path_t"][0], dtype=float), status, t_stop, nfev, ms, message)


def field(exp: Experiment, combo: Mapping[str, Any], n: int = 15) -> dict[str, np.ndarray]:
    """Figure 1's arrows for a combination: each start's initial velocity dp/dt = J_p(theta) (-grad L) at t = 0.

    On an ``n`` x ``n`` grid of cell centres in (0, 1)² (for a normalised model, those with
    p1 + p2 < 1).  On the ratio plane with a fixed reference this is the paper's -grad L
    (times the reference, read in probabilities); for any model the probabilities' velocity
    comes from a central difference of ``policy.probs`` along -grad L (exact where the model
    is linear in theta, as the ratio plane is).  Returns the starts ``p1``, ``p2``, the
    velocity ``v1``, ``v2`` and its size ``speed``.
    """
    c = (np.arange(n) + 0.5) / n
    P1, P2 = np.meshgrid(c, c)
    p0 = np.stack([P1.ravel(), P2.ravel()], -1)
    if exp.model_class.normalised:
        p0 = p0[p0.sum(-1) < 1]
    loss, model = exp.split(combo)
    pol = model.bind(p0, references(combo, p0))
    theta = pol.theta0
    g = Objective(loss, pol).grad(theta)
    gnorm = np.linalg.norm(g, axis=-1, keepdims=True)
    h = 1e-6 * np.max(pol.theta_scale(theta), axis=-1, keepdims=True) / np.where(gnorm > 0, gnorm, 1.0)
    v = (pol.probs(theta - h * g)[:, :2] - pol.probs(theta + h * g)[:, :2]) / (2 * h)
    return {"p1": p0[:, 0], "p2": p0[:, 1], "v1": v[:, 0], "v2": v[:, 1], "speed": np.hypot(v[:, 0], v[:, 1])}


def arrows(f: Mapping[str, np.ndarray], n: int = 15) -> dict[str, np.ndarray]:
    """Arrow segments for :func:`field`: length growing with log10 |dp/dt| (0.25 to 0.9 of a cell), as Figure 1's
    default, so that the weak field of the upper right stays visible next to the strong one near the axes."""
    speed = f["speed"]
    ok = speed > 0
    lm = np.log10(np.where(ok, speed, np.nan))
    lo, hi = (np.nanmin(lm), np.nanmax(lm)) if ok.any() else (0.0, 1.0)
    frac = np.where(ok, 0.25 + 0.65 * (lm - lo) / max(hi - lo, 1e-12), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u1, u2 = np.where(ok, f["v1"] / speed, 0.0), np.where(ok, f["v2"] / speed, 0.0)
    length = frac / n
    return {"x0": f["p1"], "y0": f["p2"], "x1": f["p1"] + u1 * length, "y1": f["p2"] + u2 * length, "speed": speed}


def numeric_columns(flows: pd.DataFrame) -> list[str]:
    """The columns that can colour the heatmap: every numeric column with a finite value."""
    return [c for c in flows.columns if flows[c].dtype.kind in "fiub" and np.isfinite(flows[c].to_numpy(float)).any()]


def cells(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Widths and heights of the heatmap's cells: a mesh's cells between midpoints, else squares tiling the square."""
    p1, p2 = group["p1_0"].to_numpy(float), group["p2_0"].to_numpy(float)
    u1, u2 = np.unique(p1), np.unique(p2)
    if len(u1) * len(u2) == len(group) and len(u1) > 1 and len(u2) > 1:
        return _widths(u1, p1), _widths(u2, p2)
    side = np.full(len(group), 1.0 / math.sqrt(max(len(group), 1)))
    return side, side


def _widths(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    mid = (u[1:] + u[:-1]) / 2
    edges = np.concatenate([[u[0] - (mid[0] - u[0])], mid, [u[-1] + (u[-1] - mid[-1])]])
    w = np.diff(edges)
    return w[np.searchsorted(u, p)]
