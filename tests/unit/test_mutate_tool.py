"""tools/mutate.py, the mutation-testing script: its mutants and the keys of its EQUIVALENT table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "mutate.py"


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("flowsim_mutate_tool", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ONE = """
def f(a, b):
    up, down = (a <= 0) & (b >= 0), (a >= 0) & (b <= 0)  # a comment
    return {"x": up, 'y': down}
"""
#: The same code as ruff format might lay it out: other line breaks, quotes, trailing commas, no comment.
TWO = """
def f(a, b):
    up, down = (
        (a <= 0) & (b >= 0),
        (a >= 0) & (b <= 0),
    )
    return {
        'x': up,
        "y": down,
    }
"""


def test_keys_survive_a_reformatting_and_tell_two_flips_of_one_kind_apart(mutate):
    one, two = mutate.sites(ONE), mutate.sites(TWO)
    assert [(s.op, s.what) for s in one] == [(s.op, s.what) for s in two]
    keys = [mutate.statement(ONE, s) for s in one]
    assert keys == [mutate.statement(TWO, s) for s in two]
    flips = [k for s, k in zip(one, keys, strict=True) if s.what == "<= -> <"]
    assert flips == [
        "up, down = ((a < 0) & (b >= 0), (a >= 0) & (b <= 0))",
        "up, down = ((a <= 0) & (b >= 0), (a >= 0) & (b < 0))",
    ]


def test_a_mutant_changes_its_site_only(mutate):
    site = next(s for s in mutate.sites(ONE) if s.what == ">= -> >")
    out = mutate.mutate(ONE, site)
    assert "(b > 0)" in out and "(a >= 0)" in out and out.count(">=") == 1
    compound = "if x > 0:\n    y = 1\nelse:\n    y = 2\n"
    key = mutate.statement(compound, next(s for s in mutate.sites(compound) if s.what == "> -> >="))
    assert key == "if x >= 0:"
