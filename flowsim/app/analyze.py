"""``flowsim analyze``: region tables and the study's verdicts beside flows.csv."""

from __future__ import annotations

from pathlib import Path

from flowsim.analysis.studies.dpo_field import ClaimThresholds, evaluate_claims
from flowsim.analysis.tables import region_table
from flowsim.analysis.verdicts import claims_markdown
from flowsim.app.run import check_claims, recorded
from flowsim.dynamics.record import StopRule
from flowsim.experiment.store import read_flows


def results_folder(path: str | Path) -> Path:
    """A results folder, given as the folder or as its flows.csv."""
    path = Path(path)
    folder = path.parent if path.name == "flows.csv" and path.is_file() else path
    if not (folder / "flows.csv").exists():
        raise FileNotFoundError(f"{folder} holds no flows.csv: run `flowsim run EXPERIMENT --out {folder}` first")
    return folder


def analyze(path: str | Path) -> list[Path]:
    """Write regions.csv, claims.csv and claims.md beside flows.csv; return the paths."""
    folder = results_folder(path)
    exp = recorded(folder)
    flows = read_flows(folder / "flows.csv")
    stop = exp.stop if exp else StopRule()
    thresholds = check_claims(exp, str(folder / "meta.json")) if exp else ClaimThresholds()
    regions = region_table(flows)
    claims = evaluate_claims(flows, stop, thresholds)
    written = [folder / "regions.csv", folder / "claims.csv", folder / "claims.md"]
    regions.to_csv(written[0], index=False)
    claims.to_csv(written[1], index=False)
    written[2].write_text(claims_markdown(claims, title=f"Claims of the paper, measured on `{folder.name}`"))
    return written
