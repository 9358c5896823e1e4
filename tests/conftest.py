import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` (pyproject's addopts): each test marked ``xdist_group(name)`` named ``nodeid@name``.

    pytest-xdist 3.8 names them on the worker by setting ``item._nodeid``, which pytest 9.2 no longer
    reads (a node's id is ``item._id``): every group was silently ignored and its tests spread over the
    workers, each worker paying the group's imports and module fixtures.  A no-op without loadgroup,
    and where xdist has named the test already.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    try:  # pytest's internals: where they moved (another pytest), the groups are only a speed-up lost
        from _pytest.nodeid import NodeId
    except ImportError:
        return

    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        if names and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture
def conformance_script():
    """experiments/conformance.py as a module, loaded once per process (its functions pickle by its name)."""
    mod = sys.modules.get("conformance")
    if mod is None:
        path = Path(__file__).resolve().parents[1] / "experiments" / "conformance.py"
        spec = importlib.util.spec_from_file_location("conformance", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["conformance"] = mod
        spec.loader.exec_module(mod)
    return mod


#: A 2 x 5 x 5 DPO sweep by the closed form (a second's work): beta 0.1 and 0.5 over p in [0.1, 0.9].
SMALL_EXACT_RUN = """name = "{name}"
[loss]
kind = "dpo"
beta = [0.1, 0.5]
[grid]
p1 = {{ start = 0.1, stop = 0.9, num = 5 }}
p2 = {{ start = 0.1, stop = 0.9, num = 5 }}
[solver]
engine = "exact"
"""


@pytest.fixture(scope="session")
def small_exact_run():
    """A factory: ``make(folder, name)`` writes and runs :data:`SMALL_EXACT_RUN` into ``folder / name``."""
    from flowsim.app.run import run

    def make(folder: Path, name: str) -> Path:
        (folder / f"{name}.toml").write_text(SMALL_EXACT_RUN.format(name=name))
        run(folder / f"{name}.toml", folder / name, n_jobs=1, progress=False)
        return folder / name

    return make
