"""The paper's Figure 1 redrawn: the DPO loss surface on the ratio plane and its field."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import mpl_toolkits.mplot3d  # noqa: F401 - registers the "3d" projection
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from flowsim._validation import check_choice, check_positive
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.ratio import RatioPolicy
from flowsim.plotting.style import FORMATS, save


def dpo_ratio_objective(beta: float, ref_w: float, ref_l: float) -> Objective:
    """DPO on the ratio plane with references (ref_w, ref_l): theta = x."""
    ref = np.array([ref_w, ref_l])
    return Objective(DPO(beta), RatioPolicy(ref, ref))


def streamlines(fig, ax, cax, beta: float, ref_w: float, ref_l: float) -> None:
    """The DPO field of the ratio plane, in probabilities, as streamlines."""
    obj = dpo_ratio_objective(beta, ref_w, ref_l)
    refs = np.array([ref_w, ref_l])
    g = np.linspace(0.005, 1.0, 80)
    P1, P2 = np.meshgrid(g, g)
    v = -obj.grad(np.stack([P1, P2], -1) / refs) * refs
    speed = np.log10(np.hypot(v[..., 0], v[..., 1]))
    sp = ax.streamplot(
        P1,
        P2,
        v[..., 0],
        v[..., 1],
        color=speed,
        cmap="Greys",
        density=1.0,
        linewidth=0.7,
        arrowsize=0.8,
        norm=mcolors.Normalize(speed.min() - 1.0, speed.max()),
    )
    cb = fig.colorbar(sp.lines, cax=cax)
    cb.set_label("log10 |dp/dt| of the field (streamlines)", fontsize=9)


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
    # plot_surface's last row and column of patches are narrower than the others, and
    # mplot3d projects the uninitialised padding of such ragged patches before it drops it
    # (matplotlib issue #32272): a nondeterministic, harmless overflow in np.dot.  Every
    # number of ours is computed above this line.
    with np.errstate(over="ignore"):
        return save(fig, out)


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
    kw = {
        "angles": "xy",
        "scale_units": "xy",
        "scale": 1.0,
        "width": 0.0045,
        "pivot": "tail",
        "edgecolor": "k",
        "linewidth": 0.35,
    }
    if log_scale:
        q = ax.quiver(A1[keep], A2[keep], U[keep], V[keep], lm[keep], cmap="magma", **kw)
        cq = fig.colorbar(q, cax=fig.add_axes((12.65 / width, 0.95 / height, 0.17 / width, 4.2 / height)))
        cq.set_label("log10 |∇L| (arrows; length grows with it)", fontsize=9)
    else:
        ax.quiver(A1[keep], A2[keep], U[keep], V[keep], color="#D55E00", **kw)
