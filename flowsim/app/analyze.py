"""``flowsim analyze``: region tables and the study's verdicts beside flows.csv."""

from __future__ import annotations

import sys
from pathlib import Path

from flowsim.analysis.studies import PRIMARY, evaluate_studies, studies_markdown
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import loss_comparison, region_table
from flowsim.analysis.verdicts import FAILED_MARK, failed_rows
from flowsim.app.progress import Steps
from flowsim.app.run import check_claims, recorded
from flowsim.dynamics.record import StopRule
from flowsim.errors import InputNotFound
from flowsim.experiment.store import read_flows, verify_run_folder


def results_folder(path: str | Path) -> Path:
    """A results folder, given as the folder or as its flows.csv, checked against its meta.json.

    Raises :class:`~flowsim.errors.InputNotFound` (a FileNotFoundError) without flows.csv, and
    :class:`DamagedResults` when flows.csv does not match the rows and sha256 that meta.json records
    (see :func:`verify_run_folder`).
    """
    path = Path(path)
    folder = path.parent if path.name == "flows.csv" and path.is_file() else path
    if folder.is_file():
        raise InputNotFound(f"{folder} is a file: give the results folder that holds flows.csv, or its flows.csv")
    if not (folder / "flows.csv").is_file():
        raise InputNotFound(f"{folder} holds no flows.csv: run `flowsim run EXPERIMENT --out {folder}` first")
    verify_run_folder(folder)
    return folder


def analyze(path: str | Path, progress: bool = False) -> list[Path]:
    """Write regions.csv, claims.csv and claims.md (and loss_comparison.csv for several losses)
    beside flows.csv; return the paths.  claims.csv holds every registered study that applies
    (:func:`~flowsim.analysis.studies.evaluate_studies`; its column ``study`` names each row's).

    With ``progress``, each step prints its name and time on stderr.
    """
    folder = results_folder(path)
    steps = Steps(f"analyze {folder.name}", progress)
    exp = recorded(folder)
    with steps("reading flows.csv"):
        flows = read_flows(folder / "flows.csv")
    stop = exp.stop if exp else StopRule()
    thresholds = check_claims(exp, str(folder / "meta.json")) if exp else ClaimThresholds()
    with steps(f"region tables of {len(flows):,} flows"):
        regions = region_table(flows)
    with steps("claims of every study that applies, and their sensitivity"):
        claims = evaluate_studies(flows, stop, thresholds, experiment=exp)
    n_failed, n_rows = failed_rows(claims[claims["study"] == PRIMARY])
    if n_failed:  # said on the console as well as in claims.md
        marked = int((claims["failed_left_out"] > 0).sum())
        marks = f"; {marked} verdicts computed with failed rows left out are marked {FAILED_MARK}" if marked else ""
        print(
            f"flowsim: {folder.name}: {n_failed} of {n_rows} flows failed; claims in groups with more than 1% "
            f"failed rows are not applicable{marks} (see claims.md)",
            file=sys.stderr,
        )
    written = [folder / "regions.csv", folder / "claims.csv", folder / "claims.md"]
    regions.to_csv(written[0], index=False)
    claims.to_csv(written[1], index=False)
    written[2].write_text(_markdown(claims, folder.name))
    losses = loss_comparison(flows, exp)
    if losses is not None:  # several losses: one table that compares them
        written.append(folder / "loss_comparison.csv")
        losses.to_csv(written[-1], index=False)
    return written


def _markdown(claims, name: str) -> str:
    """claims.md: the seed paper's claims, then each other study that applied, under its own title."""
    return studies_markdown(
        claims, lambda s: f"Claims of {'the paper' if s == PRIMARY else f'the study `{s}`'}, measured on `{name}`"
    )
