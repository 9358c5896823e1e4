"""``flowsim.load``: a run folder as Python objects, for notebooks and scripts.

>>> import flowsim
>>> run = flowsim.load("results/paper")          # doctest: +SKIP
>>> run.flows.groupby("region")["t_stop"].median()  # doctest: +SKIP
>>> run.claims[["claim", "subset", "verdict"]]   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flowsim.app.analyze import results_folder
from flowsim.app.run import recorded
from flowsim.experiment.config import Experiment
from flowsim.experiment.store import DamagedResults, read_flows, read_meta


@dataclass(frozen=True)
class RunResults:
    """One run folder, read and checked.

    Attributes
    ----------
    folder : pathlib.Path
        The run folder.
    flows : pandas.DataFrame
        ``flows.csv``, one row per flow (the docs' reference, "Results files").
    meta : dict
        ``meta.json`` as written by ``flowsim run`` (the experiment after defaults, versions,
        commit, counts by status) with ``run.json``'s times, workers, host and load where the
        folder has it; empty for a hand-made flows.csv without one.
    experiment : Experiment or None
        The validated experiment the folder was made with (None without meta.json).
    claims : pandas.DataFrame or None
        ``claims.csv`` (one row per claim, parameter combination and subset, with its value
        and verdict), or None when ``flowsim analyze`` has not been run on the folder.
    regions : pandas.DataFrame or None
        ``regions.csv`` (the region tables), or None likewise.
    """

    folder: Path
    flows: pd.DataFrame = field(repr=False)
    meta: dict[str, Any] = field(repr=False)
    experiment: Experiment | None = field(repr=False)
    claims: pd.DataFrame | None = field(repr=False)
    regions: pd.DataFrame | None = field(repr=False)

    def __repr__(self) -> str:
        name = self.meta.get("experiment", {}).get("name", self.folder.name)
        analysed = "analysed" if self.claims is not None else "not analysed (run `flowsim analyze` for claims)"
        return f"RunResults({name!r}: {len(self.flows):,} flows in {self.folder}, {analysed})"


def _table(path: Path) -> pd.DataFrame | None:
    """An analysis table (claims.csv, regions.csv), None if absent; DamagedResults if it is not a CSV table."""
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DamagedResults(
            f"{path} cannot be read as a table ({type(exc).__name__}); run `flowsim analyze "
            f"{path.parent}` again to rewrite it"
        ) from None


def load(run_dir: str | Path) -> RunResults:
    """Read a run folder (or its flows.csv): the rows, meta.json and, where analysed, claims and regions.

    flows.csv is checked against the rows and sha256 that meta.json records, as ``flowsim
    analyze`` and ``flowsim plot`` check it.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        A folder written by ``flowsim run`` (e.g. ``results/paper``), or its ``flows.csv``.

    Returns
    -------
    RunResults
        ``.flows`` (a DataFrame), ``.meta``, ``.experiment``, ``.claims`` and ``.regions``.

    Raises
    ------
    FileNotFoundError
        Without flows.csv.
    flowsim.experiment.store.DamagedResults
        When flows.csv does not match its meta.json, or meta.json is not a run record.
    """
    folder = results_folder(run_dir)
    exp = recorded(folder)
    meta = read_meta(folder) if exp is not None else {}  # meta.json with run.json's times, host and load
    return RunResults(
        folder=folder,
        flows=read_flows(folder / "flows.csv"),
        meta=meta,
        experiment=exp,
        claims=_table(folder / "claims.csv"),
        regions=_table(folder / "regions.csv"),
    )
