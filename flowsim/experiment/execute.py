"""run_sweep: an experiment's chunks (:mod:`.sweep`), computed in parallel (:mod:`.parallel`),
written into a run folder (:mod:`.store`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from flowsim._validation import ParamError
from flowsim.dynamics.record import STATUSES
from flowsim.experiment import parallel
from flowsim.experiment.config import Experiment
from flowsim.experiment.store import RUN_FILE, RunFolder, SweepError, git_commit, versions, write_atomic
from flowsim.experiment.sweep import chunks, kept, n_rows, run_chunk, starts


def default_chunk_size(exp: Experiment, n_jobs: int) -> int:
    """Big enough that dispatch costs little, small enough that the progress bar moves.

    Exact chunks hold 10,000 rows: the closed form does them in ~10 ms and writing them
    takes ~0.3 s, so dispatch is still negligible, and a chunk's table (~10 MiB while it
    is written) bounds the sweep's memory whatever the number of rows.
    """
    engines = {exp.engine_for(c) for c in exp.parameter_sets()}
    if "exact" in engines:
        return 10_000
    if "network" in engines:  # a chunk's starts train as one ensemble: all of a combination's, up to its cap
        from flowsim.dynamics.engines.network import MAX_MEMBERS

        return int(min(MAX_MEMBERS, max(1, starts(exp)[0])))
    per_worker = -(-len(exp.grid) // max(1, n_jobs))
    if "batched" in engines:  # lockstep steps pay per chunk:
        # throughput grows up to ~10^4 rows a chunk
        return int(min(5000, max(256, per_worker // 2)))
    return int(min(256, max(16, per_worker // 8)))


def run_sweep(
    exp: Experiment,
    out: str | Path,
    *,
    n_jobs: int = -1,
    chunk_size: int | None = None,
    resume: bool = False,
    progress: bool = True,
    backend: str | None = None,
    scheduler: Any = None,
    scheduler_timeout: float = parallel.SCHEDULER_TIMEOUT,
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run an experiment into folder ``out``; return the meta record (meta.json and run.json together).

    The record is split in two files so that a run's committed part is the same whenever
    it is made again: ``meta.json`` holds what the results depend on (the experiment,
    counts, checksum of flows.csv, versions, commit); ``run.json`` (:data:`RUN_FILE`) holds
    how this particular run went (start and end times, wall time, workers, backend, chunk
    size, host, load), which differs on every run and is not committed.

    Nothing is written before the experiment, the folder (free, writable, resumable as
    asked) and the backend (a dask scheduler that answers) have been checked.  The folder is
    then locked for the sweep: a second writer gets a :class:`SweepError` naming the first.

    Parameters
    ----------
    n_jobs : int, default -1
        Workers (-1: all cores, -2: all but one, ...).
    chunk_size : int, optional
        Rows per task; by default :func:`default_chunk_size`.  Does not change the rows.
    resume : bool
        Continue an interrupted sweep in ``out``: finished chunks that match their
        checksums are kept, damaged ones are reported (``report``) and computed again.
    backend : {"fork", "loky", "dask"}, optional
        Where chunks are computed (:mod:`.parallel`; default "fork" on Linux, else "loky").
        "dask" connects to the dask.distributed scheduler at ``scheduler``
        (an address such as "tcp://10.0.0.5:8786", or a ``distributed.Client``), waiting at
        most ``scheduler_timeout`` seconds.
    report : callable, optional
        Called with a line per damaged chunk found by ``resume`` (default: printed to stderr).
    """
    workers = parallel.n_workers(n_jobs)
    backend = backend or parallel.default_backend()
    if chunk_size is not None and chunk_size < 1:
        raise ParamError("chunk_size", "must be >= 1", chunk_size)
    report = report or _to_stderr
    folder = RunFolder(out)
    index = kept(exp)  # None on the ratio plane: every point; chunks make their points lazily
    n_starts, left_out = starts(exp, index)
    if n_starts == 0:
        raise SweepError(f"no start of the grid has p1 + p2 < 1, which the {exp.model_kind!r} model needs")
    spec = json.dumps(exp.as_dict(), sort_keys=True)
    folder.check(spec, resume)
    recorded = folder.recorded_chunk_size() if resume else None
    if recorded is not None:
        # chunk files are numbered: a resumed sweep must cut its rows exactly as the first run did
        if chunk_size not in (None, recorded):
            raise SweepError(f"cannot resume in {out} with chunk_size={chunk_size}: it was started with {recorded}")
        chunk_size = recorded
    chunk_size = chunk_size or default_chunk_size(exp, workers)

    with parallel.backend(backend, scheduler, n_jobs, timeout=scheduler_timeout) as pmap, folder.writing():
        folder.prepare(spec, resume, chunk_size)
        started = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        n_chunks = -(-n_starts // chunk_size) * len(exp.parameter_sets())
        records = folder.verified_chunks(n_chunks, report) if resume else {}
        todo = (c for c in chunks(exp, chunk_size, index) if c.index not in records)
        done = sum(r["rows"] for r in records.values())
        total = n_rows(exp)  # rows, as the chunk records count them (a network writes a row per pair)
        bar = _Bar(total=total, initial=done, unit="flow", desc=exp.name, disable=not progress, smoothing=0.1)
        for index, data, rows, counts, engines in pmap(_run_and_encode, ((exp, c) for c in todo)):
            records[index] = folder.write_chunk(index, data, rows, counts, engines)
            bar.update(rows)
        bar.close()
        joined = folder.join(records, n_chunks)
        counts = joined["counts"]
        stable = {
            "experiment": exp.as_dict(),
            "rows": int(joined["rows"]),
            "counts_by_status": {s: int(counts.get(s, 0)) for s in STATUSES},
            "counts_by_engine": {k: int(v) for k, v in sorted(joined["engines"].items())},
            "flows_bytes": int(joined["bytes"]),
            "flows_sha256": joined["sha256"],
            "starts_left_out": left_out,
            "versions": versions(),
            "git_commit": git_commit(),
        }
        volatile = {
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - t0, 3),
            "resumed": resume,
            "n_jobs": n_jobs,
            "backend": backend,
            "chunk_size": chunk_size,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "host": platform.node(),
                "load_1min": _load(),
            },
        }
        # run.json first: meta.json, written last, marks a finished folder
        write_atomic(folder.out / RUN_FILE, json.dumps(volatile, indent=2) + "\n")
        folder.finish(json.dumps(stable, indent=2) + "\n")
    return stable | volatile


def _load() -> float | None:
    """The 1-minute load average at the end of the sweep (None where the OS does not say)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


class _Bar(tqdm):
    """tqdm without its monitor thread: the fork backend should fork a single-threaded process."""

    monitor_interval = 0


def _to_stderr(line: str) -> None:
    print(f"flowsim: warning: {line}", file=sys.stderr)


def _run_and_encode(item) -> tuple[int, bytes, int, dict[str, int], dict[str, int]]:
    """In a worker: one chunk's rows as CSV bytes, with their number and counts by status and by engine."""
    exp, chunk = item
    df = run_chunk(exp, chunk)
    counts = {c: {str(k): int(v) for k, v in df[c].value_counts().items()} for c in ("status", "engine")}
    return chunk.index, df.to_csv(index=False).encode(), len(df), counts["status"], counts["engine"]


__all__ = ["SweepError", "default_chunk_size", "run_sweep"]
