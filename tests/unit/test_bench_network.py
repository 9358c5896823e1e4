"""The network benchmark times the shipped network experiments (at one seed), not a size of its own."""

import tomllib
from pathlib import Path

import pytest

from flowsim.app.bench.contenders import NETWORK_EXPERIMENTS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("name", sorted(NETWORK_EXPERIMENTS))
def test_the_benchmark_documents_are_the_shipped_experiments_at_one_seed(name):
    shipped = tomllib.loads((EXPERIMENTS / name).read_text())
    shipped["model"] |= {"init_seed": 0, "data_seed": 0}
    doc = NETWORK_EXPERIMENTS[name]
    assert {k: v for k, v in doc.items() if k != "name"} == {k: v for k, v in shipped.items() if k != "name"}
