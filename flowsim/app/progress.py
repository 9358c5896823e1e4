"""Progress of the pipelines' longer steps, on stderr: a line per step with its time, a bar over figures."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


class Steps:
    """``with steps("reading flows.csv"):`` prints "NAME: reading flows.csv ... 1.2 s" on stderr.

    The step's name is printed when it starts (so a long step says what it is doing) and its
    time when it ends; nothing at all when ``enabled`` is false.
    """

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.name, self.enabled = name, enabled

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        print(f"{self.name}: {what} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:  # the line is ended even when the step fails, so an error message starts a line of its own
            print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def figure_bar(name: str, enabled: bool = True):
    """A tqdm counter of figures written (their number is not known in advance)."""
    from tqdm.auto import tqdm

    return tqdm(desc=f"{name}: figures", unit=" figure", disable=not enabled, file=sys.stderr)
