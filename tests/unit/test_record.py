"""The stop rule's own methods (flowsim.dynamics.record): its defaults, its shape, its function stops."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from flowsim.dynamics.record import OPTIONAL_STOPS, StopRule


def test_the_documented_defaults_are_the_defaults():
    """Every 'name : type, default X' of the docstring is the field's default (the README and the docs quote them)."""
    documented = dict(re.findall(r"^\s{4}(\w+) : [\w ]+, default ([\w.+-]+)$", StopRule.__doc__, re.M))
    fields = {f.name: f.default for f in dataclasses.fields(StopRule)}
    assert set(documented) == {k for k, v in fields.items() if v is not None}
    for name, text in documented.items():
        assert fields[name] == type(fields[name])(float(text)), name


def test_as_dict_leaves_out_the_stops_that_are_off():
    rule = StopRule(margin_target=2.0, t_max=50.0)
    out = rule.as_dict()
    assert set(out) == {f.name for f in dataclasses.fields(StopRule)} - {"loss_target"}
    assert (out["margin_target"], out["t_max"], out["p2_floor"]) == (2.0, 50.0, rule.p2_floor)
    assert StopRule(**out) == rule


@pytest.mark.parametrize(
    ("kwargs", "optional", "functions", "without_stall"),
    [
        ({}, {"stationary_tol"}, ("stationary",), ()),
        ({"stationary_tol": 0.0}, set(), (), ()),
        ({"loss_target": 0.5, "stationary_tol": 0.0}, {"loss_target"}, ("reached_loss",), ("reached_loss",)),
        (
            {"loss_target": 0.5, "margin_target": 3.0},
            set(OPTIONAL_STOPS),
            ("reached_loss", "reached_margin", "stationary"),
            ("reached_loss", "reached_margin"),
        ),
        ({"margin_target": -1.0, "stationary_tol": 1e-3}, {"margin_target", "stationary_tol"}, None, None),
    ],
)
def test_the_rules_shape_and_its_function_stops(kwargs, optional, functions, without_stall):
    """optional(): the stops set (stationary_tol only when > 0); functions(): their statuses, in precedence order."""
    rule = StopRule(**kwargs)
    assert rule.optional() == frozenset(optional)
    if functions is not None:
        assert rule.functions() == functions
        assert rule.functions(may_stall=False) == without_stall
    met = rule.functions_met(np.array([0.4, 0.6]), np.array([3.5, 2.0]), np.array([1e-11, 1.0]))
    assert list(met) == list(rule.functions())
