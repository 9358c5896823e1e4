"""Every test in tests/integration is end to end (sweeps, the CLI, figures, the benchmark) and
marked ``slow``: ``pytest -m "not slow"`` is the fast local loop, plain ``pytest`` runs all."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/integration/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
