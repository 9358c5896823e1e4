"""The displacement study's scatter: ``displacement``, each per-pair predictor recorded at the DPO start
against the pair's change of log pi(y_w) over training, one panel per predictor.

A point per pair (colour: one-pair trainings vs datasets, Okabe-Ito; filled when the pair was
displaced, p(y_w) fell below its start); each panel's title gives Spearman's rho with dlogpw and its
95% interval from resampling whole trainings
(:mod:`flowsim.analysis.studies.displacement.measures`).  Predictors a model does not have (NaN) or
that are constant over its pairs (CHES on logits) get no panel; a table with none gets no figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from flowsim.analysis.studies.displacement.measures import POOL, Pairs, rho_text
from flowsim.analysis.verdicts import NotApplicable
from flowsim.plotting.base import Family, Plot
from flowsim.plotting.style import PATH_COLOURS, save

#: The predictors drawn, in this order, and their axis labels (with units).
AXES: dict[str, str] = {
    "ches": "CHES <h+, h-> - |h+|² (hidden-state units²)",
    "ches_ln": "length-normalised CHES (hidden-state units²)",
    "ches_pre": "CHES before the final layer norm (units²)",
    "hidden_ip": "<h+, h-> (hidden-state units²)",
    "ent_own": "own-pair rate of log π(y_w) (nats per unit t)",
    "dlogpw_dt0": "own + cross-pair rate of log π(y_w) (nats per unit t)",
    "edit_distance": "edit distance y_w to y_l (tokens)",
    "token_overlap": "token overlap of y_w and y_l (share)",
}
Y_LABEL = "Δ log π(y_w) over training (nats, symlog)"
#: Predictors with a few values: a linear axis (the others: symlog, linear within their median |value|).
DISCRETE = ("edit_distance", "token_overlap")


def _kind(frame: pd.DataFrame) -> np.ndarray:
    """'one pair' or 'dataset of N pairs' per row (policy models: 'one start')."""
    if "n_pairs" not in frame.columns:
        return np.full(len(frame), "one start (own flow)")
    n = frame["n_pairs"].to_numpy(int)
    return np.where(n == 1, "one-pair training", np.char.add(np.char.add("dataset of ", n.astype(str)), " pairs"))


def _rho(pairs: Pairs, name: str) -> str:
    """'rho = r [lo, hi]' of ``name`` with dlogpw over ``pairs`` ('n/a' where it does not vary)."""
    try:
        return rho_text("ρ", *pairs.correlation(name)).removeprefix("ρ: rho")
    except NotApplicable:
        return " n/a (constant or NaN)"


def panels_of(frame: pd.DataFrame, kinds: list[str], kind: np.ndarray) -> list[tuple[str, str]]:
    """(predictor, title: its rho with dlogpw and interval per kind of training) for each predictor
    that varies over the rows."""
    everything = Pairs(frame, POOL)
    subsets = {k: Pairs(frame[kind == k], POOL) for k in kinds}
    out = []
    for name in AXES:
        try:
            everything.column(name)
        except NotApplicable:
            continue
        lines = [f"{k}: ρ{_rho(p, name)}" for k, p in subsets.items()]
        out.append((name, "\n".join([name, *lines])))
    return out


def figure(frame: pd.DataFrame, what: str, path: Path) -> Path | None:
    """The scatter of each predictor against dlogpw (see the module docstring); None with no predictor."""
    if "status" not in frame.columns or "displaced" not in frame.columns:
        return None
    pairs = Pairs(frame, POOL)
    kind = _kind(pairs.frame)
    kinds = list(dict.fromkeys(sorted(kind)))
    panels = panels_of(pairs.frame, kinds, kind)
    if not panels:
        return None
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.4 * ncols + 0.6, 3.2 * nrows + 1.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, title) in zip(axes.ravel(), panels, strict=False):
        v = pairs.frame[name].to_numpy(float)
        for k, label in enumerate(kinds):
            sel = kind == label
            colour = PATH_COLOURS[[0, 4, 5, 2][k % 4]]  # orange, blue, vermillion, green: colour-blind safe
            disp = sel & pairs.displaced
            ax.scatter(v[disp], pairs.dlogpw[disp], s=16, color=colour, edgecolors="k", linewidths=0.3)
            ax.scatter(v[sel & ~disp], pairs.dlogpw[sel & ~disp], s=16, facecolors="none", edgecolors=colour)
        ax.axhline(0.0, color="0.4", lw=0.6, ls=":")
        ax.set_yscale("symlog", linthresh=0.1)  # a few pairs fall by nats; most move by tenths
        y = pairs.dlogpw[np.isfinite(pairs.dlogpw)]
        ax.set_ylim(min(y.min(), -0.1) * 1.5, max(y.max(), 0.1) * 1.5)
        if name not in DISCRETE:  # heavy tails: ρ reads ranks, the axis keeps them apart
            scale = float(np.median(np.abs(v[np.isfinite(v)])))
            if scale > 0:
                ax.set_xscale("symlog", linthresh=scale)
                ax.tick_params(axis="x", labelrotation=35)  # the ticks either side of 0 crowd
        ax.set_xlabel(AXES[name] + ("" if name in DISCRETE else ", symlog"), fontsize=7.5)
        ax.set_ylabel(Y_LABEL, fontsize=7.5)
        ax.set_title(title, fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [
        Line2D([], [], ls="", marker="o", color=PATH_COLOURS[[0, 4, 5, 2][k % 4]], label=lab)
        for k, lab in enumerate(kinds)
    ]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", markeredgecolor="k", label="displaced (p_w fell below start)"),
        Line2D([], [], ls="", marker="o", markerfacecolor="none", color="0.3", label="not displaced"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7.5, frameon=False)
    fig.suptitle(
        f"Per-pair predictors at the DPO start vs the change of log π(y_w) ({what})\n"
        f"{len(pairs.dlogpw)} pairs, {pairs.n_trainings} trainings; Spearman ρ with its 95% interval over trainings",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """The experiment's scatter, all its rows together (each training setting in its own colour)."""
    models = sorted(map(str, plot.flows["model"].unique())) if "model" in plot.flows else ["ratio"]
    out = figure(plot.flows, ", ".join(models), plot.file("displacement"))
    if out is not None:
        yield out


FAMILY = Family("displacement", ("displacement",), draw, models=("logits", "features", "network"))
