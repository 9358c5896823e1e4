"""The run folder under faults (issue #14): damaged chunks recomputed by --resume, a damaged
flows.csv refused, one writer at a time, a full or read-only disk, SIGTERM and kill -9.

Each test reproduces a fault and checks the behaviour the CLI promises: exit 2 with one line
(no traceback) naming what is wrong and what to do, 130 when interrupted, and never a wrong
flows.csv."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flowsim.cli import main
from flowsim.experiment import store
from flowsim.experiment.store import RunFolder

EXACT = """name = "exact"
[loss]
beta = [0.1, 0.5]
[grid]
p1 = {start = 0.05, stop = 1.0, num = 12}
p2 = {start = 0.05, stop = 1.0, num = 12}
[solver]
engine = "exact"
"""
#: Integrated, a few thousand flows: long enough to be caught mid-sweep.
SLOW = """name = "slow"
[loss]
beta = [0.1, 0.3]
[grid]
p1 = {start = 0.02, stop = 1.0, num = 40}
p2 = {start = 0.02, stop = 1.0, num = 40}
"""


@pytest.fixture
def exact(tmp_path) -> Path:
    path = tmp_path / "exact.toml"
    path.write_text(EXACT)
    return path


@pytest.fixture
def slow(tmp_path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    return path


def run(exp: Path, out: Path, *extra: str) -> int:
    return main(["run", str(exp), "--out", str(out), "--n-jobs", "1", "--chunk-size", "10", "--quiet", *extra])


def interrupt_after(monkeypatch, n: int, exc: BaseException) -> None:
    """Make RunFolder.write_chunk raise ``exc`` once ``n`` chunks are written."""
    real, written = RunFolder.write_chunk, []

    def write_chunk(self, index, *a, **k):
        if len(written) == n:
            raise exc
        written.append(index)
        return real(self, index, *a, **k)

    monkeypatch.setattr(RunFolder, "write_chunk", write_chunk)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("flowsim: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> bytes:
    """flows.csv of an uninterrupted run of EXACT (once: three tests compare with it)."""
    folder = tmp_path_factory.mktemp("whole")
    (folder / "exact.toml").write_text(EXACT)
    assert run(folder / "exact.toml", folder / "whole") == 0
    return (folder / "whole" / "flows.csv").read_bytes()


def start(exp: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flowsim", "run", str(exp), "--out", str(out), "--chunk-size", "10", "--quiet", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def records(out: Path) -> list[Path]:
    return sorted((out / ".partial").glob("chunk_*.json"))


def gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---------------------------------------------------------------------------------------
# Integrity


def test_resume_recomputes_damaged_chunks(tmp_path, exact, whole, monkeypatch, capsys):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_after(m, 6, KeyboardInterrupt())
        assert run(exact, out) == 130
    assert "add --resume" in capsys.readouterr().err
    partial = out / ".partial"
    assert len(records(out)) == 6 and not (out / "flows.csv").exists()
    record = json.loads((partial / "chunk_000000.json").read_text())
    data = (partial / "chunk_000000.csv").read_bytes()
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["rows"] == 10
    # damage: cut mid-line, cut at a line boundary, a record lost, a write left half done
    one = partial / "chunk_000001.csv"
    one.write_bytes(one.read_bytes()[: len(one.read_bytes()) // 2 + 7])
    two = partial / "chunk_000002.csv"
    lines = two.read_bytes().splitlines(keepends=True)
    two.write_bytes(b"".join(lines[:-3]))
    three = partial / "chunk_000003.csv"  # the same size, one digit changed: only the checksum can tell
    flipped = bytearray(three.read_bytes())
    at = flipped.rindex(b"0.", 0, len(flipped) - 40) + 2
    flipped[at] = ord("7") if flipped[at] != ord("7") else ord("3")
    three.write_bytes(bytes(flipped))
    (partial / "chunk_000004.json").unlink()
    (partial / "chunk_000005.csv.tmp").write_bytes(b"beta,ref_w\n0.1,")
    assert run(exact, out, "--resume") == 0
    err = capsys.readouterr().err
    damaged = [line for line in err.splitlines() if "is damaged" in line]
    assert [Path(line.split()[2]).name for line in damaged] == [
        "chunk_000001.csv",
        "chunk_000002.csv",
        "chunk_000003.csv",
        "chunk_000004.csv",
    ]
    assert "cut short" in damaged[0] and "cut short" in damaged[1] and "no record" in damaged[3]
    assert "its sha256 differs from the one recorded" in damaged[2]
    assert (out / "flows.csv").read_bytes() == whole
    assert sorted(p.name for p in out.iterdir()) == ["flows.csv", "meta.json", "run.json"]  # no lock, .partial, .tmp
    meta = json.loads((out / "meta.json").read_text())
    assert meta["flows_sha256"] == hashlib.sha256(whole).hexdigest() and meta["flows_bytes"] == len(whole)
    assert meta["rows"] == 288 == sum(meta["counts_by_status"].values())


def test_analyze_refuses_a_damaged_flows_csv(tmp_path, exact, monkeypatch, capsys):
    out = tmp_path / "out"
    assert run(exact, out) == 0
    good = (out / "flows.csv").read_bytes()
    cut = good[: len(good) * 2 // 3]
    (out / "flows.csv").write_bytes(cut)
    capsys.readouterr()
    for cmd in (["analyze", str(out)], ["analyze", str(out / "flows.csv")], ["plot", str(out)]):
        assert main(cmd) == 2
        line = one_error_line(capsys.readouterr().err)
        assert "does not match its meta.json" in line and "records 288" in line and "regenerate it" in line
    assert not (out / "regions.csv").exists() and not (out / "figures").exists()
    # the same size, one digit changed: only the checksum can tell
    flipped = bytearray(good)
    flipped[-30] = ord("7") if flipped[-30] != ord("7") else ord("3")
    (out / "flows.csv").write_bytes(bytes(flipped))
    assert main(["analyze", str(out)]) == 2
    assert "sha256 differs" in one_error_line(capsys.readouterr().err)
    # without meta.json (a hand-made flows.csv) it is read, with a warning
    (out / "flows.csv").write_bytes(good)
    (out / "meta.json").unlink()
    assert main(["analyze", str(out / "flows.csv")]) == 0
    assert "flowsim: warning:" in capsys.readouterr().err and (out / "regions.csv").exists()


# ---------------------------------------------------------------------------------------
# One writer at a time


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path, slow, capsys):
    out = tmp_path / "out"
    first = start(slow, out, "--n-jobs", "1")
    try:
        wait_for(lambda: len(records(out)) >= 1, what="the first run's first chunk")
        for extra in ((), ("--resume",)):
            assert run(slow, out, *extra) == 2
            line = one_error_line(capsys.readouterr().err)
            assert f"in use by another flowsim run (pid {first.pid} on " in line, line
            assert "--resume" not in line
        owner = json.loads((out / ".lock.owner").read_text())
        assert owner["pid"] == first.pid
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # no writer alive: now the hint is to resume
    assert run(slow, out) == 2
    assert "add --resume" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------
# The environment


def test_disk_full_while_writing_chunks(tmp_path, exact, whole, monkeypatch, capsys):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_after(m, 3, OSError(errno.ENOSPC, "No space left on device", str(out / ".partial" / "x")))
        assert run(exact, out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "disk full" in line and "free space and run again with --resume" in line
    assert len(records(out)) == 3
    assert run(exact, out, "--resume") == 0
    assert (out / "flows.csv").read_bytes() == whole


def test_disk_full_before_the_join(tmp_path, exact, whole, monkeypatch, capsys):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(store.shutil, "disk_usage", lambda path: _Usage(free=1000))
        assert run(exact, out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("flowsim: error: disk full: joining the chunks") and "run again with --resume" in line
    assert not (out / "flows.csv").exists() and not (out / "flows.csv.tmp").exists()
    assert len(records(out)) == 30
    assert run(exact, out, "--resume") == 0
    assert (out / "flows.csv").read_bytes() == whole


class _Usage:
    def __init__(self, free: int) -> None:
        self.total, self.used, self.free = 10**12, 10**12 - free, free


def test_a_failed_join_leaves_no_temporary_file(tmp_path, exact, monkeypatch, capsys):
    out = tmp_path / "out"
    real_replace = store.os.replace

    def replace(src, dst):
        if Path(dst).name == "flows.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    assert run(exact, out) == 2
    assert "disk full" in one_error_line(capsys.readouterr().err)
    assert not (out / "flows.csv.tmp").exists() and not (out / "flows.csv").exists()
    assert len(records(out)) == 30


def test_read_only_output(tmp_path, exact, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:  # a real read-only folder; root writes anyway, so it gets the check's verdict injected
        ro.chmod(0o555)
    else:
        monkeypatch.setattr(store.os, "access", lambda path, mode: Path(path) != ro)
    try:
        assert run(exact, ro / "out") == 2
    finally:
        ro.chmod(0o755)
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot write to {ro} (read-only or permission denied)" in line
    assert list(ro.iterdir()) == []  # nothing created
    # a file system that turns read-only mid-sweep
    monkeypatch.undo()
    out = tmp_path / "out"
    interrupt_after(monkeypatch, 2, OSError(errno.EROFS, "Read-only file system", str(out / ".partial")))
    assert run(exact, out) == 2
    assert f"cannot write to {out / '.partial'} (read-only or permission denied)" in one_error_line(
        capsys.readouterr().err
    )


# ---------------------------------------------------------------------------------------
# Signals and orphans


@pytest.mark.parametrize("backend", ["fork", "loky"])
def test_sigterm_exits_130_and_keeps_the_chunks(tmp_path, slow, backend):
    out = tmp_path / "out"
    proc = start(slow, out, "--n-jobs", "2", "--backend", backend)
    try:
        wait_for(lambda: len(records(out)) >= 3, what="three chunks")
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "finished chunks are kept: add --resume" in err
    kept = records(out)
    assert len(kept) >= 3 and all(p.with_suffix(".csv").exists() for p in kept)
    wait_for(lambda: all(gone(w) for w in workers), timeout=10, what="the workers to exit")


@pytest.mark.parametrize("backend", ["fork", "loky"])
def test_workers_exit_after_kill_9_of_the_parent(tmp_path, slow, backend):
    out = tmp_path / "out"
    proc = start(slow, out, "--n-jobs", "2", "--backend", backend)
    parent = psutil.Process(proc.pid)
    try:
        wait_for(lambda: len(records(out)) >= 1, what="a chunk")
        workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
        descendants = parent.children(recursive=True)
        assert len(workers) >= 2
        proc.kill()  # the parent only: its workers are orphaned
        proc.wait()
        t0 = time.monotonic()
        wait_for(lambda: all(gone(w) for w in descendants), timeout=10, what="the orphaned workers to exit")
        print(f"workers gone {time.monotonic() - t0:.2f} s after kill -9 of the parent")
    finally:
        for c in descendants if "descendants" in locals() else []:
            if not gone(c):
                c.kill()
    assert not (out / "flows.csv").exists()
