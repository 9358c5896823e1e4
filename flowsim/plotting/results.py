"""``plot_results``: every registered figure family (:mod:`.registry`) for a flows table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from flowsim._validation import ParamError, check_choice
from flowsim.analysis.intervals import SEED_COLUMNS
from flowsim.analysis.tables import check_flows
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import DEFAULT_CUTS, check_cuts
from flowsim.plotting.base import Family, Plot, panels_of
from flowsim.plotting.paths import PathData
from flowsim.plotting.registry import families_for, kinds_of
from flowsim.plotting.style import FORMATS


def models_of(flows: pd.DataFrame) -> list[str]:
    """The models of a flows table's rows (the ratio plane for a table without a model column)."""
    return sorted(map(str, pd.unique(flows["model"]))) if "model" in flows.columns else ["ratio"]


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
    families: tuple[Family, ...] | None = None,
    every: bool = False,
    experiment: object = None,
) -> list[Path]:
    """Write the figures of a flows table into ``outdir`` (created); return the paths written.

    With ``every`` (or a single combination), per parameter combination (``TAG`` like
    ``beta0.1_refw1_refl1``, or ``beta0.1_refSFT`` for ``reference = "initial"``):
    ``{q}_{TAG}.{fmt}`` for q in t_stop, p1_final, p2_final, t_w, t_l, t_l_over_t_w, status, and
    ``basin_{TAG}``, ``paths_{TAG}``.  Always, per quantity: ``facet_{q}.{fmt}``, one panel per
    combination on a shared colour scale; ``paths_all`` (the paths of every combination, a panel
    each) and, with several losses, ``loss_comparison`` (:mod:`.losses`).

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
    families : tuple of Family, optional
        The figure families to draw, of those that apply to the table's model(s)
        (:func:`~flowsim.plotting.registry.families_for`; default: every registered one that applies).
    every : bool, default False
        Also the files per combination (heatmaps, basins, paths, overlays) when there are several
        combinations.  By default a table of several combinations gets the set a person reads in
        one sitting: a facet per quantity, the paths of every combination in one figure, and the
        loss comparison where several losses were run.
    experiment : Experiment, optional
        The experiment of the rows: the loss comparison then marks what is impossible by construction.
    """
    # replicate seeds are pooled in every panel, as the analysis pools them (a panel per seed reads as noise)
    params = [p for p in check_flows(flows) if p not in SEED_COLUMNS]
    families = families_for(models_of(flows), families)
    known = kinds_of(families)
    kinds = set(known if kinds is None else kinds)
    if not kinds or kinds - set(known):
        raise ParamError("kinds", f"must be a non-empty subset of {list(known)}", sorted(kinds))
    fmt = check_choice("fmt", fmt, FORMATS)
    cuts = (check_cuts("p1_cuts", p1_cuts), check_cuts("p2_cuts", p2_cuts))
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    plot = Plot(
        flows,
        params,
        panels_of(flows, params),
        frozenset(kinds),
        cuts,
        StopRule() if stop is None else stop,
        fmt,
        outdir,
        paths,
        every,
        experiment,
    )
    one = len(plot.panels) == 1
    written: list[Path] = []
    for family in families:
        if kinds & set(family.kinds) and (one or every or not family.per_combination):
            for f in family.draw(plot):
                written.append(f)
                if progress is not None:
                    progress(f)
    return written
