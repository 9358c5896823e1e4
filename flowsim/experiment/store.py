"""The run folder: chunks written atomically, resume, the final join, ``meta.json``.

Layout while a sweep runs and after it ends::

    OUT/.partial/experiment.json   the experiment as run (checked again by --resume)
    OUT/.partial/chunk_size        rows per chunk (a resumed sweep must cut rows the same way)
    OUT/.partial/chunk_000123.csv  one file per finished chunk, written atomically
    OUT/flows.csv                  only at the end: the chunks joined in order
    OUT/meta.json                  only at the end: versions, times, counts by status

A chunk is written to a temporary name and renamed, so a killed sweep keeps every chunk
that finished and never leaves a half-written one; ``flows.csv`` appears (again by
rename) only once every chunk is there, so a file with that name is always complete.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path

import pandas as pd


class SweepError(RuntimeError):
    """A sweep that cannot start as asked (e.g. an output folder that is not empty)."""


class RunFolder:
    """One sweep's output folder (see the module docstring)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.partial = self.out / ".partial"
        if self.out.exists() and not self.out.is_dir():
            raise SweepError(f"output folder {self.out} is a file; choose another --out")

    def recorded_chunk_size(self) -> int | None:
        """The chunk size an interrupted sweep here was started with, if any."""
        path = self.partial / "chunk_size"
        return int(path.read_text()) if path.exists() else None

    def prepare(self, spec: str, resume: bool) -> None:
        """Check the folder against ``resume``; never overwrite anything written."""
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
        if self.out.exists() and any(self.out.iterdir()):
            hint = " (an interrupted sweep: add --resume to continue it)" if self.partial.exists() else ""
            raise SweepError(f"output folder {self.out} is not empty{hint}; choose another --out or empty it")
        self.partial.mkdir(parents=True, exist_ok=True)
        write_atomic(self.partial / "experiment.json", spec)

    def chunk_path(self, index: int) -> Path:
        return self.partial / f"chunk_{index:06d}.csv"

    def has_chunk(self, index: int) -> bool:
        return self.chunk_path(index).exists()

    def write_chunk(self, index: int, df: pd.DataFrame) -> None:
        write_atomic(self.chunk_path(index), df.to_csv(index=False))

    def join(self, n_chunks: int) -> Counter:
        """Join the chunks in order into flows.csv, streaming; return the counts by status."""
        tmp = self.out / "flows.csv.tmp"
        with tmp.open("w", newline="") as fh:
            for k in range(n_chunks):
                with self.chunk_path(k).open() as part:
                    if k:
                        part.readline()  # header
                    shutil.copyfileobj(part, fh)
            fh.flush()
            os.fsync(fh.fileno())
        counts = count_status(tmp)
        os.replace(tmp, self.out / "flows.csv")
        return counts

    def finish(self, meta_text: str) -> None:
        write_atomic(self.out / "meta.json", meta_text)
        shutil.rmtree(self.partial)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` by a temporary file, fsync and rename."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def count_status(csv: Path) -> Counter:
    counts: Counter = Counter()
    for part in pd.read_csv(csv, usecols=["status"], chunksize=200_000):
        counts.update(part["status"].tolist())
    return counts


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
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5,
                             check=True)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
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
