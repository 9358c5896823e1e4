"""Where chunks are computed: joblib's loky processes, or a dask.distributed cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import joblib

from flowsim.experiment.store import SweepError

BACKENDS = ("loky", "dask")


@contextlib.contextmanager
def backend(name: str, scheduler: Any, n_jobs: int) -> Iterator[dict[str, Any]]:
    """joblib.Parallel keyword arguments for the backend, connected for the duration."""
    if name == "loky":
        yield {"n_jobs": n_jobs, "backend": "loky"}
        return
    if name != "dask":
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("the dask backend needs dask.distributed: pip install 'flowsim[dask]'") from None
    if scheduler is None:
        raise SweepError("the dask backend needs a scheduler address (--scheduler tcp://HOST:8786)")
    client = scheduler if isinstance(scheduler, Client) else _connect(Client, scheduler)
    try:
        with joblib.parallel_config(backend="dask"):
            yield {"n_jobs": -1}
    finally:
        if client is not scheduler:
            client.close()


def _connect(client_cls, address: str, timeout: float = 10.0):
    try:
        return client_cls(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot reach the dask scheduler at {address} within {timeout:g} s ({exc})") from None


def map_unordered(fn, items: Iterable, kwargs: dict[str, Any]) -> Iterator:
    """fn(item) for each item, results as they finish."""
    parallel = joblib.Parallel(return_as="generator_unordered", **kwargs)
    return parallel(joblib.delayed(fn)(item) for item in items)
