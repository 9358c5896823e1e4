"""``flowsim reproduce``: every shipped experiment run, analysed and plotted, and the
findings written to ``results/README.md``.

The new results are built in ``results/.staging`` and moved into place only when all of
them are done; the folders they replace are kept in ``results/.previous`` (one
generation, not committed), and the new claim values are compared with the replaced ones.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.app.analyze import analyze
from flowsim.app.plot import plot
from flowsim.app.report import build_report, warn_absent
from flowsim.app.run import load
from flowsim.errors import InputNotFound
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.parallel import backend, default_backend
from flowsim.experiment.store import SweepError, git_commit
from flowsim.plotting import plot_field

#: Experiments in the order the report shows them; others found in the folder follow.
ORDER = ("paper", "beta", "reference", "standard", "logits", "features", "optimisers", "losses", "network",
         "network_sft", "network_pairs")  # fmt: skip


SKIP = ("smoke",)


REPORT_FILES = ("README.md", "figure1.png", "figure1_log.png")


def reproduce(
    experiments: Path, results: Path, *, n_jobs: int = -1, progress: bool = True, allow_dirty: bool = False
) -> Path:
    """Run, analyse and plot every experiment in ``experiments``; return results/README.md.

    Published results must come from a commit: with changes to tracked files this refuses
    (a SweepError) unless ``allow_dirty``, since the results would name a commit that did
    not make them.
    """
    commit = git_commit()
    if commit and commit.endswith("-dirty") and not allow_dirty:
        raise SweepError(
            f"the working tree has uncommitted changes (commit {commit}): commit them first, so that the "
            "published results name the code that made them, or pass --allow-dirty"
        )
    files = sorted(p for p in experiments.glob("*.toml") if p.stem not in SKIP)
    if not files:
        raise InputNotFound(f"no experiment files in {experiments}")
    exps = [load(p) for p in files]  # validate them all before any work
    exps.sort(key=lambda e: (ORDER.index(e.name) if e.name in ORDER else len(ORDER), e.name))
    warn_absent([e.name for e in exps])  # before any sweep: the report's sections that will be marked missing
    staging = results / ".staging"
    if staging.exists():
        shutil.rmtree(staging)  # a reproduction interrupted earlier; nothing of it was published
    staging.mkdir(parents=True)
    t_all = time.perf_counter()
    for exp in exps:  # each sweep uses every worker itself
        meta = run_sweep(exp, staging / exp.name, n_jobs=n_jobs, progress=progress)
        print(f"{exp.name}: {meta['rows']} rows in {meta['wall_time_s']:.1f} s")
    # the analyses and figures (most of the time) are independent: one experiment per worker
    tasks = [("experiment", staging / e.name, progress) for e in exps]
    tasks += [("field", staging / f"figure1{tail}.png", log) for tail, log in (("", False), ("_log", True))]
    with backend(default_backend(), None, n_jobs) as pmap:
        for line in pmap(_report_part, tasks):
            print(line)
    (staging / "README.md").write_text(build_report(staging, [e.name for e in exps]))

    changes = compare_claims(results, staging, [e.name for e in exps])
    previous = results / ".previous"
    if previous.exists():
        shutil.rmtree(previous)
    previous.mkdir()
    for name in [e.name for e in exps] + list(REPORT_FILES):
        if (results / name).exists():
            shutil.move(results / name, previous / name)
        shutil.move(staging / name, results / name)
    shutil.rmtree(staging)
    print(f"reproduced {len(exps)} experiments in {time.perf_counter() - t_all:.0f} s -> {results / 'README.md'}")
    print(changes or "claims: no earlier results to compare with")
    return results / "README.md"


def _report_part(task: tuple[str, Path, bool]) -> str:
    """One experiment analysed and plotted, or Figure 1 drawn (on a worker); a line saying so."""
    kind, path, flag = task
    t0 = time.perf_counter()
    if kind == "field":
        plot_field(beta=0.1, out=path, log_scale=flag)
        return f"{path.name}: {time.perf_counter() - t0:.1f} s"
    analyze(path, progress=flag)
    figs = plot(path, progress=flag)
    return f"{path.name}: analysed, {len(figs)} figures, {time.perf_counter() - t0:.1f} s"


#: claims.csv columns that are a claim's outcome; the others (claim, parameters, subset, model) name its row.
_OUTCOME = frozenset({"title", "paper", "where", "metric", "value", "details", "threshold", "verdict", "robustness",
                      "n_rows", "n_failed", "failed_left_out"})  # fmt: skip


def compare_claims(old_root: Path, new_root: Path, names: list[str]) -> str:
    """A line per experiment: are the claim values and verdicts the same as before, and if not, which?

    Rows are matched on the columns that name them (claim, parameters, subset, model), so a new
    claim or setting is reported as such and the rows both tables have are still compared.
    """
    lines = []
    for name in names:
        old, new = old_root / name / "claims.csv", new_root / name / "claims.csv"
        if old.exists():
            lines.append(f"claims {name}: " + _compare(pd.read_csv(old), pd.read_csv(new)))
    return "\n".join(lines)


def _compare(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """What changed from claims table ``a`` to ``b``, in one line."""
    key = [c for c in b.columns if c in a.columns and c not in _OUTCOME]
    both = pd.merge(a[[*key, "value", "verdict"]].astype({k: str for k in key}),
                    b[[*key, "value", "verdict"]].astype({k: str for k in key}),
                    on=key, how="outer", suffixes=("_a", "_b"), indicator=True)  # fmt: skip
    added = sorted(set(both.loc[both["_merge"] == "right_only", "claim"]))
    gone = sorted(set(both.loc[both["_merge"] == "left_only", "claim"]))
    shared = both[both["_merge"] == "both"]
    flipped = sorted(set(shared.loc[shared["verdict_a"] != shared["verdict_b"], "claim"]))
    va, vb = shared["value_a"].to_numpy(float), shared["value_b"].to_numpy(float)
    same = np.isclose(va, vb, rtol=1e-9, atol=0, equal_nan=True)
    moved = sorted(set(shared.loc[~same, "claim"]))
    parts = [
        f"{len(shared)} rows in both: "
        + ("same verdicts" if not flipped else f"verdicts changed for {', '.join(flipped)}")
    ]
    if moved:
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = np.nanmax(np.abs(vb - va)[~same] / np.abs(va[~same]))
        parts.append(f"values changed for {', '.join(moved)} (largest relative change {worst:.2e})")
    else:
        parts.append("values identical")
    if added:
        parts.append(f"{int((both['_merge'] == 'right_only').sum())} new rows ({', '.join(added)})")
    if gone:
        parts.append(f"{int((both['_merge'] == 'left_only').sum())} rows gone ({', '.join(gone)})")
    return "; ".join(parts)
