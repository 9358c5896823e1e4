"""Figures: heatmaps over the initial conditions, facets across parameters, paths, the DPO field.

The only flowsim module that imports matplotlib.  It draws on :class:`matplotlib.figure.Figure`
objects and saves them with ``Figure.savefig``, so it needs no pyplot and never switches
the user's backend.

* :func:`plot_results` -- for every parameter combination of a flows table: heatmaps over
  (p1_0, p2_0) of t_stop, p1_final, p2_final, t_w, t_l, t_l/t_w and status, a "basin"
  picture (final p1 as colour, time to stop as contours) and a few paths drawn over the
  field; and for every quantity one faceted figure across the combinations.
* :func:`plot_field` -- the paper's Figure 1 redrawn: the loss surface and its top view
  with -grad L as arrows (length, and colour in the logarithmic option, showing magnitude)
  and streamlines.

Colour maps are colour-blind safe (viridis, cividis, PuOr; Okabe-Ito for the statuses).
On every heatmap the 3 x 3 regions are outlined and named, and the infeasible triangle
p1 + p2 > 1 is hatched.  Grids are detected: a full Cartesian mesh (linear or log
spaced) is drawn cell by cell, any other set of points (Sobol, random) as a scatter of
squares sized to tile the square.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.patheffects as pe
import mpl_toolkits.mplot3d  # noqa: F401 - registers the "3d" projection
import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle
from matplotlib.ticker import FuncFormatter

from flowsim._validation import check_choice, check_positive
from flowsim.analysis.tables import check_flows
from flowsim.dynamics.record import STATUSES, StopRule
from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS, check_cuts
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.ratio import RatioPolicy

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
DPI = 130
#: Okabe-Ito colours for the statuses (converged, capped, timeout, failed).
STATUS_COLOURS: dict[str, str] = {
    "converged": "#0072B2", "capped": "#E69F00", "reached_loss": "#009E73", "reached_margin": "#56B4E9",
    "stationary": "#F0E442", "timeout": "#CC79A7", "diverged": "#D55E00", "failed": "#000000",
}  # fmt: skip
#: The two classes of the ``displaced`` map (Okabe-Ito blue and vermillion).
DISPLACED_COLOURS: dict[str, str] = {"not displaced": "#0072B2", "displaced (p1 < p1_0)": "#D55E00"}
#: Okabe-Ito colours for paths.
PATH_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#999999")
#: Colours for "never reached" (NaN) and "reached at t = 0"; not white, which is where there is no start
NEVER, AT_START = "0.6", "#fbb4ae"
TIME_UNITS = "(gradient-flow time units)"


@dataclass(frozen=True)
class Quantity:
    """How one column is drawn: name in files, title, colour bar label, scale and colour map."""

    name: str
    title: str
    label: str
    scale: str  # "log", "linear", "ratio" or "status" (categories)
    cmap: str = "viridis"
    #: for scale "status": the category names and colours, in the order of their codes
    colours: tuple[tuple[str, str], ...] = tuple(STATUS_COLOURS.items())


def quantities(stop: StopRule) -> tuple[Quantity, ...]:
    """The heatmap quantities, in the order files are written."""
    return (
        Quantity("t_stop", "Time to stop", f"t_stop {TIME_UNITS}", "log"),
        Quantity("p1_final", "Final p1 = π(y_w|x)", "p1 at the stop", "linear", "cividis"),
        Quantity("p2_final", "Final p2 = π(y_l|x)", "p2 at the stop (log scale)", "log", "cividis"),
        Quantity("t_w", f"t_w: p1 first ≥ {stop.p1_target:g}", f"t_w {TIME_UNITS}", "log"),
        Quantity("t_l", f"t_l: p2 first ≤ {stop.p2_target:g}", f"t_l {TIME_UNITS}", "log"),
        Quantity(
            "t_l_over_t_w",
            "Which target first: t_l / t_w",
            "t_l / t_w  (< 1: p2 reaches its target first)",
            "ratio",
            "PuOr_r",
        ),
        Quantity("status", "Why the flow stopped", "status", "status"),
        Quantity(
            "p_w_min_rel", "Lowest p1 along the path / p1_0", "min_t p1(t) / p1_0  (1: never fell)", "linear", "cividis"
        ),
        Quantity(
            "displaced",
            "Likelihood displacement (p1 fell below p1_0)",
            "displaced",
            "status",
            colours=tuple(DISPLACED_COLOURS.items()),
        ),
    )


#: Figure kinds plot_results can write: the quantities, then "basin" and "paths".
KINDS: tuple[str, ...] = ("t_stop", "p1_final", "p2_final", "t_w", "t_l", "t_l_over_t_w", "status", "p_w_min_rel",
                          "displaced", "basin", "paths")  # fmt: skip
#: Quantities drawn only when the table has the columns they need (tables made before them lack them).
NEEDS: dict[str, str] = {"p_w_min_rel": "p_w_min", "displaced": "displaced"}


def values(flows: pd.DataFrame, name: str) -> np.ndarray:
    """The values drawn for a quantity; ``t_l_over_t_w`` counts a NaN time as never (+inf).

    t_l / t_w is 0 where only p2 reaches its target (or p2 is there at t = 0), +inf where
    only p1 does, NaN where neither does or both are there at t = 0; statuses become
    their index in :data:`flowsim.dynamics.record.STATUSES`.
    """
    if name == "status":
        return flows["status"].map({s: float(i) for i, s in enumerate(STATUSES)}).to_numpy(float)
    if name == "displaced":
        d = flows["displaced"].astype(str).str.lower()
        return np.where(d == "true", 1.0, np.where(d == "false", 0.0, np.nan))
    if name == "p_w_min_rel":
        return flows["p_w_min"].to_numpy(float) / flows["p1_0"].to_numpy(float)
    if name != "t_l_over_t_w":
        return flows[name].to_numpy(float)
    tl = np.nan_to_num(flows["t_l"].to_numpy(float), nan=np.inf)
    tw = np.nan_to_num(flows["t_w"].to_numpy(float), nan=np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = tl / tw
    return np.where((tl == tw) & np.isin(tl, (0.0, np.inf)), np.nan, r)


def _norm(q: Quantity, v: np.ndarray) -> tuple[mcolors.Colormap, mcolors.Normalize]:
    """Colour map (with its bad/under/over colours) and a norm shared by every panel."""
    if q.scale == "status":
        cmap = mcolors.ListedColormap([c for _, c in q.colours]).with_extremes(bad=NEVER)
        return cmap, mcolors.BoundaryNorm(np.arange(len(q.colours) + 1) - 0.5, len(q.colours))
    base = colormaps[q.cmap]
    pos = v[np.isfinite(v) & (v > 0)]
    if q.scale == "linear":
        return base.with_extremes(bad=NEVER), mcolors.Normalize(0.0, 1.0)
    if q.scale == "ratio":
        m = max(0.5, float(np.abs(np.log10(pos)).max())) if pos.size else 1.0
        return base.with_extremes(bad=NEVER, under=base(0.0), over=base(1.0)), mcolors.LogNorm(10**-m, 10**m)
    lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1e-3, 1.0)
    hi = hi if hi > lo else lo * 10
    return base.with_extremes(bad=NEVER, under=AT_START), mcolors.LogNorm(lo, hi)


def _prepare(q: Quantity, v: np.ndarray, norm: mcolors.Normalize) -> np.ndarray:
    """Map 0 and +inf below / above a log norm, so that they show as its under / over colours."""
    if not isinstance(norm, mcolors.LogNorm):
        return v
    v = np.where(v == 0, norm.vmin / 10, v)
    return np.where(np.isposinf(v), norm.vmax * 10, v)


def mesh_of(p1: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(p1 cell edges, p2 cell edges, column index, row index) if the points form a full mesh, else None."""
    u1, i1 = np.unique(p1, return_inverse=True)
    u2, i2 = np.unique(p2, return_inverse=True)
    if len(u1) < 2 or len(u2) < 2 or len(u1) * len(u2) != len(p1):
        return None
    if len(np.unique(i2 * len(u1) + i1)) != len(p1):
        return None

    def edges(u: np.ndarray) -> np.ndarray:
        mid = (u[:-1] + u[1:]) / 2
        return np.concatenate([[2 * u[0] - mid[0]], mid, [2 * u[-1] - mid[-1]]])

    return edges(u1), edges(u2), i1, i2


def _draw(ax, p0: np.ndarray, v: np.ndarray, cmap, norm, width_pt: float):
    """A heatmap of ``v`` over the initial points ``p0`` (n, 2); returns the mappable."""
    m = mesh_of(p0[:, 0], p0[:, 1])
    if m is not None:
        e1, e2, i1, i2 = m
        grid = np.full((len(e2) - 1, len(e1) - 1), np.nan)
        grid[i2, i1] = v
        return ax.pcolormesh(e1, e2, np.ma.masked_invalid(grid), cmap=cmap, norm=norm, shading="flat",
                             rasterized=True, zorder=0.5)  # fmt: skip
    side = width_pt / math.sqrt(max(len(v), 1)) * 1.9  # squares overlap enough to hide the gaps of a random set
    dots = ax.scatter(p0[:, 0], p0[:, 1], c=v, cmap=cmap, norm=norm, s=side**2, marker="s", linewidths=0,
                      plotnonfinite=True, rasterized=True, zorder=0.5)  # fmt: skip
    # the squares of points near the edge would spill past the sampled square: clip them to the starts' extent
    (lo1, lo2), (hi1, hi2) = p0.min(axis=0), p0.max(axis=0)
    if hi1 > lo1 and hi2 > lo2:
        dots.set_clip_path(Rectangle((lo1, lo2), hi1 - lo1, hi2 - lo2, transform=ax.transData))
    return dots


def _decorate(ax, p1_cuts, p2_cuts, fontsize: float = 7.5, names: bool = True) -> None:
    """Region lines and names, the hatched infeasible triangle, axes labels and limits."""
    # mid-grey hatching shows on the dark and on the light ends of the colour maps
    with rc_context({"hatch.linewidth": 0.6, "hatch.color": "0.5"}):
        ax.add_patch(Polygon([(0, 1), (1, 1), (1, 0)], closed=True, fill=False, hatch="///", lw=0, alpha=0.9))
    halo = [pe.withStroke(linewidth=2.2, foreground="white")]
    ax.plot([0, 1], [1, 0], color="k", lw=0.8, path_effects=halo)
    for c in p1_cuts:
        ax.axvline(c, color="k", lw=0.9, ls="--", path_effects=halo)
    for c in p2_cuts:
        ax.axhline(c, color="k", lw=0.9, ls="--", path_effects=halo)
    if names:
        xs = np.diff([0, *p1_cuts, 1]) / 2 + np.array([0, *p1_cuts])
        ys = (np.diff([0, *p2_cuts, 1]) / 2 + np.array([0, *p2_cuts]))[::-1]
        for k, name in enumerate(REGIONS):
            ax.text(xs[k % 3], ys[k // 3], name, ha="center", va="center", fontsize=fontsize, color="k",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")


def _labels(ax, fontsize: float = 9.5) -> None:
    ax.set_xlabel("p1_0 = π(y_w|x) at the start", fontsize=fontsize)
    ax.set_ylabel("p2_0 = π(y_l|x) at the start", fontsize=fontsize)


#: Parameters always named in titles and file names; any other only where it varies.
ALWAYS_NAMED = ("beta", "ref_w", "ref_l")


def _shown(flows: pd.DataFrame, params: list[str]) -> list[bool]:
    """Which parameter columns titles and tags name: beta and the references, and any that vary."""
    return [p in ALWAYS_NAMED or flows[p].nunique() > 1 for p in params]


def _v(v: object) -> str:
    return f"{v:g}" if isinstance(v, float | int | np.floating | np.integer) and not isinstance(v, bool) else str(v)


#: How each reference mode is named in titles and in file names.
REFERENCE_TEXT = {"initial": ", reference = SFT model", "none": ", no reference (π_ref = 1)", "fixed": ""}
REFERENCE_TAG = {"initial": "_refSFT", "none": "_refnone", "fixed": ""}


def _param_text(params: list[str], key: tuple, reference: str, shown: list[bool] | None = None) -> str:
    sym = {"beta": "β"}
    shown = shown or [True] * len(params)
    text = ", ".join(f"{sym.get(p, p)} = {_v(v)}" for p, v, s in zip(params, key, shown, strict=True)
                     if s and p != "reference" and v is not None)  # fmt: skip
    return text + REFERENCE_TEXT.get(reference, f", reference = {reference}")


def _tag(params: list[str], key: tuple, reference: str, shown: list[bool] | None = None) -> str:
    shown = shown or [True] * len(params)
    tag = "_".join(
        _v(v) if p in ("dynamics", "loss") else f"{p.replace('_', '')}{_v(v)}"
        for p, v, s in zip(params, key, shown, strict=True)
        if s and p != "reference" and v is not None
    )
    return tag + REFERENCE_TAG.get(reference, f"_ref{reference}")


def _panel_title(flows: pd.DataFrame, params: list[str], key: tuple, rows: pd.DataFrame) -> str:
    """A facet panel's title: only what varies across the panels (the suptitle says the rest).

    With several losses, a panel names its loss and those of the loss's own parameters that
    vary among its rows' combinations (not the parameters other losses take).
    """
    reference = str(rows["reference"].iloc[0])
    ref = reference if "reference" in params else "fixed"
    if "loss" in params:
        mine = flows[flows["loss"] == rows["loss"].iloc[0]]
        varying = [p == "loss" or (mine[p].notna().any() and mine[p].nunique() > 1) for p in params]
    else:
        varying = [flows[p].nunique(dropna=False) > 1 for p in params]
    text = _param_text(params, key, ref, varying)
    return text.removeprefix(", ") or _param_text(params, key, reference)


def _legend_extras(ax, q: Quantity, v: np.ndarray, fontsize: float = 8) -> None:
    """Legend entries for the special colours actually present, plus the hatching."""
    handles = _extra_handles(q, v)
    ncol = 2 if len(handles) == 4 else min(len(handles), 3)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=ncol,
              fontsize=fontsize, frameon=False, handlelength=1.4, columnspacing=1.0)  # fmt: skip


def _extra_handles(q: Quantity, v: np.ndarray) -> list[Patch]:
    """The hatching, and the special colours (at t = 0, never, only one target) present in ``v``."""
    handles = [Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label="p1 + p2 > 1 (infeasible)")]
    if q.scale == "status":
        handles = [Patch(fc=c, label=s) for i, (s, c) in enumerate(q.colours) if np.any(v == i)] + handles
    elif q.scale == "log":
        if np.any(v == 0):
            what = "stopped at t = 0" if q.name == "t_stop" else "at the target at t = 0"
            handles.append(Patch(fc=AT_START, ec="0.3", lw=0.5, label=what))
        if np.any(np.isnan(v)):
            handles.append(Patch(fc=NEVER, label="failed" if q.name in ("t_stop", "p2_final") else "never reached"))
    elif q.scale == "ratio":
        cmap = colormaps[q.cmap]
        if np.any(v == 0):
            handles.append(Patch(fc=cmap(0.0), label="only p2 reaches its target"))
        if np.any(np.isposinf(v)):
            handles.append(Patch(fc=cmap(1.0), label="only p1 reaches its target"))
        if np.any(np.isnan(v)):
            handles.append(Patch(fc=NEVER, label="neither reached (or both at t = 0)"))
    return handles


def _colorbar(fig, mappable, cax, q: Quantity, fontsize: float = 9) -> None:
    extend = {"log": "min", "ratio": "both"}.get(q.scale, "neither")
    cb = fig.colorbar(mappable, cax=cax, extend=extend)
    if q.scale in ("log", "ratio"):
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # no mathtext: faster, plainer
    cb.set_label(q.label, fontsize=fontsize)
    cb.ax.tick_params(labelsize=fontsize - 1)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _single(width: float = 6.0, height: float = 5.7, colorbar: bool = True, bottom: float = 1.1):
    """A figure with one square map axes (fixed layout: no layout engine, which would double the cost)."""
    fig = Figure(figsize=(width, height))
    side = 3.9  # inches
    left = 0.75
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.3) / width, (bottom + 0.2) / height, 0.18 / width, (side - 0.4) / height))
    cax.set_visible(colorbar)
    return fig, ax, cax


class _Heatmaps:
    """One figure per quantity, reused for every combination: only the data and the title change.

    Axes, ticks, colour bar and legend are built once, which roughly halves the time per file.
    """

    def __init__(self, q: Quantity, norm_cmap, cuts, v_all: np.ndarray) -> None:
        self.q, (self.cmap, self.norm) = q, norm_cmap
        self.fig, self.ax, cax = _single(colorbar=q.scale != "status")
        _decorate(self.ax, *cuts)
        _labels(self.ax)
        if q.scale != "status":
            _colorbar(self.fig, ScalarMappable(norm=self.norm, cmap=self.cmap), cax, q)
        _legend_extras(self.ax, q, v_all)
        self.title = self.ax.set_title("", fontsize=11)
        self.data = None

    def save(self, sub: pd.DataFrame, v: np.ndarray, title: str, path: Path) -> Path:
        if self.data is not None:
            self.data.remove()
        p0 = sub[["p1_0", "p2_0"]].to_numpy(float)
        self.data = _draw(self.ax, p0, _prepare(self.q, v, self.norm), self.cmap, self.norm, width_pt=280)
        self.title.set_text(f"{self.q.title}\n{title}")
        return _save(self.fig, path)


def _facet(q: Quantity, groups: list[tuple[str, pd.DataFrame, np.ndarray]], norm_cmap, cuts, path: Path) -> Path:
    cmap, norm = norm_cmap
    n = len(groups)
    ncols = n if n <= 5 else min(5, math.ceil(math.sqrt(1.5 * n)))
    nrows = math.ceil(n / ncols)
    side, gap_x, gap_y, left, right, top, bottom = 2.8, 0.45, 0.75, 0.75, 1.5, 0.85, 0.6
    extras = [] if q.scale == "status" else _extra_handles(q, np.concatenate([v for _, _, v in groups]))
    bottom += 0.35 if extras else 0.0  # a row of legend entries under the panels
    if q.scale == "status":  # a legend of named categories needs room for its longest name
        right = max(right, 0.6 + 0.075 * max(len(name) for name in [*dict(q.colours), "p1 + p2 > 1 (infeasible)"]))
    width = left + ncols * side + (ncols - 1) * gap_x + right
    height = bottom + nrows * side + (nrows - 1) * gap_y + top
    fig = Figure(figsize=(width, height))
    m = None
    for k, (title, sub, v) in enumerate(groups):
        r, c = divmod(k, ncols)
        x0, y0 = left + c * (side + gap_x), height - top - side - r * (side + gap_y)
        ax = fig.add_axes((x0 / width, y0 / height, side / width, side / height))
        m = _draw(ax, sub[["p1_0", "p2_0"]].to_numpy(float), _prepare(q, v, norm), cmap, norm, width_pt=200)
        _decorate(ax, *cuts, fontsize=5.5)
        ax.set_title(title, fontsize=8.5)
        ax.tick_params(labelsize=7.5)
        if c == 0:
            ax.set_ylabel("p2_0 = π(y_l|x)", fontsize=8.5)
        if r == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("p1_0 = π(y_w|x)", fontsize=8.5)
    fig.suptitle(f"{q.title}: across the parameter combinations (shared scale)", fontsize=12, y=1 - 0.2 / height)
    x_bar = (width - right + 0.35) / width
    if q.scale == "status":
        allv = np.concatenate([v for _, _, v in groups])
        present = [Patch(fc=c, label=s) for i, (s, c) in enumerate(q.colours) if np.any(allv == i)]
        present.append(Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label="p1 + p2 > 1 (infeasible)"))
        fig.legend(handles=present, loc="center left",
                   bbox_to_anchor=(x_bar - 0.1 / width, 0.5), fontsize=8.5, frameon=False)  # fmt: skip
    else:
        h = min(side * 0.9, height - top - bottom)
        cax = fig.add_axes((x_bar, (bottom + (height - top - bottom - h) / 2) / height, 0.15 / width, h / height))
        _colorbar(fig, m, cax, q, fontsize=8.5)
        fig.legend(handles=extras, loc="lower center", bbox_to_anchor=(0.5, 0.08 / height), ncol=len(extras),
                   fontsize=8.5, frameon=False, handlelength=1.4, columnspacing=1.2)  # fmt: skip
    return _save(fig, path)


def _basin(sub: pd.DataFrame, title: str, cuts, path: Path) -> Path:
    """Final p1 as colour, log10 t_stop as labelled contour lines."""
    fig, ax, cax = _single()
    p0 = sub[["p1_0", "p2_0"]].to_numpy(float)
    cmap = colormaps["cividis"].with_extremes(bad=NEVER)
    m = _draw(ax, p0, sub["p1_final"].to_numpy(float), cmap, mcolors.Normalize(0, 1), width_pt=280)
    t = sub["t_stop"].to_numpy(float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() >= 4 and np.ptp(np.log10(t[ok])) > 0:
        lt = np.log10(t[ok])
        levels = np.arange(np.floor(lt.min() * 2) / 2, np.ceil(lt.max() * 2) / 2 + 0.01, 0.5)
        line = {"colors": "k", "linewidths": 0.8, "negative_linestyles": "solid"}
        mesh = mesh_of(p0[:, 0], p0[:, 1])
        if mesh is not None:
            e1, e2, i1, i2 = mesh
            grid = np.full((len(e2) - 1, len(e1) - 1), np.nan)
            grid[i2, i1] = np.log10(np.where(ok, t, np.nan))
            cs = ax.contour((e1[:-1] + e1[1:]) / 2, (e2[:-1] + e2[1:]) / 2, np.ma.masked_invalid(grid), levels=levels,
                            **line)  # fmt: skip
        else:
            cs = ax.tricontour(p0[ok, 0], p0[ok, 1], lt, levels=levels, **line)
        ax.clabel(cs, fmt=lambda lv: f"t={10**lv:.3g}", fontsize=7, inline=True)
    _decorate(ax, *cuts)
    _labels(ax)
    ax.set_title(f"Basins: final p1 (colour), time to stop (contours)\n{title}", fontsize=11)
    cb = fig.colorbar(m, cax=cax)
    cb.set_label("p1 at the stop = π(y_w|x)", fontsize=9)
    ax.legend(handles=[Line2D([], [], color="k", lw=0.8, label=f"t_stop contours {TIME_UNITS}"),
                       Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label="p1 + p2 > 1 (infeasible)")],
              loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)  # fmt: skip
    return _save(fig, path)


def start_points(p1_cuts=DEFAULT_CUTS, p2_cuts=DEFAULT_CUTS) -> np.ndarray:
    """The centres of the nine regions, (9, 2) in REGIONS order: where the drawn paths start."""
    xs = np.diff([0, *p1_cuts, 1]) / 2 + np.array([0, *p1_cuts])
    ys = (np.diff([0, *p2_cuts, 1]) / 2 + np.array([0, *p2_cuts]))[::-1]
    return np.array([(xs[k % 3], ys[k // 3]) for k in range(9)])


@dataclass(frozen=True)
class PathData:
    """One drawn flow, in probabilities: start, path (n, 2) of (p_w, p_l), stop, time, status."""

    start: np.ndarray
    path: np.ndarray | None
    final: np.ndarray
    t_stop: float
    status: str
    region: str = ""


def dpo_ratio_objective(beta: float, ref_w: float, ref_l: float) -> Objective:
    """DPO on the ratio plane with references (ref_w, ref_l): theta = x."""
    ref = np.array([ref_w, ref_l])
    return Objective(DPO(beta), RatioPolicy(ref, ref))


def _streamlines(fig, ax, cax, beta: float, ref_w: float, ref_l: float) -> None:
    """The DPO field of the ratio plane, in probabilities, as streamlines."""
    obj = dpo_ratio_objective(beta, ref_w, ref_l)
    refs = np.array([ref_w, ref_l])
    g = np.linspace(0.005, 1.0, 80)
    P1, P2 = np.meshgrid(g, g)
    v = -obj.grad(np.stack([P1, P2], -1) / refs) * refs
    speed = np.log10(np.hypot(v[..., 0], v[..., 1]))
    sp = ax.streamplot(P1, P2, v[..., 0], v[..., 1], color=speed, cmap="Greys", density=1.0, linewidth=0.7,
                       arrowsize=0.8, norm=mcolors.Normalize(speed.min() - 1.0, speed.max()))  # fmt: skip
    cb = fig.colorbar(sp.lines, cax=cax)
    cb.set_label("log10 |dp/dt| of the field (streamlines)", fontsize=9)


def _paths(kw: dict, rows: pd.DataFrame, title: str, paths: list[PathData], cuts, path: Path) -> Path:
    """Flows from the region centres, in probabilities (over DPO's streamlines on the ratio plane)."""
    first = rows.iloc[0]
    field = (str(first["reference"]) in ("fixed", "none") and first.get("model", "ratio") == "ratio"
             and first.get("loss", "dpo") == "dpo" and "beta" in kw)  # fmt: skip
    kw = {"ref_w": float(first["ref_w"]), "ref_l": float(first["ref_l"]), **kw}
    fig, ax, cax = _single(width=6.2, height=6.25, colorbar=field, bottom=1.6)
    if field:
        _streamlines(fig, ax, cax, float(kw["beta"]), float(kw["ref_w"]), float(kw["ref_l"]))
    handles = []
    for r in paths:
        k = REGIONS.index(r.region) if r.region in REGIONS else 0
        name = r.region or "start"
        colour = PATH_COLOURS[k % len(PATH_COLOURS)]
        if r.path is not None:
            ax.plot(r.path[:, 0], r.path[:, 1], color=colour, lw=2.0,
                    path_effects=[pe.withStroke(linewidth=3.4, foreground="w")])  # fmt: skip
        ax.plot(*r.start, "o", color=colour, ms=6, mec="k", mew=0.6)
        ax.plot(*r.final, "X", color=colour, ms=8, mec="k", mew=0.6)
        label = f"{name}: p1 {r.start[0]:.2f}→{r.final[0]:.2f}, t={r.t_stop:.3g}" + (
            "" if r.status == "converged" else f" ({r.status})"
        )
        handles.append(Line2D([], [], color=colour, lw=2, marker="o", mec="k", label=label))
    handles.append(Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label="p1 + p2 > 1: outside the simplex"))
    _decorate(ax, *cuts, names=False)
    ax.set_xlabel("p1 = π(y_w|x)", fontsize=9.5)
    ax.set_ylabel("p2 = π(y_l|x)", fontsize=9.5)
    ax.set_title(f"Flows from the region centres (o start, X stop; converged unless noted)\n{title}", fontsize=10.5)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7, frameon=False,
              handlelength=1.8, columnspacing=0.8)  # fmt: skip
    return _save(fig, path)


def group_key(key: object) -> tuple:
    """A groupby key as a tuple whose missing values are None (NaN != NaN would defeat dict look-ups)."""
    key = key if isinstance(key, tuple) else (key,)
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key)


#: Line styles of the settings in an overlay, with the Okabe-Ito colours.
OVERLAY_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))


def _setting_label(kw: dict) -> str:
    """'flow', or an optimiser with its learning rate (the one hyperparameter every optimiser has)."""
    dyn = str(kw.get("dynamics", "flow"))
    return dyn if dyn == "flow" else f"{dyn}, lr = {_v(kw.get('lr'))}"


def _overlay(title: str, settings: list[tuple[str, list[PathData]]], cuts, path: Path) -> Path:
    """The paths of several dynamics from the same starts, in the (p1, p2) plane."""
    fig, ax, _ = _single(width=6.2, height=6.25, colorbar=False, bottom=1.4)
    handles = []
    for k, (label, paths) in enumerate(settings):
        colour, style = PATH_COLOURS[k % len(PATH_COLOURS)], OVERLAY_STYLES[k % len(OVERLAY_STYLES)]
        for r in paths:
            if r.path is not None:
                ax.plot(r.path[:, 0], r.path[:, 1], color=colour, ls=style, lw=1.6, alpha=0.9)
            ax.plot(*r.final, "X", color=colour, ms=6, mec="k", mew=0.5)
        handles.append(Line2D([], [], color=colour, ls=style, lw=1.8, label=label))
    for r in settings[0][1]:
        ax.plot(*r.start, "o", color="white", ms=6, mec="k", mew=0.8)
    handles += [
        Line2D([], [], ls="", marker="o", color="white", mec="k", label="start (region centre)"),
        Patch(fc="white", ec="0.5", hatch="///", lw=0.5, label="p1 + p2 > 1: outside the simplex"),
    ]
    _decorate(ax, *cuts, names=False)
    ax.set_xlabel("p1 = π(y_w|x)", fontsize=9.5)
    ax.set_ylabel("p2 = π(y_l|x)", fontsize=9.5)
    ax.set_title(f"Flow and optimisers from the same starts (X: stop)\n{title}", fontsize=11)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7.5, frameon=False)
    return _save(fig, path)


def _overlays(flows, params, groups, paths, cuts, outdir: Path, fmt: str) -> list[Path]:
    """One overlay per combination of everything but the dynamics: paths_overlay_{TAG}."""
    from flowsim.dynamics.optimisers import OPTIMISERS

    dyn = {"dynamics", *(f for cls in OPTIMISERS.values() for f in cls.__dataclass_fields__)}
    rest = [p for p in params if p not in dyn]
    bundles: dict[tuple, list] = {}
    for key, _, g, _, _ in groups:
        kw = dict(zip(params, key, strict=True))
        if key in paths:
            bundles.setdefault(tuple(kw[p] for p in rest), []).append((_setting_label(kw), paths[key], g))
    written = []
    for other, settings in bundles.items():
        g = settings[0][2]
        reference = str(g["reference"].iloc[0])
        shown = _shown(flows, rest)
        title, tag = _param_text(rest, other, reference, shown), _tag(rest, other, reference, shown)
        written.append(_overlay(title, [(lab, ps) for lab, ps, _ in settings], cuts,
                                outdir / f"paths_overlay_{tag or 'all'}.{fmt}"))  # fmt: skip
    return written


def plot_results(
    flows: pd.DataFrame,
    outdir: Path,
    fmt: str = "png",
    p1_cuts=DEFAULT_CUTS,
    p2_cuts=DEFAULT_CUTS,
    stop: StopRule | None = None,
    kinds: Iterable[str] | None = None,
    paths: dict[tuple, list[PathData]] | None = None,
    progress: Callable[[Path], object] | None = None,
) -> list[Path]:
    """Write the figures of a flows table into ``outdir`` (created); return the paths written.

    Per parameter combination (``TAG`` like ``beta0.1_refw1_refl1``, or ``beta0.1_refSFT``
    for ``reference = "initial"``): ``{q}_{TAG}.{fmt}`` for q in t_stop, p1_final, p2_final,
    t_w, t_l, t_l_over_t_w, status, and ``basin_{TAG}``, ``paths_{TAG}``.  Per quantity:
    ``facet_{q}.{fmt}``, one panel per combination on a shared colour scale.

    Parameters
    ----------
    flows : DataFrame
        Rows of flows.csv.
    outdir : Path
        Output folder.
    fmt : {"png", "svg", "pdf"}
        File format.
    p1_cuts, p2_cuts : (float, float)
        The region cuts the table was labelled with (to draw the region lines).
    stop : StopRule, optional
        The stop rule of the flows (for the target values in labels and for the paths).
    kinds : iterable of str, optional
        Only these figures (default: all of :data:`KINDS`): quantity names (each with
        its facet), "basin", "paths".
    paths : dict, optional
        Per parameter combination (the key of ``flows.groupby(parameter columns)``), the
        flows to draw in ``paths_*`` (:class:`PathData`, region centres in REGIONS order);
        combinations without paths get no ``paths_*`` figure.
    progress : callable, optional
        Called with each file's path as it is written.
    """
    params = check_flows(flows)
    kinds = set(KINDS if kinds is None else kinds)
    if not kinds or kinds - set(KINDS):
        raise ValueError(f"kinds must be a non-empty subset of {list(KINDS)}; got {sorted(kinds)}")
    fmt = check_choice("fmt", fmt, FORMATS)
    cuts = (check_cuts("p1_cuts", p1_cuts), check_cuts("p2_cuts", p2_cuts))
    stop = StopRule() if stop is None else stop
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    groups = []  # (key, positions, rows, title, tag)
    for key, pos in flows.groupby(params, sort=True, dropna=False).indices.items():
        key = group_key(key)
        reference = str(flows["reference"].iloc[pos[0]])
        shown = _shown(flows, params)
        groups.append((key, pos, flows.iloc[pos], _param_text(params, key, reference, shown),
                       _tag(params, key, reference, shown)))  # fmt: skip
    written: list[Path] = []

    def add(*files: Path) -> None:
        for f in files:
            written.append(f)
            if progress is not None:
                progress(f)

    for q in (q for q in quantities(stop) if q.name in kinds and NEEDS.get(q.name, "p1_0") in flows):
        v_all = values(flows, q.name)
        norm_cmap = _norm(q, v_all)
        maps = _Heatmaps(q, norm_cmap, cuts, v_all)
        for _, pos, g, title, tag in groups:
            add(maps.save(g, v_all[pos], title, outdir / f"{q.name}_{tag}.{fmt}"))
        panels = [(_panel_title(flows, params, key, g), g, v_all[pos]) for key, pos, g, _, _ in groups]
        add(_facet(q, panels, norm_cmap, cuts, outdir / f"facet_{q.name}.{fmt}"))
    if "paths" in kinds and paths and "dynamics" in params:
        add(*_overlays(flows, params, groups, paths, cuts, outdir, fmt))
    for key, _, g, title, tag in groups:
        if "basin" in kinds:
            add(_basin(g, title, cuts, outdir / f"basin_{tag}.{fmt}"))
        if "paths" in kinds and paths and key in paths:
            kw = dict(zip(params, key, strict=True))
            add(_paths(kw, g, title, paths[key], cuts, outdir / f"paths_{tag}.{fmt}"))
    return written


def plot_field(
    beta: float = 0.1,
    ref_w: float = 1.0,
    ref_l: float = 1.0,
    out: Path | str = Path("figure1.png"),
    fmt: str = "png",
    *,
    log_scale: bool = True,
    arrows: int = 14,
) -> Path:
    """The paper's Figure 1 redrawn for DPO(beta, ref_w, ref_l); returns the file written.

    (a) the loss surface L(x1, x2) in 3-D; (b) its top view (filled contours) with
    -grad L as arrows on an ``arrows`` x ``arrows`` grid, and streamlines.  With
    ``log_scale`` (default) arrow length grows with log10 |grad L| and the arrows are
    coloured by it (colour bar), so that the weak field of the upper right stays
    visible next to the strong one near the axes; without it, length is proportional to
    |grad L| as in the paper's red arrows.

    ``out`` is a file; its suffix gives the format, else ``fmt`` is appended.
    """
    loss = dpo_ratio_objective(beta, ref_w, ref_l)
    out = Path(out)
    if out.suffix:
        check_choice("out suffix", out.suffix[1:], FORMATS)
    else:
        out = out.with_suffix(f".{check_choice('fmt', fmt, FORMATS)}")
    arrows = int(check_positive("arrows", arrows))
    hi1, hi2 = 1.0 / ref_w, 1.0 / ref_l
    g1, g2 = np.linspace(hi1 / 100, hi1, 120), np.linspace(hi2 / 100, hi2, 120)
    X1, X2 = np.meshgrid(g1, g2)
    L = loss.value(np.stack([X1, X2], -1))
    # at small beta L barely moves off log 2: draw L - min L, so the axes need no offset text
    shift = float(L.min()) if np.ptp(L) < 1e-3 * abs(float(L.min())) else 0.0
    L, zlab = L - shift, "DPO loss L" if shift == 0 else f"L − {shift:.7g} (DPO loss)"
    lab1 = r"$x_1 = \pi(y_w|x)\,/\,\pi_{\mathrm{ref}}(y_w|x)$"
    lab2 = r"$x_2 = \pi(y_l|x)\,/\,\pi_{\mathrm{ref}}(y_l|x)$"
    refs = f"ref_w = {ref_w:g}, ref_l = {ref_l:g}"

    width, height = 13.9, 6.0
    fig = Figure(figsize=(width, height))
    ax3 = fig.add_axes((0.0, 0.02, 0.48, 0.9), projection="3d")
    ax3.plot_surface(X1, X2, L, cmap="cividis", rcount=60, ccount=60, linewidth=0, antialiased=False)
    ax3.set_xlabel(lab1, fontsize=9, labelpad=6)
    ax3.set_ylabel(lab2, fontsize=9, labelpad=6)
    ax3.set_zlabel(zlab, fontsize=9, labelpad=8)
    ax3.zaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax3.view_init(elev=28, azim=-125)
    ax3.tick_params(labelsize=7.5)
    ax3.set_title(f"(a) Loss landscape, β = {beta:g}, {refs}", fontsize=11)

    ax = fig.add_axes((6.9 / width, 0.75 / height, 4.6 / width, 4.6 / height))
    cf = ax.contourf(X1, X2, L, levels=20, cmap="cividis", alpha=0.7)
    cb = fig.colorbar(cf, cax=fig.add_axes((11.7 / width, 0.95 / height, 0.17 / width, 4.2 / height)))
    cb.set_label(zlab, fontsize=9)
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    field = -loss.grad(np.stack([X1, X2], -1))
    ax.streamplot(g1, g2, field[..., 0], field[..., 1], color="0.85", density=1.1, linewidth=0.6, arrowsize=0.6)
    c1 = (np.arange(arrows) + 0.5) / arrows * hi1
    c2 = (np.arange(arrows) + 0.5) / arrows * hi2
    A1, A2 = np.meshgrid(c1, c2)
    v = -loss.grad(np.stack([A1, A2], -1))
    mag = np.hypot(v[..., 0], v[..., 1])
    flat = ~(mag > 0)  # at large beta the sigmoid underflows: |grad L| is 0 in double precision
    _arrows(fig, ax, A1, A2, v, mag, flat, (hi1, hi2, arrows, width, height), log_scale)
    ax.set_xlim(0, hi1)
    ax.set_ylim(0, hi2)
    ax.set_box_aspect(1)
    ax.set_xlabel(lab1, fontsize=10)
    ax.set_ylabel(lab2, fontsize=10)
    scale = "colour: log10 |∇L|" if log_scale else f"length ∝ |∇L|, longest {mag.max():.3g}"
    if flat.any():
        ax.plot(A1[flat], A2[flat], ls="none", marker="o", ms=2.2, color="k", label="|∇L| = 0 in double precision")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    ax.set_title(f"(b) Gradient field −∇L: arrows ({scale}), streamlines", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, out)


def _arrows(fig, ax, A1, A2, v, mag, flat, geometry, log_scale: bool) -> None:
    """The field's arrows where |grad L| > 0: log-scaled length and colour, or length proportional to it."""
    hi1, hi2, arrows, width, height = geometry
    if flat.all():
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        vn1, vn2 = v[..., 0] / hi1, v[..., 1] / hi2  # direction in data units; length in cells of the arrow grid
        unit = np.hypot(vn1, vn2)
        if log_scale:
            lm = np.log10(np.where(flat, np.nan, mag))
            lo, hi = np.nanmin(lm), np.nanmax(lm)
            frac = 0.25 + 0.75 * (lm - lo) / max(hi - lo, 1e-12)
        else:
            frac = mag / mag.max()
        length = 0.95 * frac / arrows  # in axes fractions: the longest arrow spans 0.95 of a cell
        U, V = vn1 / unit * length * hi1, vn2 / unit * length * hi2
    keep = ~flat
    kw = {"angles": "xy", "scale_units": "xy", "scale": 1.0, "width": 0.0045, "pivot": "tail", "edgecolor": "k",
          "linewidth": 0.35}  # fmt: skip
    if log_scale:
        q = ax.quiver(A1[keep], A2[keep], U[keep], V[keep], lm[keep], cmap="magma", **kw)
        cq = fig.colorbar(q, cax=fig.add_axes((12.65 / width, 0.95 / height, 0.17 / width, 4.2 / height)))
        cq.set_label("log10 |∇L| (arrows; length grows with it)", fontsize=9)
    else:
        ax.quiver(A1[keep], A2[keep], U[keep], V[keep], color="#D55E00", **kw)
