"""Overlays: ``paths_overlay_{TAG}``, the flow and the optimisers from the same starts, per
combination of everything but the dynamics (tables with a ``dynamics`` column)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from matplotlib.lines import Line2D

from flowsim.plotting.base import POLICY_MODELS, Family, Plot
from flowsim.plotting.paths import NO_PATH, PathData, no_path_handle
from flowsim.plotting.style import PATH_COLOURS, decorate, hatch_patch, save, single_axes
from flowsim.plotting.titles import fmt_value, param_text, shown, tag_of

#: Line styles of the settings in an overlay, with the Okabe-Ito colours.
OVERLAY_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))


def setting_label(kw: dict) -> str:
    """'flow', or an optimiser with its learning rate (the one hyperparameter every optimiser has)."""
    dyn = str(kw.get("dynamics", "flow"))
    return dyn if dyn == "flow" else f"{dyn}, lr = {fmt_value(kw.get('lr'))}"


def overlay_figure(title: str, settings: list[tuple[str, list[PathData]]], cuts, path: Path) -> Path:
    """The paths of several dynamics from the same starts, in the (p1, p2) plane."""
    fig, ax, _ = single_axes(width=6.2, height=6.25, colorbar=False, bottom=1.4)
    handles = []
    for k, (label, paths) in enumerate(settings):
        colour, style = PATH_COLOURS[k % len(PATH_COLOURS)], OVERLAY_STYLES[k % len(OVERLAY_STYLES)]
        for r in paths:
            if r.note:
                continue
            if r.path is not None:
                ax.plot(r.path[:, 0], r.path[:, 1], color=colour, ls=style, lw=1.6, alpha=0.9)
            ax.plot(*r.final, "X", color=colour, ms=6, mec="k", mew=0.5)
        handles.append(Line2D([], [], color=colour, ls=style, lw=1.8, label=label))
    for r in settings[0][1]:
        ax.plot(*r.start, **NO_PATH) if r.note else ax.plot(*r.start, "o", color="white", ms=6, mec="k", mew=0.8)
    handles += [
        Line2D([], [], ls="", marker="o", color="white", mec="k", label="start (region centre)"),
        hatch_patch("p1 + p2 > 1: outside the simplex"),
    ]
    notes = [r.note for r in settings[0][1] if r.note]
    if notes:
        handles.append(no_path_handle(notes))
    decorate(ax, *cuts, names=False)
    ax.set_xlabel("p1 = π(y_w|x)", fontsize=9.5)
    ax.set_ylabel("p2 = π(y_l|x)", fontsize=9.5)
    ax.set_title(f"Flow and optimisers from the same starts (X: stop)\n{title}", fontsize=11)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=7.5, frameon=False)
    return save(fig, path)


def draw(plot: Plot) -> Iterator[Path]:
    """One overlay per combination of everything but the dynamics, of the settings with drawn paths."""
    from flowsim.dynamics.optimisers import OPTIMISERS

    if not plot.paths or "dynamics" not in plot.params:
        return
    dyn = {"dynamics", *(f for cls in OPTIMISERS.values() for f in cls.__dataclass_fields__)}
    rest = [p for p in plot.params if p not in dyn]
    bundles: dict[tuple, list] = {}
    for p in plot.panels:
        kw = dict(zip(plot.params, p.key, strict=True))
        if p.key in plot.paths:
            bundles.setdefault(tuple(kw[k] for k in rest), []).append((setting_label(kw), plot.paths[p.key], p.rows))
    named = shown(plot.flows, rest)
    for other, settings in bundles.items():
        reference = str(settings[0][2]["reference"].iloc[0])
        title, tag = param_text(rest, other, reference, named), tag_of(rest, other, reference, named)
        yield overlay_figure(
            title, [(lab, ps) for lab, ps, _ in settings], plot.cuts, plot.file(f"paths_overlay_{tag or 'all'}")
        )


FAMILY = Family("overlays", ("paths",), draw, models=POLICY_MODELS)
