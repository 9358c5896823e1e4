"""Load an experiment completely (every table, [claims] included) and run it into a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from flowsim._validation import ParamError
from flowsim.analysis.setup_checks import setup_warnings
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.experiment.config import FLOW, ConfigError, Experiment, load_experiment, parse_experiment
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.store import DamagedResults, read_flows


def check_claims(exp: Experiment, source: str) -> ClaimThresholds:
    """The experiment's [claims] table as thresholds, or ConfigError naming the key."""
    known = set(ClaimThresholds.__dataclass_fields__)
    unknown = sorted(set(exp.claims) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key 'claims.{unknown[0]}'; allowed here: {', '.join(sorted(known))}")
    try:
        return ClaimThresholds(**exp.claims)
    except ParamError as exc:
        raise ConfigError(f"{source}: claims.{exc.key} {exc.rule}; got {exc.value!r}") from None


def load(path: str | Path) -> Experiment:
    """An experiment file, validated in full before anything runs."""
    exp = load_experiment(path)
    check_claims(exp, str(path))
    return exp


def recorded(folder: Path) -> Experiment | None:
    """The experiment a run folder was made with (its meta.json), or None."""
    meta = folder / "meta.json"
    if not meta.exists():
        return None
    try:
        doc = json.loads(meta.read_text())["experiment"]
    except (ValueError, KeyError, TypeError):
        raise DamagedResults(
            f"{meta} holds no experiment record; regenerate it: move {folder} away and run "
            f"`flowsim run EXPERIMENT.toml --out {folder}`"
        ) from None
    return parse_experiment(doc, source=str(meta))


def run(path: str | Path, out: str | Path | None = None, **kwargs) -> tuple[Experiment, Path, dict]:
    """Run the experiment file ``path`` into ``out`` (default results/<name>); ``kwargs`` go to run_sweep.

    The file is validated in full first, then run_sweep checks the folder and the backend:
    a failure in any of these leaves nothing on disk.
    """
    exp = load(path)
    folder = Path(out) if out else Path("runs") / exp.name  # results/ is what `flowsim reproduce` publishes
    meta = run_sweep(exp, folder, **kwargs)
    warn_setup(exp, folder)
    return exp, folder, meta


def warn_setup(exp: Experiment, folder: Path) -> list[str]:
    """Print (stderr) and return a warning per setting that cannot show an effect
    (:mod:`flowsim.analysis.setup_checks`): checked for runs with an SFT stage or discrete steps."""
    if exp.model_class.policy_of_starts and all(kind == FLOW for kind, _ in exp.dynamics):
        return []  # neither an SFT stage (a network's) nor discrete steps
    lines = [f"{exp.name}, {line}" for line in setup_warnings(read_flows(folder / "flows.csv"), exp.stop.p2_floor)]
    for line in lines:
        print(f"flowsim: warning: {line}", file=sys.stderr)
    return lines


def failures(folder: str | Path, meta: dict) -> list[str]:
    """Lines that make a run's failed rows loud: their count by (loss, model), the first one's message.

    Empty when no row failed (the flows table is then not read).  The first failure is the first
    failed row of flows.csv, with its start and parameters, so that it can be run again alone.
    """
    n = int(meta.get("counts_by_status", {}).get("failed", 0))
    if not n:
        return []
    df = read_flows(folder)
    bad = df[df["status"] == "failed"]
    by = bad.groupby(["loss", "model"], sort=True).size()
    lines = [
        f"{n} of {meta['rows']} flows FAILED; by (loss, model): "
        + ", ".join(f"({loss}, {model}) {k}" for (loss, model), k in by.items())
    ]
    first = bad.iloc[0]
    params = {
        k: first[k]
        for k in ("beta", "orpo_lambda", "reference", "ref_w", "ref_l", "dynamics")
        if k in bad.columns and not pd.isna(first[k])
    }
    where = ", ".join(f"{k}={v}" for k, v in params.items())
    lines.append(
        f"first failure: {first['loss']} on {first['model']} from (p1_0, p2_0) = "
        f"({first['p1_0']:g}, {first['p2_0']:g}) [{where}]: {first['message'] or '(no message)'}"
    )
    return lines
