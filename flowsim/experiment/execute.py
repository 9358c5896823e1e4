"""run_sweep: an experiment's chunks (:mod:`.sweep`), computed in parallel (:mod:`.parallel`),
written into a run folder (:mod:`.store`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from flowsim.dynamics.record import STATUSES
from flowsim.experiment import parallel
from flowsim.experiment.config import Experiment
from flowsim.experiment.store import RunFolder, SweepError, git_commit, versions, write_atomic
from flowsim.experiment.sweep import chunks, n_rows, run_chunk, starts


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
    scheduler: Any = None,
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
    if n_jobs == 0:
        raise ValueError("n_jobs must be a number of workers >= 1, or negative to count back from all cores; got 0")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size!r}")
    folder = RunFolder(out)
    p, left_out = starts(exp)
    if len(p) == 0:
        raise SweepError(f"no start of the grid has p1 + p2 < 1, which the {exp.model_kind!r} model needs")
    recorded = folder.recorded_chunk_size() if resume else None
    if recorded is not None:
        # chunk files are numbered: a resumed sweep must cut its rows exactly as the first run did
        if chunk_size not in (None, recorded):
            raise SweepError(f"cannot resume in {out} with chunk_size={chunk_size}: it was started with {recorded}")
        chunk_size = recorded
    chunk_size = chunk_size or default_chunk_size(exp, os.cpu_count() if n_jobs < 0 else n_jobs)
    folder.prepare(json.dumps(exp.as_dict(), sort_keys=True), resume)
    write_atomic(folder.partial / "chunk_size", str(chunk_size))

    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    total = n_rows(exp)
    todo = (c for c in chunks(exp, chunk_size) if not folder.has_chunk(c.index))
    per_combo = -(-len(p) // chunk_size)
    n_chunks = per_combo * len(exp.parameter_sets())
    done = sum(min(chunk_size, len(p) - (k % per_combo) * chunk_size) for k in range(n_chunks) if folder.has_chunk(k))
    bar = tqdm(total=total, initial=done, unit="flow", desc=exp.name, disable=not progress, smoothing=0.1)
    with parallel.backend(backend, scheduler, n_jobs) as kwargs:
        for index, df in parallel.map_unordered(_run_and_tag, ((exp, c) for c in todo), kwargs):
            folder.write_chunk(index, df)
            bar.update(len(df))
    bar.close()
    counts = folder.join(n_chunks)
    meta = {
        "experiment": exp.as_dict(),
        "rows": int(sum(counts.values())),
        "counts_by_status": {s: int(counts.get(s, 0)) for s in STATUSES},
        "starts_left_out": left_out,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(time.perf_counter() - t0, 3),
        "resumed": resume,
        "n_jobs": n_jobs,
        "backend": backend,
        "chunk_size": chunk_size,
        "versions": versions(),
        "git_commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    folder.finish(json.dumps(meta, indent=2) + "\n")
    return meta


def _run_and_tag(item) -> tuple[int, Any]:
    exp, chunk = item
    return chunk.index, run_chunk(exp, chunk)


__all__ = ["SweepError", "default_chunk_size", "run_sweep"]
