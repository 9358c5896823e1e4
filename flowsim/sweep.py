"""Grids x parameters -> flows, run in parallel with joblib, streamed chunk by chunk to CSV.

Layout of an output folder while a sweep runs and after it ends::

    OUT/.partial/experiment.json   the experiment as run (checked again by --resume)
    OUT/.partial/chunk_000123.csv  one file per finished chunk, written atomically
    OUT/flows.csv                  only at the end: the chunks joined in order
    OUT/meta.json                  only at the end: versions, times, counts by status

A chunk is written to a temporary name and renamed, so a killed sweep keeps every chunk
that finished and never leaves a half-written one; ``flows.csv`` appears (again by
rename) only once every chunk is there, so a file with that name is always complete.
Rows are computed independently of each other, so they are identical whatever the
number of workers, the chunk size or the number of interruptions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from flowsim.config import Experiment
from flowsim.exact import EXACT_FLOWS
from flowsim.flow import SolverOptions, integrate
from flowsim.records import RESULT_FIELDS, STATUSES, FlowResult, StopRule
from flowsim.regions import feasible, region_labels

#: flows.csv columns, in order (the loss's parameters come first; for DPO beta, ref_w, ref_l).
LEADING = ("p1_0", "p2_0", "x1_0", "x2_0", "region", "feasible", "status", "t_stop",
           "p1_final", "p2_final", "x1_final", "x2_final", "loss_0", "loss_final", "t_w", "t_l", "nfev",
           "reference", "message")  # fmt: skip


class SweepError(RuntimeError):
    """A sweep that cannot start as asked (e.g. an output folder that is not empty)."""


def columns(exp: Experiment) -> list[str]:
    """The flows.csv header for an experiment."""
    return [f.name for f in dataclasses.fields(exp.loss_class)] + list(LEADING)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """A contiguous block of rows: initial probabilities and each row's loss parameters."""

    index: int
    p0: np.ndarray  # (n, 2)
    params: dict[str, np.ndarray]  # each (n,)


def chunks(exp: Experiment, chunk_size: int) -> Iterator[Chunk]:
    """The sweep's rows in order (parameter combinations outer, grid inner), in blocks."""
    p = exp.grid.points()
    k = 0
    for combo in exp.parameter_sets():
        for start in range(0, len(p), chunk_size):
            p0 = p[start : start + chunk_size]
            params = {name: np.full(len(p0), v) for name, v in combo.items()}
            if exp.reference == "initial":
                params |= {"ref_w": p0[:, 0].copy(), "ref_l": p0[:, 1].copy()}
            yield Chunk(k, p0, params)
            k += 1


def run_chunk(exp: Experiment, chunk: Chunk) -> pd.DataFrame:
    """Compute one chunk's rows (in a worker process)."""
    cls = exp.loss_class
    n = len(chunk.p0)
    refs = np.stack([chunk.params["ref_w"], chunk.params["ref_l"]], -1)
    x0 = chunk.p0 / refs
    if exp.exact:
        res = EXACT_FLOWS[exp.loss_kind](x0, stop=exp.stop, **chunk.params)
    else:
        records = [_one(cls, {k: float(v[i]) for k, v in chunk.params.items()}, x0[i], exp.stop, exp.solver)
                   for i in range(n)]  # fmt: skip
        res = {k: np.array([getattr(r, k) for r in records]) for k in RESULT_FIELDS}
    loss0 = _loss_values(cls, chunk.params, x0)
    df = pd.DataFrame({k: v for k, v in chunk.params.items()})
    df["p1_0"], df["p2_0"] = chunk.p0[:, 0], chunk.p0[:, 1]
    df["x1_0"], df["x2_0"] = x0[:, 0], x0[:, 1]
    df["region"] = region_labels(chunk.p0, exp.p1_cuts, exp.p2_cuts)
    df["feasible"] = feasible(chunk.p0)
    for k in RESULT_FIELDS:
        df[k] = res[k]
    df["loss_0"] = loss0
    df["reference"] = exp.reference
    return df[columns(exp)]


def _loss_values(cls, params: dict[str, np.ndarray], x0: np.ndarray) -> np.ndarray:
    """Loss at each row's initial point, one vectorised call per hyperparameter combination.

    In ratio coordinates a loss depends on x and its hyperparameters; the references only
    bound its domain, so rows are grouped by the hyperparameters alone.
    """
    keys = [k for k in params if k not in ("ref_w", "ref_l")]
    out = np.empty(len(x0))
    if not keys:
        return cls().value(x0)
    uniq, inverse = np.unique(np.stack([params[k] for k in keys], -1), axis=0, return_inverse=True)
    for j, row in enumerate(uniq):
        sel = inverse.ravel() == j
        out[sel] = cls(**dict(zip(keys, row.tolist(), strict=True))).value(x0[sel])
    return out


def _one(cls, params: dict[str, float], x0: np.ndarray, stop: StopRule, solver: SolverOptions) -> FlowResult:
    try:
        return integrate(cls(**params), x0, stop, solver)
    except Exception as exc:  # one bad row never stops a sweep
        return FlowResult.failed(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------


def default_chunk_size(exp: Experiment, n_jobs: int) -> int:
    """Big enough that dispatch costs little, small enough that the progress bar moves.

    Exact chunks hold 10,000 rows: the closed form does them in ~10 ms and writing them
    takes ~0.3 s, so dispatch is still negligible, and a chunk's table (~10 MiB while it
    is written) bounds the sweep's memory whatever the number of rows.
    """
    if exp.exact:
        return 10_000
    per_worker = -(-len(exp.grid) // max(1, n_jobs))
    return int(min(256, max(16, per_worker // 8)))


def run_sweep(
    exp: Experiment,
    out: str | Path,
    *,
    n_jobs: int = -1,
    chunk_size: int | None = None,
    resume: bool = False,
    progress: bool = True,
    backend: str = "loky",
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run an experiment into folder ``out``; return the meta record (also in meta.json).

    Parameters
    ----------
    n_jobs : int, default -1
        joblib workers (-1: all cores).
    chunk_size : int, optional
        Rows per task; by default :func:`default_chunk_size`.  Does not change the rows.
    resume : bool
        Continue an interrupted sweep in ``out``: finished chunks are kept, the rest run.
    backend : {"loky", "dask"}
        joblib backend.  "dask" connects to the dask.distributed scheduler at ``scheduler``
        (an address such as "tcp://10.0.0.5:8786", or a ``distributed.Client``).
    """
    out = Path(out)
    partial = out / ".partial"
    spec = json.dumps(exp.as_dict(), sort_keys=True)
    if n_jobs == 0:
        raise ValueError("n_jobs must be a number of workers >= 1, or negative to count back from all cores; got 0")
    if out.exists() and not out.is_dir():
        raise SweepError(f"output folder {out} is a file; choose another --out")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size!r}")
    if resume and (partial / "chunk_size").exists():
        # chunk files are numbered: a resumed sweep must cut its rows exactly as the first run did
        recorded = int((partial / "chunk_size").read_text())
        if chunk_size not in (None, recorded):
            raise SweepError(f"cannot resume in {out} with chunk_size={chunk_size}: it was started with {recorded}")
        chunk_size = recorded
    chunk_size = chunk_size or default_chunk_size(exp, os.cpu_count() if n_jobs < 0 else n_jobs)
    _prepare(out, partial, spec, resume)
    _write_atomic(partial / "chunk_size", str(chunk_size))

    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    todo = [c for c in chunks(exp, chunk_size) if not (partial / _chunk_name(c.index)).exists()]
    all_chunks = -(-len(exp.grid) // chunk_size) * len(exp.parameter_sets())
    done_rows = exp.n_rows() - sum(len(c.p0) for c in todo)
    bar = tqdm(total=exp.n_rows(), initial=done_rows, unit="flow", desc=exp.name, disable=not progress, smoothing=0.1)
    with _backend(backend, scheduler, n_jobs) as parallel_kwargs:
        parallel = joblib.Parallel(return_as="generator_unordered", **parallel_kwargs)
        results = parallel(joblib.delayed(_run_and_tag)(exp, c) for c in todo)
        for index, df in results:
            _write_atomic(partial / _chunk_name(index), df.to_csv(index=False))
            bar.update(len(df))
    bar.close()

    # Join the chunks in order, streaming: memory does not grow with the number of rows.
    tmp = out / "flows.csv.tmp"
    with tmp.open("w", newline="") as fh:
        for k in range(all_chunks):
            with (partial / _chunk_name(k)).open() as part:
                if k:
                    part.readline()  # header
                shutil.copyfileobj(part, fh)
        fh.flush()
        os.fsync(fh.fileno())
    counts = _count_status(tmp)
    os.replace(tmp, out / "flows.csv")

    meta = {
        "experiment": exp.as_dict(),
        "rows": int(sum(counts.values())),
        "counts_by_status": {s: int(counts.get(s, 0)) for s in STATUSES},
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "resumed": resume,
        "n_jobs": n_jobs,
        "backend": backend,
        "chunk_size": chunk_size,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    _write_atomic(out / "meta.json", json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(partial)
    return meta


def _run_and_tag(exp: Experiment, chunk: Chunk) -> tuple[int, pd.DataFrame]:
    return chunk.index, run_chunk(exp, chunk)


def _chunk_name(index: int) -> str:
    return f"chunk_{index:06d}.csv"


def _prepare(out: Path, partial: Path, spec: str, resume: bool) -> None:
    """Check the output folder against ``resume``; never overwrite anything written."""
    if (out / "flows.csv").exists():
        raise SweepError(f"{out} already holds a finished sweep (flows.csv); choose another --out or move it away")
    if resume:
        recorded = partial / "experiment.json"
        if not recorded.exists():
            raise SweepError(f"nothing to resume in {out}: no interrupted sweep there (no .partial/experiment.json)")
        if recorded.read_text() != spec:
            raise SweepError(f"cannot resume in {out}: it holds an interrupted sweep of a different experiment")
        return
    if out.exists() and any(out.iterdir()):
        hint = " (an interrupted sweep: add --resume to continue it)" if partial.exists() else ""
        raise SweepError(f"output folder {out} is not empty{hint}; choose another --out or empty it")
    partial.mkdir(parents=True, exist_ok=True)
    _write_atomic(partial / "experiment.json", spec)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _count_status(csv: Path) -> Counter:
    counts: Counter = Counter()
    for part in pd.read_csv(csv, usecols=["status"], chunksize=200_000):
        counts.update(part["status"].tolist())
    return counts


@contextlib.contextmanager
def _backend(backend: str, scheduler: Any, n_jobs: int) -> Iterator[dict[str, Any]]:
    if backend == "loky":
        yield {"n_jobs": n_jobs, "backend": "loky"}
        return
    if backend != "dask":
        raise ValueError(f"backend must be 'loky' or 'dask'; got {backend!r}")
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("the dask backend needs dask.distributed: pip install 'flowsim[dask]'") from None
    if scheduler is None:
        raise SweepError("the dask backend needs a scheduler address (--scheduler tcp://HOST:8786)")
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        with joblib.parallel_config(backend="dask"):
            yield {"n_jobs": -1}
    finally:
        if client is not scheduler:
            client.close()


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("flowsim", "numpy", "scipy", "pandas", "joblib", "matplotlib", "tqdm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_flows(path: str | Path) -> pd.DataFrame:
    """Read a flows.csv (a file, or a results folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "flows.csv"
    return pd.read_csv(path, dtype={"message": str}, keep_default_na=True).fillna({"message": ""})
