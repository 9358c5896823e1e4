"""``flowsim reproduce``: every shipped experiment run, analysed and plotted, the findings
written to a README, and the whole compared with the committed ``results/``.

By default everything goes to a scratch folder (``runs/reproduce``, not committed) and is
compared with ``results/``: the command says "same" or what differs, and leaves the working
tree as it was, so it can be run any number of times.  ``--update`` (``out = results``)
replaces the committed results, and only from a clean tree.

In either case the new results are built in ``OUT/.staging`` and moved into place only when
all of them are done; the folders they replace are kept in ``OUT/.previous`` (one
generation, not committed).
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from flowsim.app.analyze import analyze
from flowsim.app.plot import plot
from flowsim.app.report import build_report, warn_absent
from flowsim.app.run import load, warn_setup
from flowsim.errors import InputNotFound
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.parallel import backend, default_backend
from flowsim.experiment.store import RUN_FILE, SweepError, git_commit
from flowsim.plotting import plot_field

#: Experiments in the order the report shows them; others found in the folder follow.
ORDER = (
    "paper",
    "beta",
    "reference",
    "standard",
    "logits",
    "features",
    "optimisers",
    "losses",
    "network",
    "network_sft",
    "network_pairs",
    "network_transformer",
    "network_transformer_pairs",
)


SKIP = ("smoke",)


REPORT_FILES = ("README.md", "figure1.png", "figure1_log.png")

#: Where ``flowsim reproduce`` writes unless told otherwise (under runs/, which is not committed).
SCRATCH = Path("runs/reproduce")


def reproduce(
    experiments: Path,
    results: Path,
    *,
    out: Path | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    allow_dirty: bool = False,
) -> Path:
    """Run, analyse and plot every experiment in ``experiments`` into ``out``; return its README.md.

    ``out`` defaults to :data:`SCRATCH`; the new results are then compared with ``results``
    (the committed ones) and the differences printed.  With ``out`` equal to ``results``
    they replace the committed results: that refuses (a SweepError) with changes to tracked
    files unless ``allow_dirty``, since the results would name a commit that did not make them.
    """
    out = SCRATCH if out is None else out
    update = out.resolve() == results.resolve()
    commit = git_commit()
    if update and commit and commit.endswith("-dirty") and not allow_dirty:
        raise SweepError(
            f"the working tree has uncommitted changes (commit {commit}): commit them first, so that the "
            "published results name the code that made them, or pass --allow-dirty (or leave out --update: "
            f"the results then go to {SCRATCH} and are compared with {results})"
        )
    files = sorted(p for p in experiments.glob("*.toml") if p.stem not in SKIP)
    if not files:
        raise InputNotFound(f"no experiment files in {experiments}")
    exps = [load(p) for p in files]  # validate them all before any work
    exps.sort(key=lambda e: (ORDER.index(e.name) if e.name in ORDER else len(ORDER), e.name))
    names = [e.name for e in exps]
    warn_absent(names)  # before any sweep: the report's sections that will be marked missing
    staging = out / ".staging"
    if staging.exists():
        shutil.rmtree(staging)  # a reproduction interrupted earlier; nothing of it was published
    staging.mkdir(parents=True)
    t_all = time.perf_counter()
    for exp in exps:  # each sweep uses every worker itself
        meta = run_sweep(exp, staging / exp.name, n_jobs=n_jobs, progress=progress)
        print(f"{exp.name}: {meta['rows']} rows in {meta['wall_time_s']:.1f} s")
        warn_setup(exp, staging / exp.name)
    _report_parts(staging, names, n_jobs, progress)
    (staging / "README.md").write_text(build_report(staging, names))

    previous = out / ".previous"
    if previous.exists():
        shutil.rmtree(previous)
    previous.mkdir()
    for name in names + list(REPORT_FILES):
        if (out / name).exists():
            shutil.move(out / name, previous / name)
        shutil.move(staging / name, out / name)
    shutil.rmtree(staging)
    print(f"reproduced {len(exps)} experiments in {time.perf_counter() - t_all:.0f} s -> {out / 'README.md'}")
    old = previous if update else results
    if update and not any(previous.iterdir()):
        print("no earlier results to compare with")
    else:
        print(compare_results(old, out, names))
    return out / "README.md"


def _report_parts(staging: Path, names: list[str], n_jobs: int, progress: bool) -> None:
    """Analyse and plot every experiment and draw Figure 1, in parallel, under one progress bar.

    The workers run quietly (their bars would interleave on one line); each finished part
    prints its line above the bar.
    """
    # the analyses and figures (most of the time) are independent: one experiment per worker
    tasks = [("experiment", staging / n) for n in names]
    tasks += [("field", staging / f"figure1{tail}.png") for tail in ("", "_log")]
    with (
        backend(default_backend(), None, n_jobs) as pmap,
        tqdm(
            total=len(tasks), desc="reproduce: analyse and plot", unit=" part", disable=not progress, file=sys.stderr
        ) as bar,
    ):
        for line in pmap(_report_part, tasks):
            bar.write(line, file=sys.stdout)
            bar.update()


def _report_part(task: tuple[str, Path]) -> str:
    """One experiment analysed and plotted, or Figure 1 drawn (on a worker); a line saying so."""
    kind, path = task
    t0 = time.perf_counter()
    if kind == "field":
        plot_field(beta=0.1, out=path, log_scale=path.stem.endswith("_log"))
        return f"{path.name}: {time.perf_counter() - t0:.1f} s"
    analyze(path, progress=False)
    figs = plot(path, progress=False)
    return f"{path.name}: analysed, {len(figs)} figures, {time.perf_counter() - t0:.1f} s"


def compare_results(old_root: Path, new_root: Path, names: list[str]) -> str:
    """Every file of a reproduction against the same file under ``old_root``: "same", or what differs.

    Files are compared byte for byte, except: ``run.json`` (how a run went: never the same);
    ``flows.csv``, which results/ does not keep for the big sweeps (meta.json's sha256 stands
    for it); meta.json's commit and versions, and the report's line naming the commit, which are
    reported but are not a difference in the results; claims.csv, whose changed claims are named (:func:`_compare`).
    """
    changed, made, gone, notes, n_files = [], [], [], set(), 0
    for name in names + list(REPORT_FILES):
        new = new_root / name
        if not new.exists():  # not made this time: missing on both sides is no difference
            gone += [f"  {name}: not made this time"] if (old_root / name).exists() else []
            continue
        files = sorted(p.relative_to(new_root) for p in new.rglob("*") if p.is_file()) if new.is_dir() else [Path(name)]
        for rel in files:
            if rel.name == RUN_FILE or (rel.name == "flows.csv" and not (old_root / rel).exists()):
                continue
            n_files += 1
            if not (old_root / rel).exists():
                made.append(f"  {rel}: new (not in the results compared with)")
            elif diff := _compare_file(old_root / rel, new_root / rel, notes):
                changed.append(f"  {rel}: {diff}")
        gone += [f"  {rel}: not made this time" for rel in _gone(old_root, new_root, name)]
    head = f"compared with {old_root}: "
    note = "".join(f"\n  (note: {n})" for n in sorted(notes))
    diffs = changed + made + gone
    if not diffs:
        return head + f"same ({n_files} files identical)" + note
    shown = diffs[:40] + ([f"  ... and {len(diffs) - 40} more"] if len(diffs) > 40 else [])
    counts = f"{len(changed)} of {n_files - len(made)} files differ, {len(made)} new, {len(gone)} not made this time"
    return head + counts + ":\n" + "\n".join(shown) + note


def _gone(old_root: Path, new_root: Path, name: str) -> list[Path]:
    """Files of folder ``name`` under ``old_root`` that the new results do not have (run.json aside)."""
    if not (new_root / name).is_dir() or not (old_root / name).is_dir():
        return []
    rels = (p.relative_to(old_root) for p in (old_root / name).rglob("*") if p.is_file() and p.name != RUN_FILE)
    return sorted(rel for rel in rels if not (new_root / rel).exists())


#: The report's line naming the commit its results were made at.
_COMMIT = re.compile(r"commit `[0-9a-f]{7,40}(-dirty)?`")
#: meta.json keys that say who made the results, not what they are.
_PROVENANCE = ("git_commit", "versions")


def _compare_file(old: Path, new: Path, notes: set[str]) -> str:
    """What differs between two files ("" when nothing that matters), adding provenance notes to ``notes``."""
    if new.name == "meta.json":
        a, b = json.loads(old.read_text()), json.loads(new.read_text())
        if a.get("git_commit") != b.get("git_commit"):
            notes.add(f"the compared results were made at commit {a.get('git_commit')}, these at {b.get('git_commit')}")
        va, vb = a.get("versions") or {}, b.get("versions") or {}
        changed = [f"{k} {va.get(k)} -> {vb.get(k)}" for k in sorted(va.keys() | vb.keys()) if va.get(k) != vb.get(k)]
        if changed:
            notes.add(f"other versions than the compared results': {', '.join(changed)}")
        keys = sorted(k for k in a.keys() | b.keys() if k not in _PROVENANCE and a.get(k) != b.get(k))
        return f"differs in {', '.join(keys)}" if keys else ""
    if filecmp.cmp(old, new, shallow=False):
        return ""
    if new.name == "README.md":  # the report names the commit it was made at: provenance, as in meta.json
        a, b = (_COMMIT.sub("commit `...`", p.read_text()) for p in (old, new))
        return "" if a == b else "differs"
    if new.name == "claims.csv":
        return _compare(pd.read_csv(old), pd.read_csv(new))
    return "differs"


#: claims.csv columns that are a claim's outcome; the others (claim, parameters, subset, model) name its row.
_OUTCOME = frozenset(
    {
        "title",
        "paper",
        "where",
        "metric",
        "value",
        "details",
        "threshold",
        "verdict",
        "robustness",
        "n_rows",
        "n_failed",
        "failed_left_out",
        "low",
        "high",
        "uncertain",
        "n_seeds",
        "intervals",
    }
)


def _compare(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """What changed from claims table ``a`` to ``b``, in one line."""
    key = [c for c in b.columns if c in a.columns and c not in _OUTCOME]
    both = pd.merge(
        a[[*key, "value", "verdict"]].astype({k: str for k in key}),
        b[[*key, "value", "verdict"]].astype({k: str for k in key}),
        on=key,
        how="outer",
        suffixes=("_a", "_b"),
        indicator=True,
    )
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
        both_finite = ~same & np.isfinite(va) & np.isfinite(vb)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(vb - va)[both_finite] / np.abs(va[both_finite])
        worst = f"largest relative change {np.nanmax(rel):.2e}" if np.isfinite(rel).any() else "no number to number"
        nan_moves = int((~same).sum() - both_finite.sum())
        worst += f"; {nan_moves} became or stopped being NaN" if nan_moves else ""
        parts.append(f"values changed for {', '.join(moved)} ({worst})")
    else:
        parts.append("values identical")
    if added:
        parts.append(f"{int((both['_merge'] == 'right_only').sum())} new rows ({', '.join(added)})")
    if gone:
        parts.append(f"{int((both['_merge'] == 'left_only').sum())} rows gone ({', '.join(gone)})")
    return "; ".join(parts)
