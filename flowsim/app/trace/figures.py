"""The figures of ``flowsim trace``: the starts, each pair's path in (p_w, p_l) and on the (x1, x2) plane.

Observed paths are solid, one colour per pair; the idealised flows from the same starts are
dashed (ratio plane) and dotted (softmax logits).  Sequence probabilities are small, so the
(p_w, p_l) panels are on log axes; the (x1, x2) panel is on log axes around (1, 1), behind it
the DPO field of the ratio plane at the run's beta (streamlines of d log x / dt).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from flowsim.experiment.regions import DEFAULT_CUTS
from flowsim.plotting.style import decorate, save

#: How each path is drawn: observed, then the idealised models.
STYLES = {"observed": "-", "ratio": "--", "logits": ":"}
#: Pairs drawn with their own colour (the rest in grey, so that 64 paths stay readable).
COLOURED = 12


def observed_paths(rows: pd.DataFrame) -> list[np.ndarray]:
    """Each row's recorded path in probabilities, (m, 2), from its ``path`` JSON."""
    return [np.exp(np.array(json.loads(p))[:, 1:]) for p in rows["path"]]


def _colour(i: int, cmap) -> tuple:
    return cmap(i % 10) if i < COLOURED else (0.6, 0.6, 0.6, 0.5)


def _legend(ax, models) -> None:
    handles = [
        Line2D([], [], color="k", ls=STYLES[m], label="observed (TRL)" if m == "observed" else f"idealised flow: {m}")
        for m in ["observed", *models]
    ]
    ax.legend(handles=handles, fontsize=7.5, loc="best")


def starts_figure(rows: pd.DataFrame, path: Path) -> Path:
    """The starts on the paper's square (regions) and, zoomed, on log axes; filled = displaced."""
    fig = Figure(figsize=(10, 4.6))
    a, b = fig.add_axes((0.06, 0.12, 0.38, 0.8)), fig.add_axes((0.56, 0.12, 0.4, 0.8))
    p0 = rows[["p1_0", "p2_0"]].to_numpy(float)
    disp = rows["displaced"].astype(bool).to_numpy()
    decorate(a, DEFAULT_CUTS, DEFAULT_CUTS)
    for ax in (a, b):
        ax.scatter(p0[disp, 0], p0[disp, 1], s=22, c="#D55E00", label="displaced (p_w fell below its start)")
        ax.scatter(p0[~disp, 0], p0[~disp, 1], s=22, facecolors="none", edgecolors="#0072B2", label="not displaced")
        ax.set_xlabel("p_w0 = π(y_w|x) at the first recorded step")
        ax.set_ylabel("p_l0 = π(y_l|x)")
    a.set_title("starts on the paper's plane", fontsize=10)
    top = float(p0.max())
    if top < 0.05:  # sequence probabilities: every start in the corner
        a.annotate(
            f"all {len(p0)} starts here\n(p_w0, p_l0 <= {top:.2g})",
            (0, 0),
            (0.06, 0.08),
            fontsize=8,
            arrowprops={"arrowstyle": "->", "lw": 0.8},
        )
    b.set_xscale("log")
    b.set_yscale("log")
    b.xaxis.set_minor_formatter(NullFormatter())
    b.yaxis.set_minor_formatter(NullFormatter())
    b.set_title("the same starts, log axes", fontsize=10)
    b.legend(fontsize=8)
    return save(fig, path)


def paths_p_figure(rows: pd.DataFrame, ideal: dict[str, list[np.ndarray]], path: Path) -> Path:
    """Each pair's path in (p_w, p_l) on log axes, beside the idealised flows from its start."""
    from matplotlib import colormaps

    fig = Figure(figsize=(6.4, 5.8))
    ax = fig.add_axes((0.14, 0.11, 0.82, 0.82))
    cmap = colormaps["tab10"]
    for i, obs in enumerate(observed_paths(rows)):
        c = _colour(i, cmap)
        ax.plot(obs[:, 0], obs[:, 1], STYLES["observed"], color=c, lw=1.2)
        ax.plot(obs[0, 0], obs[0, 1], "o", color=c, ms=3)
        for m, paths in ideal.items():
            if i < COLOURED and len(paths[i]):
                ax.plot(paths[i][:, 0], paths[i][:, 1], STYLES[m], color=c, lw=0.9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("p_w = π(y_w|x)")
    ax.set_ylabel("p_l = π(y_l|x)")
    ax.set_title(
        f"{len(rows)} pairs: observed paths (dots: starts)"
        + (f"; idealised flows for the first {COLOURED}" if ideal else ""),
        fontsize=9,
    )
    _legend(ax, list(ideal))
    return save(fig, path)


def _field(ax, beta: float, lo: np.ndarray, hi: np.ndarray) -> None:
    """Streamlines of the DPO ratio-plane field in (h_w, h_l) = (log x1, log x2): d log x / dt."""
    from flowsim.analysis.claims.group import ratio_objective

    u1, u2 = np.meshgrid(np.linspace(lo[0], hi[0], 60), np.linspace(lo[1], hi[1], 60))
    x = np.exp(np.stack([u1, u2], -1))
    v = -ratio_objective(beta).grad(x) / x
    ax.streamplot(u1[0], u2[:, 0], v[..., 0], v[..., 1], color="0.75", density=0.8, linewidth=0.6, arrowsize=0.7)


def limits(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Padded (low, high) corners of points (k, 2), at least 0.1 wide."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = np.maximum((hi - lo) * 0.15, 0.05)
    return lo - pad, hi + pad


def x_axes(ax, beta: float, lo: np.ndarray, hi: np.ndarray, what: str = "") -> None:
    """The (log x1, log x2) axes: the field behind, the start's lines, limits and labels."""
    _field(ax, beta, lo, hi)
    ax.axvline(0, color="k", lw=0.6)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel(f"{what}log x1 = log π(y_w|x) - log π_ref(y_w|x)  (= reward / β)")
    ax.set_ylabel(f"{what}log x2 = log π(y_l|x) - log π_ref(y_l|x)")


def paths_x_figure(rows: pd.DataFrame, ideal: dict[str, list[np.ndarray]], beta: float, path: Path) -> Path:
    """Each pair's path on the paper's (x1, x2) plane, in logs (x = p / p_ref), with the DPO field behind."""
    from matplotlib import colormaps

    fig = Figure(figsize=(6.4, 5.8))
    ax = fig.add_axes((0.14, 0.11, 0.82, 0.82))
    cmap = colormaps["tab10"]
    ref = np.log(rows[["ref_w", "ref_l"]].to_numpy(float))
    obs = [np.log(o) - ref[i] for i, o in enumerate(observed_paths(rows))]
    ids = {m: [np.log(p) - ref[i] if len(p) else p for i, p in enumerate(ps)] for m, ps in ideal.items()}
    lo, hi = limits(np.concatenate([*obs, *[p for ps in ids.values() for p in ps if len(p)]]))
    x_axes(ax, beta, lo, hi)
    for i, o in enumerate(obs):
        c = _colour(i, cmap)
        ax.plot(o[:, 0], o[:, 1], STYLES["observed"], color=c, lw=1.2)
        for m, ps in ids.items():
            if i < COLOURED and len(ps[i]):
                ax.plot(ps[i][:, 0], ps[i][:, 1], STYLES[m], color=c, lw=0.9)
    ax.set_title(f"the (x1, x2) plane in logs; grey: the DPO field at β = {beta:g} (ratio plane)", fontsize=9)
    _legend(ax, list(ids))
    return save(fig, path)


def trace_figures(rows: pd.DataFrame, ideal: dict[str, list[np.ndarray]], beta: float, out: Path) -> list[Path]:
    """Write the figures into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    return [
        starts_figure(rows, out / "starts.png"),
        paths_p_figure(rows, ideal, out / "paths_p.png"),
        paths_x_figure(rows, ideal, beta, out / "paths_x.png"),
    ]
