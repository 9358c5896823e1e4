"""The generated reference (docs/_gen.py) names everything the code defines.

Each test takes its list of names from the code directly (dataclass fields, registries, argparse,
the flows schema, a claims table) -- never from the generator -- and looks for each name in the
page the generator writes, so a key, column, option or registered item that the generator loses
fails here.  The pages are generated in-process, without building the site (a few seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import importlib.util
import io
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

import flowsim
from flowsim.analysis.claims import REGISTRY
from flowsim.analysis.studies.dpo_field import evaluate_claims
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import COLUMNS_AFTER_COUNT, loss_comparison
from flowsim.analysis.testing import make_flows
from flowsim.app.bench import main as bench
from flowsim.app.run import recorded
from flowsim.app.trace import EXTRA
from flowsim.app.trace.output import OUTPUTS
from flowsim.cli import build_parser
from flowsim.dynamics.engines import ENGINES
from flowsim.dynamics.optimisers import OPTIMISERS
from flowsim.dynamics.record import StopRule
from flowsim.experiment.config import parse_experiment
from flowsim.experiment.schema import LEADING, PROVENANCE, columns
from flowsim.experiment.store import RUN_FILE, read_flows
from flowsim.integrations.folder import COLUMNS as TRACE_COLUMNS
from flowsim.model.parameterisations import MODELS
from flowsim.plotting.registry import FAMILIES

# the generated pages (~2 s) built on one worker, not on each that takes a test
pytestmark = pytest.mark.xdist_group("docs_reference")

GEN = Path(__file__).resolve().parents[2] / "docs" / "_gen.py"
MINIMAL = {
    "name": "x",
    "grid": {"p1": {"start": 0.5, "stop": 1.0, "num": 1}, "p2": {"start": 0.5, "stop": 1.0, "num": 1}},
}


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("flowsim_docs_gen", GEN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def pages(gen, run_dir):
    headers = gen.results_headers(run_dir)
    return {
        "experiment": gen.experiment_page(),
        "results": gen.results_page(headers),
        "cli": gen.cli_page(),
        "registries": gen.registries_page(),
        "api": gen.api_page(),
    }


def _missing(page: str, names) -> list[str]:
    return [n for n in names if f"`{n}`" not in page]


def test_every_experiment_key_is_in_the_reference(pages):
    keys = [f"loss.{f.name}" for cls in flowsim.LOSSES.values() for f in dataclasses.fields(cls)]
    keys += [f"model.{f.name}" for cls in MODELS.values() for f in dataclasses.fields(cls)]
    keys += [f"dynamics.{k}.{f.name}" for k, cls in OPTIMISERS.items() for f in dataclasses.fields(cls)]
    keys += [f"stop.{f.name}" for f in dataclasses.fields(StopRule)]
    keys += [f"claims.{f.name}" for f in dataclasses.fields(ClaimThresholds)]
    after_defaults = parse_experiment(MINIMAL).as_dict()  # every table as meta.json records it
    keys += [f"{table}.{k}" for table, d in after_defaults.items() if isinstance(d, dict) for k in d]
    keys += [k for k in after_defaults if k not in ("claims",)]
    keys += [f"grid.{k}" for k in ("kind", "n", "seed", "low", "high")]
    keys += ["loss.kind", "loss.reference", "model.kind", "dynamics.kind"]
    assert _missing(pages["experiment"], dict.fromkeys(keys)) == []


def _section(page: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    level = heading.split(" ")[0]
    return page.split(heading + "\n", 1)[1].split(f"\n{level} ", 1)[0]


def test_every_meta_json_key_is_in_the_reference(pages, run_dir):
    meta = json.loads((run_dir / "run" / "meta.json").read_text())  # the file the run wrote
    assert _missing(_section(pages["results"], "## meta.json"), meta) == []


def test_every_run_json_key_is_in_the_reference(pages, run_dir):
    """run.json (the volatile half of the record, moved out of meta.json) with the machine's fields."""
    record = json.loads((run_dir / "run" / RUN_FILE).read_text())
    keys = [*record, *(f"machine.{k}" for k in record["machine"])]
    assert "wall_time_s" in keys and "wall_time_s" not in json.loads((run_dir / "run" / "meta.json").read_text())
    assert _missing(_section(pages["results"], f"## {RUN_FILE}"), keys) == []


def test_every_loss_comparison_column_is_in_the_reference(pages, run_dir):
    """The columns loss_comparison computes (here, not in the generator) for the run's two losses."""
    folder = run_dir / "run"
    cols = loss_comparison(read_flows(folder / "flows.csv"), recorded(folder)).columns
    assert "displacement_impossible" in cols and "p_w_final_center" in cols
    assert _missing(_section(pages["results"], "## loss_comparison.csv"), cols) == []


def test_every_trace_file_and_column_is_in_the_reference(pages):
    """flowsim trace's outputs, the columns its rows add, the callback's logps.csv and predicted.csv's own."""
    page = _section(pages["results"], "## Traces of a TRL run")
    assert _missing(page, OUTPUTS) == []
    flows = _section(page, "### A trace's `flows.csv`: one row per probe pair")
    assert _missing(flows, [*LEADING, *PROVENANCE, *EXTRA]) == []
    assert (
        _missing(_section(page, "### The callback's `logps.csv`: one row per pair and recorded step"), TRACE_COLUMNS)
        == []
    )
    assert (
        _missing(
            _section(page, "### `predicted.csv`: the idealised flows from the pairs' starts"), ["pair", "ideal_model"]
        )
        == []
    )


def test_the_default_figure_set_is_the_code_s(gen, pages):
    """Each family's row says whether it is in the default set, as its per_combination declares."""
    page = pages["registries"]
    for f in FAMILIES:
        row = re.search(rf"^\| `{f.name}` \|.*$", page, flags=re.M).group(0)
        assert ("by default" in row) == (not f.per_combination), row
    assert {f.name for f in FAMILIES if not f.per_combination} >= {"facets", "paths_all", "losses"}


def test_every_results_column_is_in_the_reference(pages):
    flows = columns(parse_experiment(MINIMAL))
    extra = [c for cls in MODELS.values() for c in cls.extra_columns]
    assert extra  # the network's columns: were the list empty, the check below would check nothing
    grid = [0.2, 0.5, 0.8]
    claims = evaluate_claims(make_flows(grid, grid), StopRule(), sensitivity=False).columns
    assert _missing(pages["results"], [*flows, *extra, *COLUMNS_AFTER_COUNT, "subset", "region", *claims]) == []


def test_every_column_has_a_meaning(gen, pages):
    rows = re.findall(r"^\| `(\w+)` \| (.*) \|$", pages["results"], flags=re.M)
    assert rows and [c for c, meaning in rows if not meaning.strip()] == []


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings]


def test_every_cli_option_is_in_the_reference(pages):
    parser = build_parser()
    options = _options(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert f"## `flowsim {name}`" in pages["cli"]
                options += _options(sub)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        bench(["--help"])  # the benchmark parses its own options
    options += re.findall(r"(?<![\w-])(--[a-z][\w-]*)", out.getvalue())
    page = pages["cli"]
    assert [
        o for o in dict.fromkeys(options) if f"`{o}" not in page and f" {o}`" not in page and f", {o}" not in page
    ] == []


def test_every_registered_item_is_in_the_reference(pages):
    page = pages["registries"]
    assert flowsim.MODELS is MODELS and "`flowsim.MODELS`" in page  # the page names the registries as exported
    for title, names in (
        ("Losses", flowsim.LOSSES),
        ("Models", MODELS),
        ("Optimisers", OPTIMISERS),
        ("Engines", ENGINES),
        ("Figures", [f.name for f in FAMILIES]),
    ):
        assert f"## {title}" in page
        assert _missing(page, names) == [], title
    for claim in REGISTRY.values():  # each claim with its statement and its rule at the default thresholds
        assert f"### {claim.id}: {claim.title}" in page
        assert claim.rule(_Nan(), ClaimThresholds())[1] in html.unescape(page.replace("\\|", "|"))


def test_every_public_name_is_in_the_api_page(pages):
    names = [n for n in flowsim.__all__ if callable(getattr(flowsim, n)) and not isinstance(getattr(flowsim, n), dict)]
    assert [n for n in names if f"### flowsim.{n}\n" not in pages["api"]] == []


class _Nan(dict):
    def __missing__(self, key):
        return float("nan")


def test_every_experiment_file_in_the_how_tos_is_accepted():
    """The TOML in the how-to guides parses (a fragment without a name inside the least file)."""
    blocks = [
        b
        for page in sorted((GEN.parent / "how-to").glob("*.md"))
        for b in re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.S)
    ]
    assert len(blocks) >= 5
    for block in blocks:
        doc = tomllib.loads(block)
        parse_experiment(doc if "name" in doc else {**MINIMAL, **doc})
