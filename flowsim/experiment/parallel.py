"""Where chunks are computed: processes forked from this one, joblib's loky processes, or a
dask.distributed cluster.

Every backend is entered with :func:`backend`, which checks what can fail (dask missing, a
scheduler that does not answer) before the caller writes anything, and yields a *map*:
``map(fn, items)`` returns ``fn(item)`` for each item as they finish, keeping at most two
tasks per worker in flight so that memory does not grow with the number of items.

"fork" (the default on Linux) forks workers that inherit the modules this process has
already imported, so they start in milliseconds; loky starts fresh interpreters, which must
import numpy, scipy and flowsim again (about a second each, more on a busy machine).  On a
sweep of 10^4 batched flows, that start-up is most of the run.

A worker whose parent dies (``kill -9`` of ``flowsim run``) does not notice by itself: it
waits for its next task.  Each fork or loky worker therefore starts :func:`_watch_parent`, a
thread that ends the worker within :data:`WATCH_INTERVAL` seconds of its parent's death,
even in the middle of a chunk.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from flowsim._validation import ParamError
from flowsim.experiment.store import SweepError

BACKENDS = ("fork", "loky", "dask")
#: Seconds to wait for a dask scheduler before giving up.
SCHEDULER_TIMEOUT = 10.0
#: Seconds between a worker's checks that its parent is alive.
WATCH_INTERVAL = 0.5
#: Tasks in flight per worker: enough to keep every worker busy, few enough to bound memory.
IN_FLIGHT = 2

Map = Callable[[Callable, Iterable], Iterator]


def default_backend() -> str:
    """ "fork" on Linux, "loky" elsewhere (macOS system libraries are not fork-safe; Windows has no fork)."""
    return "fork" if sys.platform.startswith("linux") else "loky"


def n_workers(n_jobs: int) -> int:
    """Workers for ``n_jobs`` as joblib counts them: n >= 1 as given, -1 all cores, -2 all but one, ...

    "All cores" are those this process may run on (its CPU affinity: taskset, a batch
    scheduler's allocation), not the machine's.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ParamError(
            "n_jobs", "must be a whole number of workers >= 1, or negative to count back from all cores", n_jobs
        )
    return n_jobs if n_jobs > 0 else max(1, usable_cpus() + 1 + n_jobs)


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def backend(name: str, scheduler: Any, n_jobs: int, timeout: float = SCHEDULER_TIMEOUT) -> Iterator[Map]:
    """A map over the backend's workers, connected for the duration.

    Everything that can fail (dask missing, no scheduler address, a scheduler that does not
    answer within ``timeout`` seconds) fails on entry, before the caller writes anything.
    """
    if name == "fork":
        yield lambda fn, items: _fork_map(fn, items, n_workers(n_jobs))
    elif name == "loky":
        kwargs = {"n_jobs": n_jobs, "backend": "loky", "initializer": _watch_parent, "initargs": (os.getpid(),)}
        yield lambda fn, items: _joblib_map(fn, items, kwargs)
    elif name == "dask":
        with _dask(scheduler, timeout) as kwargs:
            yield lambda fn, items: _joblib_map(fn, items, kwargs)
    else:
        raise ParamError("backend", f"must be one of {', '.join(BACKENDS)}", name)


def _fork_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """fn(item) for each item on ``workers`` forked processes, results as they finish."""
    if workers == 1:  # no process to start: compute here
        yield from map(fn, items)
        return
    items = iter(items)
    executor = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker, initargs=(os.getpid(),)
    )
    finished = False
    try:
        running = {executor.submit(fn, item) for item in itertools.islice(items, IN_FLIGHT * workers)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()  # a worker's exception is raised here
                running |= {executor.submit(fn, item) for item in itertools.islice(items, 1)}
        finished = True
    except BrokenProcessPool:
        raise SweepError(
            "a worker process died (killed, or out of memory?); finished chunks are kept: free memory or "
            "lower --n-jobs, then run again with --resume"
        ) from None
    finally:
        _shut(executor, finished)


def _shut(executor: ProcessPoolExecutor, finished: bool) -> None:
    """Shut the pool down; after an error or an interrupt, end its workers at once, mid-chunk."""
    if not finished:
        if hasattr(executor, "terminate_workers"):  # Python >= 3.14
            executor.terminate_workers()
        else:
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def _init_worker(parent: int) -> None:
    """In a forked worker: Ctrl-C is the parent's to handle, SIGTERM ends the worker, and a dead
    parent ends it too."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler would raise in the worker
    _watch_parent(parent)


def _joblib_map(fn: Callable, items: Iterable, kwargs: dict[str, Any]) -> Iterator:
    import joblib

    parallel = joblib.Parallel(return_as="generator_unordered", **kwargs)
    return parallel(joblib.delayed(fn)(item) for item in items)


@contextlib.contextmanager
def _dask(scheduler: Any, timeout: float) -> Iterator[dict[str, Any]]:
    if not timeout > 0:
        raise ParamError("the scheduler timeout", "must be a number of seconds > 0", timeout)
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("the dask backend needs dask.distributed: pip install 'flowsim[dask]'") from None
    if scheduler is None:
        raise SweepError("the dask backend needs a scheduler address (--scheduler tcp://HOST:8786)")
    client = scheduler if isinstance(scheduler, Client) else _connect(Client, scheduler, timeout)
    try:
        import joblib

        with joblib.parallel_config(backend="dask"):
            yield {"n_jobs": -1}
    finally:
        if client is not scheduler:
            client.close()


def _connect(client_cls, address: str, timeout: float):
    try:
        return client_cls(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SweepError(
            f"cannot reach the dask scheduler at {address} within {timeout:g} s ({exc}); check the address "
            f"and that the scheduler runs, or raise --scheduler-timeout"
        ) from None
    except (ValueError, TypeError) as exc:
        raise SweepError(f"bad dask scheduler address {address!r} ({exc}); give one like tcp://HOST:8786") from None


def _watch_parent(parent: int) -> None:
    """In a worker: a daemon thread that exits the process once ``parent`` (the pool's owner) is gone.

    An orphan is re-parented (to init or a subreaper), so a changed parent pid means the
    owner died; the pool's owner passes its own pid, so this holds for nested pools too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="flowsim-watch-parent", daemon=True).start()


__all__ = ["BACKENDS", "backend", "default_backend", "n_workers"]
