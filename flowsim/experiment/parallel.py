"""Where chunks are computed: joblib's loky processes, or a dask.distributed cluster.

A loky worker whose parent dies (``kill -9`` of ``flowsim run``) does not notice by itself:
it waits for its next task for the executor's idle timeout (minutes).  Each worker therefore
starts :func:`_watch_parent`, a thread that ends the worker within :data:`WATCH_INTERVAL`
seconds of its parent's death, even in the middle of a chunk.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import joblib

from flowsim.experiment.store import SweepError

BACKENDS = ("loky", "dask")
#: Seconds to wait for a dask scheduler before giving up.
SCHEDULER_TIMEOUT = 10.0
#: Seconds between a loky worker's checks that its parent is alive.
WATCH_INTERVAL = 0.5


@contextlib.contextmanager
def backend(name: str, scheduler: Any, n_jobs: int, timeout: float = SCHEDULER_TIMEOUT) -> Iterator[dict[str, Any]]:
    """joblib.Parallel keyword arguments for the backend, connected for the duration.

    Everything that can fail (dask missing, no scheduler address, a scheduler that does not
    answer within ``timeout`` seconds) fails on entry, before the caller writes anything.
    """
    if name == "loky":
        yield {"n_jobs": n_jobs, "backend": "loky", "initializer": _watch_parent, "initargs": (os.getpid(),)}
        return
    if name != "dask":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    if not timeout > 0:
        raise ValueError(f"the scheduler timeout must be a number of seconds > 0; got {timeout!r}")
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("the dask backend needs dask.distributed: pip install 'flowsim[dask]'") from None
    if scheduler is None:
        raise SweepError("the dask backend needs a scheduler address (--scheduler tcp://HOST:8786)")
    client = scheduler if isinstance(scheduler, Client) else _connect(Client, scheduler, timeout)
    try:
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


def map_unordered(fn, items: Iterable, kwargs: dict[str, Any]) -> Iterator:
    """fn(item) for each item, results as they finish."""
    parallel = joblib.Parallel(return_as="generator_unordered", **kwargs)
    return parallel(joblib.delayed(fn)(item) for item in items)


def _watch_parent(parent: int) -> None:
    """In a loky worker: a daemon thread that exits the process once ``parent`` (the pool's owner) is gone.

    An orphan is re-parented (to init or a subreaper), so a changed parent pid means the
    owner died; the pool's owner passes its own pid, so this holds for nested pools too.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="flowsim-watch-parent", daemon=True).start()
