"""The local backends' map: every result once, lazily fed, errors surfaced, a dead worker named."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from flowsim.experiment import parallel
from flowsim.experiment.store import SweepError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork backend is Linux's")


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ArithmeticError(f"bad item {x}")
    return x


def die_on_two(x: int) -> int:
    if x == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    return x


@pytest.mark.parametrize("n_jobs", [1, 2, -1])
def test_fork_map_returns_every_result_once(n_jobs):
    with parallel.backend("fork", None, n_jobs) as pmap:
        got = list(pmap(square, range(20)))
    assert sorted(got) == [x * x for x in range(20)]


def test_fork_map_feeds_items_lazily():
    """At most IN_FLIGHT tasks per worker are taken ahead of the results: memory stays flat in items."""
    taken = []

    def items():
        for i in range(50):
            taken.append(i)
            yield i

    with parallel.backend("fork", None, 2) as pmap:
        it = pmap(square, items())
        next(it)
        assert len(taken) <= parallel.IN_FLIGHT * 2 + 1
        rest = list(it)
    assert len(rest) == 49 and len(taken) == 50


def test_a_worker_exception_is_raised_in_the_parent():
    with parallel.backend("fork", None, 2) as pmap, pytest.raises(ArithmeticError, match="bad item 3"):
        list(pmap(fail_on_three, range(8)))


def test_a_dead_worker_is_a_sweep_error_that_says_what_to_do():
    with parallel.backend("fork", None, 2) as pmap, pytest.raises(SweepError, match=r"worker process died.*--resume"):
        list(pmap(die_on_two, range(8)))


def test_the_backends_and_worker_counts():
    assert parallel.default_backend() == "fork"
    assert parallel.n_workers(3) == 3
    assert parallel.n_workers(-1) == os.cpu_count()
    assert parallel.n_workers(-(os.cpu_count() or 1) - 5) == 1
    with pytest.raises(ValueError, match="got 0"):
        parallel.n_workers(0)
    with pytest.raises(ValueError, match="backend must be one of fork, loky, dask; got 'threads'"):
        parallel.backend("threads", None, 1).__enter__()


@pytest.mark.parametrize("bad", [0, 2.0, True, "2"])
def test_n_jobs_must_be_a_whole_number(bad):
    with pytest.raises(ValueError, match="n_jobs must be a whole number"):
        parallel.n_workers(bad)


def test_all_cores_means_those_this_process_may_use(monkeypatch):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert parallel.usable_cpus() == 1 and parallel.n_workers(-1) == 1
