"""The run folder: one writer at a time, chunks written atomically and checksummed, resume,
the final join, ``meta.json``, and the check of a finished folder.

Layout while a sweep runs and after it ends::

    OUT/.lock                       held (flock) by the one process writing here, released when it exits
    OUT/.lock.owner                 that process's pid, host and start time, for the "in use" message
    OUT/.partial/experiment.json    the experiment as run (checked again by --resume)
    OUT/.partial/chunk_size         rows per chunk (a resumed sweep must cut rows the same way)
    OUT/.partial/chunk_000123.csv   one file per finished chunk, written atomically
    OUT/.partial/chunk_000123.json  its rows, bytes, sha256 and counts by status, written after it
    OUT/flows.csv                   only at the end: the chunks joined in order
    OUT/run.json                    only at the end: how this run went (times, workers, host, load);
                                    it differs on every run, so it is not committed with results
    OUT/meta.json                   last: the experiment, versions, commit, counts by status, and
                                    the rows, bytes and sha256 of flows.csv (the same on a rerun)

A chunk is written to a temporary name and renamed, so a killed sweep keeps every chunk
that finished and never leaves a half-written one under a chunk's name; its record is
written after it, so a chunk without a record (or one that no longer matches it: a damaged
disk, a hand edit) is computed again by ``--resume``.  ``flows.csv`` appears (again by
rename) only once every chunk is there, so a file with that name is always complete, and
:func:`verify_run_folder` checks it against ``meta.json`` before it is read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from flowsim.errors import UserError

#: The run record's volatile half (times, host, load), written beside meta.json and never committed.
RUN_FILE = "run.json"
#: Files of the lock beside the results; a folder holding only these is empty.
LOCK, OWNER = ".lock", ".lock.owner"
_LOCK_FILES = frozenset({LOCK, OWNER, OWNER + ".tmp"})
_BLOCK = 1 << 20


class SweepError(UserError, RuntimeError):
    """A sweep that cannot start or go on as asked (e.g. an output folder that is not empty).

    A RuntimeError too, as it was before :class:`~flowsim.errors.UserError` existed.
    """


class DamagedResults(SweepError):
    """A results folder whose flows.csv does not match its meta.json, or cannot be read as a flows table."""


class UncheckedResults(UserWarning):
    """A results folder whose flows.csv cannot be checked (no meta.json, or one without a checksum)."""


class RunFolder:
    """One sweep's output folder (see the module docstring)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.partial = self.out / ".partial"
        check_writable(self.out, what="output folder", option="--out")

    # -- checks (no writes) ------------------------------------------------------------

    def recorded_chunk_size(self) -> int | None:
        """The chunk size an interrupted sweep here was started with, if any."""
        path = self.partial / "chunk_size"
        if not path.exists():
            return None
        try:
            return int(path.read_text())
        except ValueError:
            raise SweepError(f"{path} is damaged (not a whole number); remove {self.partial} to start again") from None

    def check(self, spec: str, resume: bool) -> None:
        """Every check of the folder that needs no write: in use, finished, resumable, empty."""
        self._check_not_in_use()
        self._check_state(spec, resume)

    def _check_not_in_use(self) -> None:
        path = self.out / LOCK
        if not path.exists():
            return
        probe = FileLock(path, timeout=0)
        try:
            probe.acquire()
        except Timeout:
            raise self._in_use() from None
        except OSError:
            return  # cannot even open it (read-only?): the writes will say so
        probe.release()

    def _in_use(self) -> SweepError:
        who = "another process"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            o = json.loads((self.out / OWNER).read_text())
            who = f"pid {o['pid']} on {o['host']}, started {o['started']}"
        return SweepError(
            f"{self.out} is in use by another flowsim run ({who}); wait for it to finish, or choose another --out"
        )

    def _check_state(self, spec: str, resume: bool) -> None:
        if (self.out / "flows.csv").exists():
            raise SweepError(
                f"{self.out} already holds a finished sweep (flows.csv); choose another --out or move it away"
            )
        if resume:
            recorded = self.partial / "experiment.json"
            if not recorded.exists():
                raise SweepError(
                    f"nothing to resume in {self.out}: no interrupted sweep there (no .partial/experiment.json)"
                )
            if recorded.read_text() != spec:
                raise SweepError(
                    f"cannot resume in {self.out}: it holds an interrupted sweep of a different experiment"
                )
            return
        if self.out.is_dir() and any(p.name not in _LOCK_FILES for p in self.out.iterdir()):
            hint = " (an interrupted sweep: add --resume to continue it)" if self.partial.exists() else ""
            raise SweepError(f"output folder {self.out} is not empty{hint}; choose another --out or empty it")

    # -- the writer --------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Create the folder and hold its lock for the duration; SweepError if another process holds it.

        A folder this made and left with nothing in it (a failure before the first write)
        is removed again; after a finished sweep the lock files are removed.
        """
        created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.out / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise self._in_use() from None
        try:
            started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "argv": sys.argv}
            write_atomic(self.out / OWNER, json.dumps(owner) + "\n")
            yield
        finally:
            with contextlib.suppress(OSError):
                (self.out / OWNER).unlink(missing_ok=True)
                if (self.out / "flows.csv").exists() or not self.partial.exists():
                    (self.out / LOCK).unlink(missing_ok=True)  # still held: a waiter finds the folder done
            lock.release()
            if created:
                with contextlib.suppress(OSError):
                    self.out.rmdir()  # only if empty

    def prepare(self, spec: str, resume: bool, chunk_size: int) -> None:
        """Check the folder again (under the lock) and record the sweep; never overwrite anything written."""
        self._check_state(spec, resume)
        if resume:
            for tmp in [*self.partial.glob("*.tmp"), self.out / "flows.csv.tmp"]:  # writes cut short
                tmp.unlink(missing_ok=True)
        else:
            self.partial.mkdir(parents=True, exist_ok=True)
            write_atomic(self.partial / "experiment.json", spec)
        write_atomic(self.partial / "chunk_size", str(chunk_size))

    # -- chunks ------------------------------------------------------------------------

    def chunk_path(self, index: int) -> Path:
        return self.partial / f"chunk_{index:06d}.csv"

    def record_path(self, index: int) -> Path:
        return self.partial / f"chunk_{index:06d}.json"

    def write_chunk(
        self, index: int, data: bytes, rows: int, counts: dict[str, int], engines: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """Write a chunk's CSV bytes, then its record (rows, bytes, sha256, counts by status and by engine);
        return the record."""
        record = {
            "rows": int(rows),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "counts_by_status": {str(k): int(v) for k, v in counts.items()},
            "counts_by_engine": {str(k): int(v) for k, v in (engines or {}).items()},
        }
        write_atomic(self.chunk_path(index), data)
        write_atomic(self.record_path(index), json.dumps(record) + "\n")
        return record

    def verified_chunks(self, n_chunks: int, report: Callable[[str], None]) -> dict[int, dict[str, Any]]:
        """The records of the finished chunks that match them; each damaged chunk is reported and removed."""
        good: dict[int, dict[str, Any]] = {}
        for path in sorted(self.partial.glob("chunk_*.csv")):
            try:
                k = int(path.stem.removeprefix("chunk_"))
            except ValueError:
                continue
            if k >= n_chunks:
                continue
            record, problem = _check_chunk(path, self.record_path(k))
            if problem:
                report(f"{path} is damaged ({problem}); computing it again")
                path.unlink()
                self.record_path(k).unlink(missing_ok=True)
                continue
            good[k] = record
        return good

    def join(self, records: dict[int, dict[str, Any]], n_chunks: int) -> dict[str, Any]:
        """Join the chunks in order into flows.csv, streaming, each checked against its record.

        Returns the rows, bytes and sha256 of flows.csv and the counts by status (summed
        from the records).  Free space is checked first; the file appears by rename, and a
        join that fails removes its temporary file.
        """
        missing = [k for k in range(n_chunks) if k not in records]
        if missing:
            raise SweepError(f"{self.chunk_path(missing[0])} is missing; run again with --resume to compute it")
        need = sum(records[k]["bytes"] for k in range(n_chunks))
        free = shutil.disk_usage(self.out).free
        if free < need:
            raise SweepError(
                f"disk full: joining the chunks into {self.out / 'flows.csv'} needs {_mb(need)}, {_mb(free)} free "
                f"there; free space and run again with --resume"
            )
        tmp, total, header = self.out / "flows.csv.tmp", hashlib.sha256(), None
        try:
            with tmp.open("wb") as fh:

                def write(block: bytes) -> None:
                    fh.write(block)
                    total.update(block)

                for k in range(n_chunks):
                    digest = hashlib.sha256()
                    with self.chunk_path(k).open("rb") as part:
                        first = part.readline()
                        digest.update(first)
                        if header is None:
                            header = first
                            write(first)
                        elif first != header:
                            raise SweepError(
                                f"{self.chunk_path(k)} has other columns than chunk 0 (written by another flowsim "
                                f"version?); remove {self.partial} and run the sweep again"
                            )
                        while block := part.read(_BLOCK):
                            digest.update(block)
                            write(block)
                    if digest.hexdigest() != records[k]["sha256"]:
                        raise SweepError(
                            f"{self.chunk_path(k)} changed on disk during the sweep; run again with --resume "
                            f"(it computes damaged chunks again)"
                        )
                fh.flush()
                os.fsync(fh.fileno())
                size = fh.tell()
            os.replace(tmp, self.out / "flows.csv")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        counts: Counter = Counter()
        engines: Counter = Counter()
        for k in range(n_chunks):
            counts.update(records[k].get("counts_by_status", {}))
            engines.update(records[k].get("counts_by_engine", {}))  # absent in chunks of an earlier flowsim
        rows = sum(records[k]["rows"] for k in range(n_chunks))
        return {"rows": rows, "bytes": size, "sha256": total.hexdigest(), "counts": counts, "engines": engines}

    def finish(self, meta_text: str) -> None:
        write_atomic(self.out / "meta.json", meta_text)
        shutil.rmtree(self.partial)


def _check_chunk(path: Path, record_path: Path) -> tuple[dict[str, Any], str | None]:
    """A chunk's record and what is wrong with the chunk (None if it matches its record)."""
    try:
        record = json.loads(record_path.read_text())
        int(record["rows"])
        size, sha = int(record["bytes"]), str(record["sha256"])
    except FileNotFoundError:
        return {}, "it has no record of its rows and checksum"
    except (OSError, ValueError, KeyError, TypeError):
        return {}, "its record is unreadable"
    actual = path.stat().st_size
    if actual != size:
        return record, f"{actual:,} bytes where {size:,} were written{' (cut short)' if actual < size else ''}"
    if _sha256(path)[0] != sha:
        return record, "its sha256 differs from the one recorded when it was written"
    return record, None


def _sha256(path: Path) -> tuple[str, int, int]:
    """sha256, size and number of newlines of a file, streamed."""
    digest, size, lines = hashlib.sha256(), 0, 0
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), size, lines


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def check_writable(path: Path, *, what: str, option: str) -> None:
    """SweepError unless ``path`` is (or can be made as) a writable folder; nothing is created."""
    if path.exists() and not path.is_dir():
        raise SweepError(f"{what} {path} is a file; choose another {option}")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise SweepError(f"cannot create {what} {path}: {existing} is a file, not a folder; choose another {option}")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise SweepError(f"cannot write to {existing} (read-only or permission denied); choose another {option}")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` by a temporary file, fsync and rename."""
    tmp = path.with_name(path.name + ".tmp")
    raw = data.encode() if isinstance(data, str) else data
    try:
        with tmp.open("wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# Reading a finished folder


def verify_run_folder(folder: str | Path) -> None:
    """Check ``folder/flows.csv`` against the rows, bytes and sha256 recorded in ``folder/meta.json``.

    Raises :class:`DamagedResults` (one line: what is wrong, how to regenerate) on a
    mismatch; warns (:class:`UncheckedResults`) when there is nothing to check against: no
    meta.json (a hand-made flows.csv) or one written before the checksum was recorded.
    """
    folder = Path(folder)
    csv, meta_path = folder / "flows.csv", folder / "meta.json"
    if not meta_path.exists():
        warnings.warn(f"{folder} has no meta.json: {csv} is read unchecked", UncheckedResults, stacklevel=2)
        return
    try:
        meta = json.loads(meta_path.read_text())
        name = meta.get("experiment", {}).get("name", "?")
    except (ValueError, AttributeError) as exc:
        raise DamagedResults(f"{meta_path} is not a valid meta record ({exc}); {_regenerate(folder)}") from None
    if "flows_sha256" not in meta:
        warnings.warn(
            f"{meta_path} records no checksum (an earlier flowsim): {csv} is read unchecked",
            UncheckedResults,
            stacklevel=2,
        )
        return
    sha, size, lines = _sha256(csv)
    rows, want = meta.get("rows"), meta.get("flows_bytes")
    if size != want or sha != meta["flows_sha256"]:
        if size != want and isinstance(rows, int) and isinstance(want, int):
            what = f"it has {max(lines - 1, 0):,} complete rows ({size:,} bytes) where meta.json records {rows:,} "
            what += f"({want:,} bytes)"
        else:
            what = "its sha256 differs from the one meta.json records"
        raise DamagedResults(f"{csv} does not match its meta.json: {what}; {_regenerate(folder, name)}")


def read_meta(folder: str | Path) -> dict[str, Any]:
    """A run folder's record: meta.json, with run.json's volatile facts added where that file is there."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    run = folder / RUN_FILE
    return meta | json.loads(run.read_text()) if run.exists() else meta


def _regenerate(folder: Path, name: str = "?") -> str:
    exp = f"the experiment file of '{name}'" if name != "?" else "the experiment file"
    return f"regenerate it: move {folder} away and run `flowsim run EXPERIMENT.toml --out {folder}` ({exp})"


#: Columns that hold numbers wherever they appear (other columns are checked by their readers).
_NUMERIC = (
    "ref_w",
    "ref_l",
    "p1_0",
    "p2_0",
    "x1_0",
    "x2_0",
    "t_stop",
    "p1_final",
    "p2_final",
    "x1_final",
    "x2_final",
    "loss_0",
    "loss_final",
    "t_w",
    "t_l",
    "nfev",
)


def read_flows(path: str | Path) -> pd.DataFrame:
    """Read a flows.csv (a file, or a results folder holding one); DamagedResults if it is not a flows table."""
    path = Path(path)
    if path.is_dir():
        path = path / "flows.csv"
    try:
        df = pd.read_csv(path, dtype={"message": str}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DamagedResults(f"{path} cannot be read as a flows table ({msg}); {_regenerate(path.parent)}") from None
    for col in (c for c in _NUMERIC if c in df.columns):
        if df[col].dtype.kind not in "fiub":
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            i = int(bad.to_numpy().argmax())
            raise DamagedResults(
                f"{path}: column {col!r} holds a non-number ({df[col].iloc[i]!r} in data row {i + 1}); "
                f"{_regenerate(path.parent)}"
            )
    if "message" in df.columns:
        df = df.fillna({"message": ""})
    return df


# ---------------------------------------------------------------------------------------
# Provenance


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("flowsim", "numpy", "scipy", "pandas", "joblib", "matplotlib", "tqdm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def git_commit() -> str | None:
    """The commit flowsim's source is at, with "-dirty" if tracked files changed; None outside git."""
    here = Path(__file__).parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
