"""Experiment files: every shipped one loads; every kind of bad input names file, key and value."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowsim.experiment.config import ConfigError, load_experiment, parse_experiment
from flowsim.experiment.sweep import n_rows

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {
    "name": "t",
    "grid": {"p1": {"start": 0.1, "stop": 1.0, "num": 3}, "p2": {"start": 0.1, "stop": 1.0, "num": 2}},
}


def with_(path: str, value):
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    *parents, last = path.split(".")
    d = doc
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value
    return doc


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_experiments_load(path):
    exp = load_experiment(path)
    assert exp.name == path.stem
    assert n_rows(exp) >= 100


def test_defaults_and_sweep_product():
    exp = parse_experiment(with_("loss.beta", [0.1, 0.5]) | {"loss": {"beta": [0.1, 0.5], "ref_w": [0.5, 1.0]}})
    assert [(c["beta"], c["ref_w"], c["ref_l"]) for c in exp.parameter_sets()] == [
        (0.1, 0.5, 1.0),
        (0.1, 1.0, 1.0),
        (0.5, 0.5, 1.0),
        (0.5, 1.0, 1.0),
    ]
    assert exp.stop.p2_floor == 1e-6 and exp.solver.method == "DOP853" and exp.engine == "auto"
    assert exp.grid.points().shape == (6, 2)
    np.testing.assert_allclose(exp.grid.points()[:2], [[0.1, 0.1], [0.1, 1.0]])  # p1 outer, p2 inner


def test_sobol_and_random_grids():
    for kind in ("sobol", "random"):
        exp = parse_experiment({"name": "s", "grid": {"kind": kind, "n": 64, "seed": 3}})
        p = exp.grid.points()
        assert p.shape == (64, 2) and p.min() >= 0.01 and p.max() <= 1.0
        np.testing.assert_array_equal(
            p, parse_experiment({"name": "s", "grid": {"kind": kind, "n": 64, "seed": 3}}).grid.points()
        )


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"grid": MINIMAL["grid"]}, "missing required key 'name'"),
        (with_("colour", 1), "unknown key 'colour'"),
        (with_("loss.betta", 0.1), "unknown key 'loss.betta'"),
        (with_("loss.beta", -0.1), r"loss\.beta .*got -0\.1"),
        (with_("loss.beta", "0.1"), r"loss\.beta must be a number.*'0\.1'"),
        (with_("loss.beta", []), r"loss\.beta"),
        (with_("loss.ref_w", 1.5), r"loss\.ref_w .*1\.5"),
        (with_("loss.kind", "no_such_loss"), r"loss\.kind must be one of.*'no_such_loss'"),
        (with_("loss.reference", "sft"), r"loss\.reference must be one of.*'sft'"),
        (with_("grid.p1", {"start": 0.0, "stop": 1.0, "num": 3}), r"grid\.p1\.start must be a probability.*0\.0"),
        (with_("grid.p1", {"start": 0.5, "stop": 0.2, "num": 3}), r"grid\.p1\.stop must be greater"),
        (with_("grid.p1", {"start": 0.1, "stop": 1.0, "num": 2.5}), r"grid\.p1\.num must be an integer.*2\.5"),
        (with_("grid.p1", {"start": 0.1, "stop": 1.0}), r"missing required key 'grid\.p1\.num'"),
        ({"name": "t", "grid": {"kind": "hex"}}, r"grid\.kind must be one of.*'hex'"),
        ({"name": "t", "grid": {"kind": "sobol"}}, r"missing required key 'grid\.n'"),
        (with_("stop.p2_floor", 2.0), r"stop\.p2_floor must be in.*2\.0"),
        (with_("stop.t_max", -1), r"stop\.t_max .*-1"),
        (with_("solver.method", "Euler"), r"solver\.method must be one of.*'Euler'"),
        (with_("solver.rtol", 0), r"solver\.rtol .*0"),
        (with_("regions.p1_cuts", [0.7, 0.3]), r"regions\.p1_cuts .*\[0\.7, 0\.3\]"),
        (with_("loss.beta", 2.5) | {"solver": {"engine": "exact"}}, r"solver\.engine .*beta < 2.*; got 'exact'"),
        (with_("name", "a/b"), "name must be a non-empty folder name"),
        # [model] (issue #10): every key validated by the parameterisation it configures
        (with_("model.kind", "transformer"), r"model\.kind must be one of.*'transformer'"),
        (with_("model", {"kind": "logits", "K": 2}), r"model\.K must be a whole number >= 3; got 2"),
        (with_("model", {"kind": "logits", "K": 3.5}), r"model\.K must be a whole number.*3\.5"),
        (with_("model", {"kind": "features", "cos_wl": 1.5}), r"model\.cos_wl must be in \[-1, 1\]; got 1\.5"),
        (with_("model", {"kind": "features", "norm_ratio": 0.0}), r"model\.norm_ratio .*> 0; got 0\.0"),
        (with_("model", {"kind": "features", "d": 1}), r"model\.d must be a whole number >= 2; got 1"),
        (with_("model", {"kind": "logits", "cos_wl": 0.5}), r"unknown key 'model\.cos_wl'"),
        (with_("model", {"kind": "ratio", "K": 10}), r"unknown key 'model\.K'"),
        (with_("model", {"reference": ["initial", "sft"]}), r"model\.reference must be one of.*'sft'"),
        (with_("loss", {"beta": 0.1, "label_smoothing": 0.5}), r"loss\.label_smoothing must be in \[0, 0\.5\)"),
        (with_("loss", {"kind": "ipo", "rpo_alpha": 1.0}), r"unknown key 'loss\.rpo_alpha'"),
        (with_("stop.max_steps", 0), r"stop\.max_steps must be a whole number >= 1; got 0"),
        (with_("model", {"kind": "features"}) | {"solver": {"engine": "exact"}}, r"no closed form.*'features'"),
        # [dynamics] (issue #11): each optimiser's table validated by the optimiser
        (with_("dynamics", {"kind": "sgd"}), r"dynamics\.kind must be one of.*'sgd'"),
        (with_("dynamics", {"kind": "gd", "lr": 0.0}), r"dynamics\.lr must be a finite number > 0; got 0\.0"),
        (with_("dynamics", {"kind": "gd", "lr": -1.0}), r"dynamics\.lr .*-1\.0"),
        (with_("dynamics", {"kind": "adam", "beta1": 1.0}), r"dynamics\.beta1 must be in \[0, 1\); got 1\.0"),
        (with_("dynamics", {"kind": ["flow", "adam"], "adam": {"beta2": -0.1}}), r"dynamics\.adam\.beta2 .*-0\.1"),
        (with_("dynamics", {"kind": "gd", "momentum": 0.9}), r"unknown key 'dynamics\.momentum'"),
        (
            with_("dynamics", {"kind": ["flow", "gd"], "gd": {"lr": 0.1, "nesterov": True}}),
            r"unknown key 'dynamics\.gd\.nesterov'",
        ),
    ],
)
def test_bad_input_names_the_key(doc, match):
    with pytest.raises(ConfigError, match=match):
        parse_experiment(doc, source="x.toml")


def test_reference_initial_conflicts_with_given_references():
    doc = with_("loss.reference", "initial")
    doc["loss"] |= {"ref_w": 0.5, "ref_l": 0.5}
    with pytest.raises(ConfigError, match="ref_w, ref_l") as err:
        parse_experiment(doc, source="x.toml")
    assert "loss.reference = 'initial'" in str(err.value)


def test_a_model_table_sweeps_its_parameters_and_the_reference():
    exp = parse_experiment(with_("model", {"kind": "features", "cos_wl": [0.0, 0.9], "reference": ["initial", "none"]}))
    sets = exp.parameter_sets()
    assert [(c["reference"], c["cos_wl"]) for c in sets] == [
        ("initial", 0.0),
        ("initial", 0.9),
        ("none", 0.0),
        ("none", 0.9),
    ]
    assert exp.model_kind == "features" and exp.as_dict()["model"]["cos_wl"] == [0.0, 0.9]
    assert parse_experiment(exp.as_dict()) == exp  # meta.json's copy reads back as the same experiment


_GRID2 = "[grid]\np1 = {start=0.1, stop=1, num=2}\np2 = {start=0.1, stop=1, num=2}\n"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ('name = "bad"\n[loss]\nbeta = -1\n' + _GRID2, ("bad.toml", "loss.beta", "-1")),
        ('name = "c"\n[loss]\nreference = "initial"\nref_w = 0.5\nref_l = 0.5\n' + _GRID2, ("ref_w", "ref_l")),
        (None, ("no such experiment file",)),
    ],
    ids=["bad-value", "conflict", "missing"],
)
def test_cli_exits_2_naming_the_file_and_key_and_writes_nothing(tmp_path, capsys, text, wanted):
    # in this process (a process each cost ~1.2 s of imports); `python -m flowsim` is the test below
    from flowsim.cli import main

    path, out = tmp_path / "bad.toml", tmp_path / "out"
    if text is not None:
        path.write_text(text)
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in wanted), err
    assert not out.exists()


def test_python_m_flowsim_exits_with_the_cli_s_status_and_message(tmp_path):
    path, out = tmp_path / "bad.toml", tmp_path / "out"
    path.write_text('name = "bad"\n[loss]\nbeta = -1\n' + _GRID2)
    res = subprocess.run(
        [sys.executable, "-m", "flowsim", "run", str(path), "--out", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "bad.toml" in res.stderr and "loss.beta" in res.stderr, res.stderr
    assert not out.exists()


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.stem)
def test_as_dict_round_trips(path):
    exp = load_experiment(path)
    assert parse_experiment(exp.as_dict()) == exp


@pytest.mark.parametrize(("given", "options", "recorded"), [(None, 10_000, None), (500, 500, 500), (0, None, 0)])
def test_max_nfev_round_trips_through_meta(given, options, recorded):
    """0 in a file means no limit (TOML has no null); meta.json records it so the folder parses again."""
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    if given is not None:
        doc["solver"] = {"max_nfev": given}
    exp = parse_experiment(doc)
    assert exp.solver.max_nfev == options
    again = parse_experiment(exp.as_dict())
    assert again.solver.max_nfev == options and exp.as_dict()["solver"].get("max_nfev") == recorded


def test_the_engine_is_batched_where_verified_and_the_driver_elsewhere():
    grid = {"p1": {"start": 0.1, "stop": 0.9, "num": 3}, "p2": {"start": 0.1, "stop": 0.9, "num": 3}}

    def engines(**doc):
        exp = parse_experiment({"name": "e", "grid": grid, **doc})
        return [exp.engine_for(c) for c in exp.parameter_sets()], exp

    got, exp = engines()
    assert got == ["batched"] and exp.engine == "auto" and exp.as_dict()["solver"]["engine"] == "auto"
    assert engines(solver={"engine": "driver"})[0] == ["driver"]
    assert "engine" not in engines(solver={"engine": "driver"})[1].as_dict()["solver"]  # as earlier run folders
    assert engines(solver={"method": "LSODA"})[0] == ["driver"]  # the batched engine has explicit methods only
    assert engines(solver={"engine": "exact"})[0] == ["exact"]
    assert engines(solver={"method": "exact"})[0] == ["exact"]  # the spelling of older files and run folders
    assert parse_experiment(engines(solver={"method": "exact"})[1].as_dict()).engine == "exact"
    # a stop rule's shape that is not verified for the pair: the driver
    assert engines(loss={"kind": ["dpo", "ipo"]}, stop={"loss_target": 0.3})[0] == ["batched", "driver"]
    assert engines(loss={"kind": ["dpo", "ipo"]}, stop={"margin_target": 4.0})[0] == ["batched", "batched"]
    assert engines(loss={"kind": "ipo"})[0] == ["driver"]  # no margin target: stiff at IPO's minimiser
    got, _ = engines(model={"kind": "logits"}, dynamics={"kind": ["flow", "gd"]})
    assert got == ["batched", "discrete"]
    assert engines(solver={"engine": "batched"}, loss={"kind": "ipo"})[0] == ["batched"]  # asked for by name
    with pytest.raises(
        ConfigError,
        match=r"solver\.engine must be one of \['auto', 'discrete', 'network', 'batched', "
        r"'driver', 'exact'\]; got 'fast'",
    ):
        parse_experiment({"name": "e", "grid": grid, "solver": {"engine": "fast"}})
    with pytest.raises(ConfigError, match=r"solver\.engine has the explicit methods .*'Radau'; got 'batched'"):
        parse_experiment({"name": "e", "grid": grid, "solver": {"engine": "batched", "method": "Radau"}})
    with pytest.raises(ConfigError, match=r"solver\.method is an engine: write engine = \"exact\""):
        parse_experiment({"name": "e", "grid": grid, "solver": {"engine": "exact", "method": "exact"}})
    # a named engine computes the combinations of the dynamics it runs; the optimisers keep theirs
    got, _ = engines(model={"kind": "logits"}, dynamics={"kind": ["flow", "gd"]}, solver={"engine": "driver"})
    assert got == ["driver", "discrete"]


def test_every_problem_of_a_file_in_one_pass():
    """Problems in different tables, and several in one table, are reported together, one a line."""
    doc = {
        "name": "t",
        "colour": 1,
        "loss": {"beta": -1.0, "f_divergence": "bogus"},
        "grid": {"p1": {"start": 0.1, "stop": 1.0, "num": 0}, "p2": {"start": 0.1, "stop": 1.0, "num": 2}},
        "stop": {"t_max": "long"},
    }
    with pytest.raises(ConfigError) as err:
        parse_experiment(doc, "x.toml")
    lines = str(err.value).splitlines()
    assert len(lines) == 6 and all(line.startswith("x.toml: ") for line in lines[:5])
    for want in (
        "unknown key 'colour'",
        "loss.beta must be",
        "loss.f_divergence must be",
        "stop.t_max must be",
        "grid.p1.num must be a whole number >= 1",
    ):
        assert sum(want in line for line in lines) == 1, (want, lines)
    assert "at most 5 problems" in lines[-1]  # the limit, said
    doc["stop"] = {}
    with pytest.raises(ConfigError) as err:
        parse_experiment(doc, "x.toml")
    assert len(err.value.messages) == 4 and "at most" not in str(err.value)


def test_one_problem_is_one_line_as_before():
    with pytest.raises(ConfigError) as err:
        parse_experiment(with_("loss.beta", -1.0), "x.toml")
    assert err.value.messages == [str(err.value)] and str(err.value).startswith("x.toml: loss.beta must be")


def test_a_range_error_in_a_multi_loss_sweep_names_the_loss():
    """beta = 5 is in DPO's range and outside NCA's [1e-6, 2]: the message says which loss refuses it."""
    with pytest.raises(ConfigError) as err:
        parse_experiment(with_("loss", {"kind": ["dpo", "nca_pair"], "beta": 5.0}), "x.toml")
    assert err.value.messages == [err.value.messages[0]]  # DPO takes it: one problem
    assert "loss.beta must be a number in [1e-06, 2]" in str(err.value) and "for loss 'nca_pair'" in str(err.value)
    with pytest.raises(ConfigError) as err:  # one loss: nothing to name
        parse_experiment(with_("loss", {"kind": "nca_pair", "beta": 5.0}), "x.toml")
    assert "for loss" not in str(err.value)


def test_type_errors_read_as_english():
    with pytest.raises(ConfigError, match=r"grid\.p1\.num must be an integer; got 2\.5"):
        parse_experiment(with_("grid.p1", {"start": 0.1, "stop": 1.0, "num": 2.5}))
    with pytest.raises(ConfigError, match=r"loss\.kind must be a string or a non-empty list of them"):
        parse_experiment(with_("loss.kind", 3))
    with pytest.raises(ConfigError, match=r"solver\.method must be a string; got 1"):
        parse_experiment(with_("solver.method", 1))
