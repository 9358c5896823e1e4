"""The trace folder: per-pair log-probabilities of a training run made elsewhere, written and read checked.

Layout (written through :class:`flowsim.experiment.store.RunFolder`: one writer at a time,
every file atomic, every chunk checksummed)::

    OUT/.lock, OUT/.lock.owner         held while the training runs (released by the OS on a crash)
    OUT/.partial/experiment.json       the trace's spec (model, TRL version, beta, loss, probe seed
                                       and indices, every); a resumed training must match it
    OUT/.partial/chunk_000000.csv      the reference's log-probs of the probe pairs (step -1)
    OUT/.partial/chunk_{s+1:06d}.csv   the policy's log-probs after s optimiser steps
    OUT/.partial/chunk_*.json          each chunk's rows, bytes and sha256, written after it
    OUT/.partial/predictors.csv        the probe pairs' predictors of displacement at the start
    OUT/.partial/predictors.json       its record: rows, bytes, sha256, the step, how it was computed
    OUT/logps.csv                      at the end of training: the chunks joined in step order
    OUT/predictors.csv                 at the end: .partial/predictors.csv (if it was written)
    OUT/meta.json                      at the end: the spec, versions, and rows/bytes/sha256 of logps.csv
                                       (and of predictors.csv, with its record, under "predictors")

A step's chunk has one name, so writing a step again (a training resumed from a checkpoint
repeats the steps after it) replaces it by rename and never duplicates it; a resumed training
first drops the chunks of steps after its checkpoint (the abandoned continuation).  Each row
is ``step, what, probe, index, logp_w, logp_l``: ``what`` is "reference" or "policy",
``probe`` the pair's position in the probe set, ``index`` its row in the training set.
:func:`read_trace` reads a finished folder (checked against meta.json) or a crashed one
(its chunks checked against their records), and raises :class:`TraceError` -- one line --
for anything else.  :func:`read_predictors` reads the predictors (None for a folder written
before they were recorded, or by a callback told not to compute them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowsim.experiment.store import RunFolder, SweepError, _check_chunk, _sha256, git_commit, versions, write_atomic

#: meta.json's "format" of a trace folder.
FORMAT = "flowsim-trace/1"
#: The columns of every chunk and of logps.csv.
COLUMNS = ("step", "what", "probe", "index", "logp_w", "logp_l")
LOGPS = "logps.csv"
#: The per-pair predictors of displacement (:mod:`flowsim.integrations.predictors`), and their record.
PREDICTORS = "predictors.csv"
PREDICTORS_RECORD = "predictors.json"
#: The step recorded for the reference.
REFERENCE_STEP = -1


class TraceError(SweepError):
    """A trace folder that cannot be written or read as asked (one line: what is wrong, what to do)."""


class TraceDamaged(UserWarning):
    """A chunk of an interrupted trace that no longer matches its record (it is recorded again)."""


def chunk_index(step: int) -> int:
    """The chunk of a step: 0 for the reference, s + 1 for the policy after s steps."""
    return step + 1


def encode(step: int, what: str, index: np.ndarray, logp: np.ndarray) -> bytes:
    """One recording as CSV bytes (``repr`` floats: the values read back are the ones recorded)."""
    n = len(index)
    df = pd.DataFrame(
        {
            "step": np.full(n, step),
            "what": what,
            "probe": np.arange(n),
            "index": index,
            "logp_w": logp[:, 0],
            "logp_l": logp[:, 1],
        }
    )
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.17g")
    return buf.getvalue().encode()


class TraceWriter:
    """Writes one training's trace folder (see the module docstring); one instance per training.

    ``open(step)`` takes the lock and prepares the folder for a training that starts (or resumes)
    at ``step``; ``write`` records one step; ``finish`` joins the chunks and writes meta.json;
    ``close`` releases the lock without finishing (the folder stays resumable).
    """

    def __init__(self, out: str | Path, spec: dict[str, Any]) -> None:
        self.out = Path(out)
        self.folder = RunFolder(self.out)
        self.spec = spec
        self.spec_text = json.dumps(spec, sort_keys=True, indent=1) + "\n"
        self._stack: contextlib.ExitStack | None = None
        self.started = dt.datetime.now().astimezone().isoformat(timespec="seconds")

    def open(self, step: int) -> dict[int, dict[str, Any]]:
        """Lock and prepare the folder for a training at ``step``; return the records of the chunks kept.

        A fresh folder is prepared; one holding an interrupted trace of the same spec is resumed:
        chunks that no longer match their records are dropped (a warning each), and so are the
        chunks of steps after ``step``.  TraceError for a finished trace or another run's.
        """
        stack = contextlib.ExitStack()
        stack.enter_context(self.folder.writing())
        self._stack = stack
        try:
            return self._prepare(step)
        except BaseException:
            self.close()
            raise

    def _prepare(self, step: int) -> dict[int, dict[str, Any]]:
        if (self.out / "meta.json").exists():
            raise TraceError(f"{self.out} holds a finished trace (meta.json); trace this training into another folder")
        recorded = self.folder.partial / "experiment.json"
        if not recorded.exists():
            others = sorted(p.name for p in self.out.iterdir() if p.name not in (".lock", ".lock.owner"))
            if others:
                raise TraceError(
                    f"{self.out} is not empty (it holds {', '.join(others[:3])}); trace into a new or empty folder"
                )
            self.folder.prepare(self.spec_text, resume=False, chunk_size=len(self.spec.get("probe_index", ())))
            return {}
        if recorded.read_text() != self.spec_text:
            theirs = json.loads(recorded.read_text())
            keys = sorted(k for k in {*theirs, *self.spec} if theirs.get(k) != self.spec.get(k))
            raise TraceError(
                f"{self.out} holds the trace of another run (it differs in {', '.join(keys)}); "
                "trace this training into another folder"
            )
        self.folder.prepare(self.spec_text, resume=True, chunk_size=len(self.spec.get("probe_index", ())))
        good = self.folder.verified_chunks(1 << 40, lambda m: warnings.warn(m, TraceDamaged, stacklevel=4))
        for k in [k for k in good if k > chunk_index(step)]:  # the continuation a crash abandoned
            self.folder.chunk_path(k).unlink()
            self.folder.record_path(k).unlink(missing_ok=True)
            del good[k]
        return good

    def write(self, step: int, what: str, index: np.ndarray, logp: np.ndarray) -> None:
        """Record the log-probs (n, 2) of the probe pairs (training-set rows ``index``) at ``step``."""
        data = encode(step, what, np.asarray(index), np.asarray(logp, dtype=float))
        self.folder.write_chunk(chunk_index(step), data, len(index), {what: len(index)})

    def write_predictors(self, data: bytes, rows: int, info: dict[str, Any]) -> None:
        """Write the predictors' CSV bytes, then their record (rows, bytes, sha256 and ``info``), atomically."""
        record = {"rows": int(rows), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **info}
        write_atomic(self.folder.partial / PREDICTORS, data)
        write_atomic(self.folder.partial / PREDICTORS_RECORD, json.dumps(record, default=str) + "\n")

    def recorded_predictors(self) -> dict[str, Any] | None:
        """The record of predictors written here that match it, or None (a damaged pair is removed)."""
        path = self.folder.partial / PREDICTORS
        if not path.exists():
            return None
        record, problem = _check_chunk(path, self.folder.partial / PREDICTORS_RECORD)
        if problem:
            warnings.warn(f"{path} is damaged ({problem}); computing it again", TraceDamaged, stacklevel=3)
            path.unlink()
            (self.folder.partial / PREDICTORS_RECORD).unlink(missing_ok=True)
            return None
        return record

    def recorded_reference(self) -> np.ndarray | None:
        """The reference's log-probs (n, 2) recorded in the folder, or None."""
        path = self.folder.chunk_path(chunk_index(REFERENCE_STEP))
        if not path.exists():
            return None
        return pd.read_csv(path)[["logp_w", "logp_l"]].to_numpy(float)

    def finish(self, extra: dict[str, Any]) -> Path:
        """Join the chunks in step order into logps.csv, write meta.json, release the lock; return the folder."""
        records = self.folder.verified_chunks(1 << 40, lambda m: warnings.warn(m, TraceDamaged, stacklevel=3))
        tmp, total = self.out / (LOGPS + ".tmp"), hashlib.sha256()
        header = (",".join(COLUMNS) + "\n").encode()
        with tmp.open("wb") as fh:
            fh.write(header)
            total.update(header)
            for k in sorted(records):
                body = self.folder.chunk_path(k).read_bytes().split(b"\n", 1)[1]
                fh.write(body)
                total.update(body)
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        os.replace(tmp, self.out / LOGPS)
        predictors = self.recorded_predictors()
        if predictors is not None:
            write_atomic(self.out / PREDICTORS, (self.folder.partial / PREDICTORS).read_bytes())
            extra = {**extra, "predictors": predictors}
        steps = sorted(k - 1 for k in records if k > 0)
        meta = {
            "format": FORMAT,
            "trace": self.spec,
            **extra,
            "steps": steps,
            "rows": int(sum(r["rows"] for r in records.values())),
            "logps_bytes": size,
            "logps_sha256": total.hexdigest(),
            "versions": versions(),
            "commit": git_commit(),
            "started": self.started,
            "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        write_atomic(self.out / "meta.json", json.dumps(meta, indent=1, default=str) + "\n")
        shutil.rmtree(self.folder.partial)
        self.close()
        return self.out

    def close(self) -> None:
        """Release the lock (the folder keeps what was written)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None


# ---------------------------------------------------------------------------------------
# Reading


def _not_a_trace(folder: Path, why: str) -> TraceError:
    return TraceError(
        f"{folder} is not a flowsim trace folder ({why}); give the folder passed to "
        "flowsim.integrations.trl.trace(...), or a TRL trainer_state.json"
    )


def read_trace(folder: str | Path) -> tuple[dict[str, Any], pd.DataFrame, bool]:
    """(spec, rows of :data:`COLUMNS`, finished) of a trace folder, checked; TraceError (one line) otherwise.

    A finished folder is checked against its meta.json; an interrupted one (a training that
    crashed or is still running) is read from its chunks, each checked against its record.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise _not_a_trace(folder, "not a folder")
    meta_path, partial = folder / "meta.json", folder / ".partial"
    if meta_path.exists():
        spec = _read_finished(folder, meta_path)
        df = _read_csv(folder / LOGPS)
        finished = True
    elif (partial / "experiment.json").exists():
        spec, df = _read_partial(folder, partial)
        finished = False
    else:
        raise _not_a_trace(folder, "no meta.json and no .partial/experiment.json")
    return _checked_spec(folder, spec), _checked_rows(folder, df, spec), finished


def read_predictors(folder: str | Path) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """(the predictors, their record) of a trace folder read by :func:`read_trace`; (None, {}) if it has none.

    Checked against meta.json (finished) or their record (interrupted); TraceError (one line) if damaged.
    """
    folder = Path(folder)
    if (folder / "meta.json").exists():
        path, record = folder / PREDICTORS, json.loads((folder / "meta.json").read_text()).get("predictors")
        if record is None and not path.exists():
            return None, {}
        if not isinstance(record, dict) or not path.is_file():
            raise TraceError(f"{path}: the predictors and meta.json's record of them disagree: the trace is damaged")
        sha, size, _ = _sha256(path)
        if size != record.get("bytes") or sha != record.get("sha256"):
            raise TraceError(f"{path} does not match its record in meta.json: the trace is damaged (cut or edited)")
    else:
        path = folder / ".partial" / PREDICTORS
        if not path.exists():
            return None, {}
        record, problem = _check_chunk(path, path.with_name(PREDICTORS_RECORD))
        if problem:
            raise TraceError(f"{path} is damaged ({problem}); remove it (its columns are then NaN)")
    df = _read_csv(path)
    if "probe" not in df.columns:
        raise TraceError(f"{path} has no probe column: not a trace's predictors")
    return df.sort_values("probe").reset_index(drop=True), record


def _checked_spec(folder: Path, spec: Any) -> dict[str, Any]:
    """The trace's spec, with a beta > 0 and a list of probe indices (TraceError otherwise: a hand edit?)."""
    beta = spec.get("beta") if isinstance(spec, dict) else None
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not np.isfinite(beta) or beta <= 0:
        raise TraceError(f"{folder}: the trace records no valid beta (got {beta!r}): it is damaged")
    if not isinstance(spec.get("probe_index", []), list):
        raise TraceError(f"{folder}: the trace's probe_index is not a list: it is damaged")
    return spec


def _read_finished(folder: Path, meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise TraceError(f"{meta_path} is damaged (not JSON: {exc})") from None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != FORMAT:
        raise _not_a_trace(folder, f"its meta.json is not a trace's: format {found!r}")
    path = folder / LOGPS
    if not path.is_file():
        raise TraceError(f"{path} is missing: the trace is damaged")
    sha, size, _ = _sha256(path)
    if size != meta.get("logps_bytes") or sha != meta.get("logps_sha256"):
        raise TraceError(
            f"{path} does not match its meta.json ({size:,} bytes where {meta.get('logps_bytes')} were "
            "written, or another sha256): the trace is damaged (truncated or edited)"
        )
    return {**meta["trace"], **{k: meta[k] for k in ("history", "training") if k in meta}}


def _read_partial(folder: Path, partial: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    try:
        spec = json.loads((partial / "experiment.json").read_text())
    except ValueError as exc:
        raise TraceError(f"{partial / 'experiment.json'} is damaged (not JSON: {exc})") from None
    parts = []
    for path in sorted(partial.glob("chunk_*.csv")):
        _, problem = _check_chunk(path, path.with_suffix(".json"))
        if problem:
            raise TraceError(f"{path} is damaged ({problem}); resume the training to record it again, or remove it")
        parts.append(_read_csv(path))
    if not parts:
        raise TraceError(f"{folder} holds an interrupted trace with no recorded step yet")
    return spec, pd.concat(parts, ignore_index=True)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path} cannot be read as a trace ({str(exc).strip().splitlines()[-1]})") from None


def _checked_rows(folder: Path, df: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The rows, with their columns, the reference and a policy step present and no step recorded twice.

    The first policy step is the start (0, or the checkpoint a traced training resumed from).
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise TraceError(f"{folder}: the recorded rows lack the column(s) {', '.join(missing)}: not a trace")
    n = len(spec.get("probe_index", ()))
    if not ((df["what"] == "reference") & (df["step"] == REFERENCE_STEP)).any():
        raise TraceError(f"{folder}: the trace has no record of the reference: it is damaged")
    if not (df["what"] == "policy").any():
        raise TraceError(f"{folder}: the trace has no record of the policy: it is damaged")
    if df.duplicated(["step", "what", "probe"]).any():
        raise TraceError(f"{folder}: a step is recorded twice: the trace is damaged")
    counts = df.groupby("step").size()
    if n and (counts != n).any():
        bad = int(counts[counts != n].index[0])
        raise TraceError(f"{folder}: step {bad} records {int(counts[bad])} pairs where the probe set has {n}")
    if not np.isfinite(df[["logp_w", "logp_l"]].to_numpy(float)).all():
        raise TraceError(f"{folder}: the trace holds a non-finite log-probability (a diverged training?)")
    return df.sort_values(["step", "probe"], kind="stable").reset_index(drop=True)
