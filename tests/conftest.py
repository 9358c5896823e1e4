import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")


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
