"""The documentation's reference pages, generated from flowsim's code at build time.

Nothing here restates a fact the code holds: the experiment file's keys are found by asking the
parser itself (an unknown key is refused with the list of keys allowed there; a bad value with the
rule it breaks), their defaults by parsing a file that leaves them out, their meanings from the
numpydoc ``Parameters`` of the class that owns them; the results files' columns by running a
tiny experiment and reading the headers it writes; the CLI from argparse; the losses, models,
optimisers, claims and figure families from their registries.  What no code says (what a results
column means when no docstring does, what a table is for) is written once, below, in ``NOTES``
and ``COLUMN_NOTES``, and :func:`check` fails the build if a key or column has neither.

One file, imported by ``docs/_hooks.py`` (the site) and ``tests/unit/test_docs_reference.py``;
names that may move inside flowsim are looked up defensively (``_first``).

    python docs/_gen.py OUTDIR      # write the pages into OUTDIR (what the build does)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import inspect
import io
import json
import math
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flowsim

# ---------------------------------------------------------------------------------------------------------------
# What no docstring says: one line per table of the experiment file, and the keys that no dataclass owns.

NOTES: dict[str, str] = {
    "": "The file's top level: its name and one table per part of the experiment.",
    "name": "The run's name: `flowsim run` writes to `runs/<name>/` unless `--out` says otherwise; "
    "a folder name without `/`.",
    "loss": "The preference loss, swept: every list is swept (Cartesian product, losses outermost). "
    "With several kinds each runs at its own defaults, and a key given here applies to the kinds that take it.",
    "loss.kind": "The loss (see [Losses](registries.md#losses)), or a list of them.",
    "loss.reference": 'The reference policy: "fixed" (ref_w, ref_l given), "initial" (the reference is the '
    "SFT model itself: each start is its own reference, so on the ratio plane every flow starts at x = (1, 1)), "
    '"none" (pi_ref = 1, the paper\'s reference-free setting), or a list of them. May be given in [model] instead.',
    "loss.ref_w": 'pi_ref(y_w|x), with reference = "fixed" only.',
    "loss.ref_l": 'pi_ref(y_l|x), with reference = "fixed" only.',
    "model": "The policy parameterisation (see [Models](registries.md#models)); every parameter may be a list, swept.",
    "model.kind": "The model.",
    "model.reference": "As loss.reference (give it in one table only).",
    "dynamics": 'How the parameters move: "flow" (gradient flow, integrated; its options are in [solver]) or a '
    "discrete optimiser (see [Optimisers](registries.md#optimisers)), or a list of them side by side. "
    "Each optimiser's hyperparameters go in a sub-table named after it (`adam = { lr = [1e-3, 1e-2] }`), "
    "or directly in [dynamics] when there is one optimiser.",
    "dynamics.kind": "The dynamics, or a list of them.",
    "grid": 'The starts (SFT models) in probabilities (p1, p2) = (pi(y_w|x), pi(y_l|x)): kind = "mesh" (default), '
    "the product of two axes, p1 outer; or `sobol` (scrambled, `scipy.stats.qmc`) or `random`: n points in "
    "[low, high]^2.  A normalised model (logits, features) runs only the starts with p1 + p2 < 1 and counts "
    "the others in meta.json (`starts_left_out`).",
    "grid.kind": 'mesh, or "sobol" / "random".',
    "grid.p1": "The p1 axis of a mesh: a table with start, stop, num, spacing.",
    "grid.p2": "The p2 axis of a mesh: a table with start, stop, num, spacing.",
    "grid.p1.start": "First value, a probability.",
    "grid.p1.stop": "Last value.",
    "grid.p1.num": "Number of values.",
    "grid.p1.spacing": '"linear" or "log".',
    "grid.n": "Number of points (sobol, random).",
    "grid.seed": "Seed of the sequence (sobol, random).",
    "grid.low": "Lower end of the square the points fill (sobol, random).",
    "grid.high": "Upper end of the square (sobol, random).",
    "stop": "When a flow stops and which crossings it records; all optional.",
    "solver": "How a gradient flow is integrated.",
    "solver.method": 'A `solve_ivp` method, or "auto" (DOP853; a stiff flow goes to LSODA by Hairer\'s test); '
    '"exact" asks for the closed form registered for the (loss, model) pair.',
    "solver.engine": '"auto": the engine verified for each combination (the batched engine where it is verified, '
    "else the per-start driver), or one engine by name.",
    "regions": "The 3 x 3 regions of the start plane that tables and claims read.",
    "regions.p1_cuts": "Two cuts of p1, increasing, in (0, 1).",
    "regions.p2_cuts": "Two cuts of p2, increasing, in (0, 1).",
    "claims": "Thresholds of the verdict rules (see [Claims](registries.md#claims)); validated by the analysis.",
}

#: Results columns whose meaning no docstring gives (the unit, where there is one, in the text).
COLUMN_NOTES: dict[str, str] = {
    "p1_0": "Initial pi_theta(y_w|x), a probability in (0, 1].",
    "p2_0": "Initial pi_theta(y_l|x).",
    "x1_0": "Initial ratio p1_0 / ref_w.",
    "x2_0": "Initial ratio p2_0 / ref_l.",
    "region": "The start's cell of the 3 x 3 regions (top-left ... bottom-right; p1 horizontal, p2 vertical as in "
    "the paper's figure; a point on a cut belongs to the upper cell).",
    "feasible": "p1_0 + p2_0 <= 1 (two responses cannot together hold more than all the probability).",
    "loss_0": "The loss at the start (nats).",
    "loss": "The loss kind.",
    "model": "The model (parameterisation) kind.",
    "dynamics": '"flow" or the optimiser.',
    "reference": '"fixed", "initial" or "none".',
    "ref_w": 'The reference pi_ref(y_w|x) of this row ("initial": p1_0; "none": 1).',
    "ref_l": 'The reference pi_ref(y_l|x) of this row ("initial": p2_0; "none": 1).',
    "engine": 'How the row was computed: "batched" (the lockstep engine), "driver" (one solve_ivp per start; '
    'also a row the batched engine handed over), "exact" (the closed form), "discrete" (an optimiser\'s steps) '
    'or "torch" (a network\'s training).',
    # network rows
    "pair": "The pair's index in the network's dataset.",
    "logp_w0": "log pi(y_w|x) of the pair at the SFT checkpoint (nats).",
    "logp_l0": "log pi(y_l|x) at the SFT checkpoint (nats).",
    "logp_w_final": "log pi(y_w|x) at the stop (nats).",
    "logp_l_final": "log pi(y_l|x) at the stop (nats).",
    "p1_0_mean": "The dataset's mean p1_0.",
    "p2_0_mean": "The dataset's mean p2_0.",
    "p1_final_mean": "The dataset's mean final p_w.",
    "p2_final_mean": "The dataset's mean final p_l.",
    "displaced_frac": "Share of the dataset's pairs displaced.",
    "loss_0_mean": "The dataset's mean loss at the start (nats).",
    "loss_final_mean": "The dataset's mean loss at the stop (nats).",
    "train_status": "Why the training stopped (a status, for the whole dataset).",
    "sft_objective": "The SFT stage's final objective.",
    "target_w": 'The SFT target p_w0 (sft = "target"), else empty.',
    "target_l": 'The SFT target p_l0 (sft = "target"), else empty.',
    "dp1_dt_0": "dp_w/dt of the pair at t = 0 under the gradient flow of the full-batch mean loss (per unit time).",
    "dp2_dt_0": "dp_l/dt at t = 0, as dp1_dt_0.",
    "grad_norm_0": "The dataset's |grad_theta L| at the start.",
    "path": "The pair's trajectory as JSON, path_points points [t, log pi(y_w), log pi(y_l)] (empty without).",
    # regions.csv
    "subset": '"all" starts, or the "feasible" ones (p1_0 + p2_0 <= 1).',
    "count": "Starts in the region.",
    "share_feasible": "Share of them with p1_0 + p2_0 <= 1.",
    "share_p1_target": "Share reaching p1_target before the stop.",
    "share_l_before_w": "Share where p2 reaches p2_target before p1 reaches p1_target.",
    "n_left_simplex": "Starts whose path reached p1 + p2 > 1 (max_mass > 1).",
    "share_displaced": "Share displaced (p_w fell below its start).",
    "p_w_min_rel": "p_w_min / p1_0: how far the preferred response's probability fell (1 if it never did).",
    # claims.csv
    "claim": "The claim's id (see [Claims](registries.md#claims)).",
    "title": "The claim in a few words.",
    "paper": "The paper's words.",
    "where": "Where they stand in the paper.",
    "metric": "What is measured.",
    "value": "The measured value (its meaning: metric).",
    "details": "The measurement in words (or why the claim is not applicable).",
    "threshold": "The rule with its thresholds.",
    "verdict": "supported, partly supported, not supported or not applicable.",
    "robustness": "robust, or fragile (flips under ...) under the sensitivity family.",
    "n_rows": "Rows in the group judged.",
    "n_failed": "Failed rows among them.",
    "failed_left_out": "Failed rows left out of the measurement (claims.md marks such verdicts with a dagger).",
}
#: meta.json's keys (a run folder's record of itself).
META_NOTES: dict[str, str] = {
    "experiment": "The experiment as run, after defaults, in the file's own shape.",
    "rows": "Rows in flows.csv.",
    "counts_by_status": "Rows by status.",
    "counts_by_engine": "Rows by the engine that computed them (the `engine` column).",
    "flows_bytes": "Size of flows.csv; analyze, plot and reproduce check it.",
    "flows_sha256": "SHA-256 of flows.csv; analyze, plot and reproduce check it.",
    "starts_left_out": "Grid points a normalised model could not take (p1 + p2 >= 1).",
    "started": "Start time (UTC, ISO 8601).",
    "finished": "End time.",
    "wall_time_s": "The sweep's wall time (seconds).",
    "resumed": "Whether the sweep was resumed (`--resume`).",
    "n_jobs": "Workers asked for (-1: all cores).",
    "backend": "Where chunks ran: fork, loky or dask.",
    "chunk_size": "Flows per chunk.",
    "versions": "Versions of flowsim, Python and the numerical libraries.",
    "git_commit": "The commit of the code that ran (with -dirty for uncommitted changes).",
    "machine": "The machine: platform, CPUs.",
}
_QUANTILES = {"median": "median", "q25": "lower quartile", "q75": "upper quartile"}


# ---------------------------------------------------------------------------------------------------------------
# Small readers of docstrings and comments


def _first(*paths: str) -> Any:
    """The first of ``module:attribute`` paths that imports (names may move between flowsim versions)."""
    for p in paths:
        mod, _, attr = p.partition(":")
        with contextlib.suppress(ImportError, AttributeError):
            obj = importlib.import_module(mod)
            return getattr(obj, attr) if attr else obj
    return None


def numpydoc_params(obj: Any, section: str = "Parameters") -> dict[str, str]:
    """``{name: description}`` from a numpydoc section of ``obj``'s docstring (and its bases')."""
    out: dict[str, str] = {}
    for cls in reversed(inspect.getmro(obj)) if inspect.isclass(obj) else [obj]:
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "") if inspect.isclass(obj) else inspect.getdoc(obj)
        m = re.search(rf"^{section}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc or "", re.S | re.M)
        if not m:
            continue
        for entry in re.split(r"\n(?=\S)", m.group(1).strip("\n")):
            head, _, body = entry.partition("\n")
            names, _, typ = head.partition(" : ")
            text = " ".join(body.split()) or typ.strip()
            for name in names.split(","):
                out[name.strip()] = text
    return out


def comment_docs(obj: Any) -> dict[str, str]:
    """``{name: text}`` of the ``#:`` comments above assignments in ``obj``'s source (Sphinx's convention)."""
    try:
        src = inspect.getsource(obj)
    except (OSError, TypeError):
        return {}
    out, pending = {}, []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
            continue
        m = re.match(r"([A-Za-z_]\w*)\s*(?::|=)", s)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        pending = []
    return out


def md(text: str) -> str:
    """reST inline markup (``code``, :role:`~a.b.c`) as markdown."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _cell(v: Any) -> str:
    """A table cell: markdown, its pipes escaped, and < > outside code spans shown as text (not read as HTML)."""
    parts = re.split(r"(`[^`]*`)", md(str(v)))
    text = "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in parts)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# The experiment file, asked of the parser


def _parse() -> Callable:
    return _first("flowsim.experiment.config:parse_experiment")


def _refusal(doc: dict) -> str | None:
    """The parser's message for ``doc``, or None if it accepts it."""
    try:
        _parse()(doc)
    except Exception as exc:  # noqa: BLE001 - any refusal is an answer here
        return str(exc)
    return None


#: The least file the parser accepts: a name and a one-point grid (a mesh needs its axes).
_MINIMAL = {"name": "probe", "grid": {"p1": {"start": 0.5, "stop": 1.0, "num": 1},
                                      "p2": {"start": 0.25, "stop": 1.0, "num": 1}}}  # fmt: skip


#: More of the file around the table probed (a sub-table's parent keys), set by :func:`_around`.
_AROUND: list[dict] = [{}]


@contextlib.contextmanager
def _around(extra: dict):
    """Probe with ``extra`` in the file too (e.g. ``[dynamics] kind = "gd"`` around ``[dynamics.gd]``)."""
    _AROUND.append(extra)
    try:
        yield
    finally:
        _AROUND.pop()


def _nested(where: str, value: dict) -> dict:
    import copy

    doc: dict = copy.deepcopy(_MINIMAL)
    for table, keys in _AROUND[-1].items():
        doc.setdefault(table, {}).update(copy.deepcopy(keys))
    node = doc
    parts = where.split(".") if where else []
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    if parts:
        node[parts[-1]] = value
    else:
        doc |= value
    return doc


def allowed_keys(where: str, base: dict | None = None) -> list[str]:
    """The keys the parser allows in table ``where`` (dotted; "" for the top level), given ``base`` there."""
    msg = _refusal(_nested(where, {**(base or {}), "zz_probe": 1}))
    m = re.search(r"unknown key '([^']*)'; allowed here: (.*)$", msg or "", flags=re.M)
    return [k.strip() for k in m.group(2).split(",")] if m else []


def kinds_of(where: str, base: dict | None = None) -> list[str]:
    """The values the parser accepts for ``where.kind`` (from its refusal of an unknown one)."""
    msg = _refusal(_nested(where, {**(base or {}), "kind": "zz_probe"})) or ""
    m = re.search(r"must be one of \[([^\]]*)\]", msg) or re.search(r"must be one of ((?:'[^']*'(?:, )?)+)", msg)
    return re.findall(r"'([^']*)'", m.group(1)) if m else []


def _rules(where: str, base: dict, key: str, default: Any) -> tuple[list[str], bool]:
    """The rules the parser states for bad values of ``where.key``, and whether a list is swept there."""
    dotted = f"{where}.{key}" if where else key
    if isinstance(default, bool):
        bad: list[Any] = []
    elif isinstance(default, int):
        bad = [-(10**9), 0, 10**9]
    elif isinstance(default, float) or default is None:
        bad = [-1e300, 0.0, 1e300]
    else:
        bad = ["zz_probe"]
    rules = []
    for v in bad:
        msg = _refusal(_nested(where, {**base, key: v})) or ""
        m = re.search(rf": {re.escape(dotted)} (.*?); got ", msg)
        if m and m.group(1) not in rules:
            rules.append(m.group(1))
    swept = False
    if default is not None and not isinstance(default, dict | list):  # a list is swept where no refusal names it
        swept = f"{dotted} " not in (_refusal(_nested(where, {**base, key: [default, default]})) or "")
    return [r.removeprefix("must be ") for r in rules], swept


@dataclass
class Key:
    """One key of the experiment file."""

    table: str
    key: str
    kinds: tuple[str, ...] = ()  # the kinds it belongs to ("" = all)
    type: str = ""
    default: str = ""
    rules: list[str] = field(default_factory=list)
    swept: bool = False
    meaning: str = ""

    @property
    def dotted(self) -> str:
        return f"{self.table}.{self.key}" if self.table else self.key


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, dict):
        return "table"
    return ""


def _fmt(v: Any) -> str:
    if v is None:
        return "off"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and math.isfinite(v) and v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:g}"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()) + " }"
    return str(v)


def _defaults(where: str, base: dict) -> dict:
    """The table ``where`` after defaults, as meta.json records it (``Experiment.as_dict``)."""
    exp = _parse()(_nested(where, base) if where else _nested("", {}))
    node: Any = exp.as_dict()
    for p in where.split(".") if where else []:
        node = node.get(p, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _table_keys(where: str, base: dict, owners: list[Any], kinds: tuple[str, ...] = (),
                skip: Iterable[str] = ()) -> list[Key]:  # fmt: skip
    """Every key allowed in ``where`` (with ``base`` there), described from ``owners``' docstrings."""
    try:
        defaults = _defaults(where, base)
    except Exception:  # noqa: BLE001 - a table that needs more than base (a required key) has no defaults
        defaults = {}
    described: dict[str, str] = {}
    field_defaults: dict[str, Any] = {}
    for owner in owners:
        described = {**comment_docs(owner), **numpydoc_params(owner), **described}
        if dataclasses.is_dataclass(owner):
            for f in dataclasses.fields(owner):
                if f.default is not dataclasses.MISSING:
                    field_defaults.setdefault(f.name, f.default)
    order = [f.name for o in owners if dataclasses.is_dataclass(o) for f in dataclasses.fields(o)]
    out = []
    for k in sorted(allowed_keys(where, base), key=lambda k: order.index(k) if k in order else -1):
        if k in skip and k not in order:
            continue
        default = defaults.get(k, field_defaults.get(k))
        rules, swept = _rules(where, base, k, default) if k != "kind" else ([], False)
        meaning = NOTES.get(f"{where}.{k}" if where else k) or described.get(k, "")
        out.append(Key(where, k, kinds, _type_name(default), "" if default is None and k not in field_defaults
                       else _fmt(default), rules, swept, meaning))  # fmt: skip
    return out


@functools.cache
def experiment_keys() -> list[Key]:
    """Every key of the experiment file, by table, found by asking the parser."""
    keys = [Key("", k, meaning=NOTES.get(k, ""), type="str" if k == "name" else "table")
            for k in allowed_keys("")]  # fmt: skip
    keys[0:0] = []
    keys += _kind_keys("loss", lambda k: [flowsim.LOSSES[k]] if k in flowsim.LOSSES else [])
    keys += _kind_keys("model", _model_class)
    keys += _dynamics_keys()
    keys += _grid_keys()
    for where, owner in (("stop", "flowsim.dynamics.record:StopRule"),
                         ("solver", "flowsim.dynamics.driver:SolverOptions"),
                         ("regions", "")):  # fmt: skip
        keys += _table_keys(where, {}, [o for o in (_first(owner) if owner else None, _experiment_class()) if o])
    keys += _claims_keys()
    return keys


def _experiment_class() -> Any:
    return _first("flowsim.experiment.config:Experiment")


def _model_class(kind: str) -> list[Any]:
    try:
        exp = _parse()(_nested("model", {"kind": kind}))
        return [exp.model_class]
    except Exception:  # noqa: BLE001 - e.g. the network without torch: described from the registry instead
        reg = _first("flowsim.model.parameterisations:MODELS") or {
            **(_first("flowsim.model.parameterisations:PARAMETERISATIONS") or {}),
            **(_first("flowsim.model.parameterisations:TRAINED_MODELS") or {})}  # fmt: skip
        return [reg[kind]] if kind in reg else []


def _kind_keys(where: str, owners: Callable[[str], list[Any]]) -> list[Key]:
    """The table's keys for every kind: shared keys once, each kind's own under it."""
    kinds = kinds_of(where)
    per_kind = {k: _table_keys(where, {"kind": k}, owners(k), (k,)) for k in kinds}
    shared = set.intersection(*({x.key for x in v} for v in per_kind.values())) if per_kind else set()
    out: list[Key] = []
    first = per_kind[kinds[0]] if kinds else []
    for x in first:
        if x.key in shared and not (x.key not in ("kind", "reference", "ref_w", "ref_l") and len(kinds) > 1):
            out.append(dataclasses.replace(x, kinds=()))
    if out and out[0].key == "kind":
        out[0].rules = [f"one of {', '.join(map(repr, kinds))}"]
        out[0].default = _fmt(_defaults(where, {}).get("kind", kinds[0])) if where != "model" else '"ratio"'
    done = {x.key for x in out}
    for k in kinds:
        out += [x for x in per_kind[k] if x.key not in done]
    return out


def _dynamics_keys() -> list[Key]:
    kinds = kinds_of("dynamics")
    out = [x for x in _table_keys("dynamics", {}, []) if x.key == "kind"]
    for x in out:
        x.rules, x.default = [f"one of {', '.join(map(repr, kinds))}"], '"flow"'
    optimisers = _first("flowsim.dynamics.optimisers:OPTIMISERS") or {}
    for k in kinds:  # each optimiser's keys in its sub-table, [dynamics.<kind>] (one optimiser: also directly)
        if k in optimisers:
            with _around({"dynamics": {"kind": k}}):
                out += _table_keys(f"dynamics.{k}", {}, [optimisers[k]], (k,), skip=("kind",))
    return out


def _grid_keys() -> list[Key]:
    kinds = kinds_of("grid")
    out = _table_keys("grid", {}, [])
    for x in out:
        if x.key == "kind":
            x.rules, x.default = [f"one of {', '.join(map(repr, kinds))}"], '"mesh"'
    axis = {"start": 0.01, "stop": 1.0, "num": 3}
    for ax in ("p1", "p2"):
        for x in _table_keys(f"grid.{ax}", axis, []):
            x.meaning = x.meaning or NOTES.get(f"grid.p1.{x.key}", "")
            x.default = "" if x.key in axis else x.default  # required keys (base gave them)
            x.rules = x.rules if x.key != "spacing" else ['"linear" or "log"']
            out.append(x)
    for k in kinds[1:]:
        for x in _table_keys("grid", {"kind": k, "n": 4}, [], (k,), skip=("kind",)):
            x.default = "" if x.key == "n" else x.default
            out.append(x)
    return out


def _claims_keys() -> list[Key]:
    owner = _first(
        "flowsim.analysis.studies.thresholds:ClaimThresholds", "flowsim.analysis.studies.dpo_field:ClaimThresholds"
    )
    keys = allowed_keys("claims") or [f.name for f in dataclasses.fields(owner)] if owner else []
    desc = numpydoc_params(owner) if owner else {}
    out = []
    for k in keys:
        default = getattr(owner, k, None) if owner else None
        rules = []
        for v in (-1e300, 0.0, 1e300):
            try:
                owner(**{k: v})
            except Exception as exc:  # noqa: BLE001
                r = getattr(exc, "rule", None)
                if r and getattr(exc, "key", k) == k and r not in rules:
                    rules.append(r)
        out.append(Key("claims", k, (), _type_name(default), _fmt(default), rules, False, desc.get(k, "")))
    return out


def experiment_page() -> str:
    keys = experiment_keys()
    parts = ["# Experiment files\n",
             "An experiment is a TOML file; `flowsim run FILE` runs it. Every key below is found by asking the "
             "parser (`flowsim.experiment.config.parse_experiment`), its default by parsing a file that leaves "
             "it out, its accepted values from the parser's own refusals, and its meaning from the docstring of "
             "the class that owns it. *Swept*: a list of values is swept (the sweep runs over the Cartesian "
             "product). A key of one kind only is listed under that kind.\n",
             "```toml\n" + _example_toml() + "```\n"]  # fmt: skip
    header = ["key", "type", "default", "accepted values", "swept", "meaning"]
    tables: dict[str, list[Key]] = {}
    for k in keys:
        tables.setdefault(k.table.split(".")[0], []).append(k)
    for table, ks in tables.items():
        parts.append(f"## {'top level' if not table else '[' + table + ']'}\n")
        if NOTES.get(table) and table:
            parts.append(NOTES[table] + "\n")
        groups: dict[tuple[str, ...], list[Key]] = {}
        for k in ks:
            groups.setdefault(k.kinds, []).append(k)
        for kinds, group in groups.items():
            if kinds:
                sub = (
                    f" (a sub-table [{table}.{kinds[0]}], or directly in [{table}] for one kind)"
                    if table == "dynamics"
                    else ""
                )
                parts.append(f'### {table}: kind = "{kinds[0]}"{sub}\n')
            parts.append(_table(header, ((f"`{k.dotted}`", k.type, f"`{k.default}`" if k.default else "",
                                          "; ".join(k.rules), "yes" if k.swept else "", k.meaning)
                                         for k in group)))  # fmt: skip
    return "\n".join(parts)


def _example_toml() -> str:
    """A small file, parsed here so that it cannot go stale."""
    text = textwrap.dedent("""\
        name = "paper"

        [loss]
        kind = "dpo"
        beta = [0.1, 0.5]        # every list is swept

        [grid]
        p1 = { start = 0.01, stop = 1.0, num = 100 }
        p2 = { start = 0.01, stop = 1.0, num = 100 }

        [stop]
        t_max = 1e4
    """)
    import tomllib

    _parse()(tomllib.loads(text))
    return text


# ---------------------------------------------------------------------------------------------------------------
# The results files, from a tiny run


def results_headers(workdir: Path | None = None) -> dict[str, list[str]]:
    """The columns of flows.csv, regions.csv and claims.csv as the code writes them (a 2 x 2 closed-form run)."""
    run = _first("flowsim.app.run:run")
    analyze = _first("flowsim.app.analyze:analyze")
    with contextlib.ExitStack() as stack:
        work = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        toml = work / "tiny.toml"
        toml.write_text('name = "tiny"\n[loss]\nkind = "dpo"\n[grid]\np1 = { start = 0.2, stop = 0.8, num = 2 }\n'
                        'p2 = { start = 0.2, stop = 0.8, num = 2 }\n')  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(toml, work / "run", n_jobs=1, progress=False)
            list(analyze(work / "run", progress=False))
        out = {name: (work / "run" / name).read_text().splitlines()[0].split(",")
               for name in ("flows.csv", "regions.csv", "claims.csv")}  # fmt: skip
        out["meta.json"] = list(json.loads((work / "run" / "meta.json").read_text()))
        return out


def column_meanings() -> dict[str, str]:
    """Every column's meaning: the record's docstring and comments first, then :data:`COLUMN_NOTES`."""
    record = _first("flowsim.dynamics.record")
    out: dict[str, str] = {}
    fr = _first("flowsim.dynamics.record:FlowResult")
    out |= {k: v for k, v in numpydoc_params(fr, "Attributes").items() if not k.startswith("path")}
    path_doc = comment_docs(record).get("PATH_FIELDS", "")
    for name, text in re.findall(r"``(\w+)``(?: and ``\w+``)?: (.*?)(?=; ``|$)", path_doc):
        out[name] = text.rstrip(". ")
    for pair in re.findall(r"``(\w+)`` and ``(\w+)``: (.*?)(?=; ``|$)", path_doc):
        out[pair[0]] = out[pair[1]] = pair[2]
    for pair in re.findall(r"``(\w+)`` / ``(\w+)``: (.*?)(?=; ``|$)", path_doc):
        out[pair[0]] = out[pair[1]] = pair[2]
    return out | COLUMN_NOTES


def meaning_of(column: str, meanings: dict[str, str], params: dict[str, str]) -> str:
    """A column's meaning, derived for the families of columns the code builds (n_<status>, <col>_<quantile>)."""
    if column in meanings:
        return meanings[column]
    if column in params and column not in ("ref_w", "ref_l"):
        return f"A parameter of the row's combination: {params[column]}."
    statuses = _first("flowsim.dynamics.record:STATUSES") or ()
    if column.startswith("n_") and column[2:] in statuses:
        return f"Rows with status {column[2:]}."
    base, _, q = column.rpartition("_")
    if q in _QUANTILES and base:
        return f"The {_QUANTILES[q]} of {base} over the region's rows ({meanings.get(base, '').rstrip('.')})."
    return ""


def extra_columns() -> dict[str, tuple[str, ...]]:
    """The columns a model's rows add after flows.csv's own, by model kind (``extra_columns`` on the class;
    before models declared them, the network module's ``EXTRA``)."""
    out = {k: tuple(getattr(c, "extra_columns", ())) for k, c in registries()["models"].items()}
    out = {k: v for k, v in out.items() if v}
    legacy = _first("flowsim.experiment.network:EXTRA")
    return out or ({"network": tuple(legacy)} if legacy else {})


def statuses() -> list[tuple[str, str]]:
    """Each status and its meaning, from the ``#:`` comment on :data:`STATUSES`."""
    doc = comment_docs(_first("flowsim.dynamics.record")).get("STATUSES", "")
    found = dict(re.findall(r"``(\w+)``: (.*?)(?=; ``|$)", doc))
    return [(s, found.get(s, "")) for s in (_first("flowsim.dynamics.record:STATUSES") or ())]


def _parameter_meanings() -> dict[str, str]:
    out: dict[str, str] = {}
    for k in experiment_keys():
        if k.table.split(".")[0] in ("loss", "model", "dynamics") and k.key not in ("kind", "reference"):
            out.setdefault(k.key, f"the experiment key `{k.dotted}`")
    return out


def results_page(headers: dict[str, list[str]] | None = None) -> str:
    headers = headers or results_headers()
    meanings = column_meanings()
    extra = extra_columns()
    parts = ["# Results files\n",
             "A run folder holds `flows.csv` (one row per start and parameter combination) and `meta.json`; "
             "`flowsim analyze` adds `regions.csv`, `claims.csv` and `claims.md`. The columns below are read from "
             "the headers the code writes for a small run, so they are the ones a run writes. Times are "
             "gradient-flow time (with gradient descent at learning rate lr: lr x steps); x are ratios p / ref, "
             "p probabilities; losses and margins in nats.\n",
             "The parameter columns come first: the loss's parameters (with several losses the union of theirs, "
             "empty where a row's loss does not take one), `ref_w`, `ref_l`, the model's parameters and the "
             "optimiser's: the keys of [Experiment files](experiment-file.md) of the same names.\n",
             "## Statuses\n", _table(["status", "meaning"], ((f"`{s}`", m) for s, m in statuses()))]  # fmt: skip
    params = _parameter_meanings()
    for name, cols in headers.items():
        parts.append(f"## {name}\n")
        notes = META_NOTES if name == "meta.json" else {}
        rows = [(f"`{c}`", notes.get(c) or meaning_of(c, meanings, params)) for c in cols]
        parts.append(_table(["key" if name == "meta.json" else "column", "meaning"], rows))
        for kind, cols in extra.items() if name == "flows.csv" else ():
            parts.append(f'\nRows of `[model] kind = "{kind}"` add, after these:\n')
            parts.append(_table(["column", "meaning"], ((f"`{c}`", meaning_of(c, meanings, {})) for c in cols)))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The command line


def _bench_parser() -> argparse.ArgumentParser | None:
    """The benchmark's own parser (it parses its options itself), caught as it parses ``--help``."""
    main = _first("flowsim.app.bench:main", "flowsim.app.bench.report:main")
    if main is None:
        return None
    caught: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_args

    def grab(self, *a, **k):
        caught.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = grab  # type: ignore[method-assign]
    try:
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            main(["--help"])
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return caught[0] if caught else None


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """``{"flowsim": parser, "flowsim run": subparser, ...}`` from the CLI's argparse."""
    parser = _first("flowsim.cli:build_parser")()
    out = {"flowsim": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name)
                out[f"flowsim {name}"] = sub
    bench = _bench_parser()
    if bench is not None:
        out["flowsim bench"] = bench
    return out


def cli_options(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    """(option strings or argument name, default, help) of each visible action."""
    out = []
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._SubParsersAction):
            continue
        names = ", ".join(a.option_strings) or a.dest
        default = (
            "" if a.default in (None, False, argparse.SUPPRESS) or a.option_strings == ["-h", "--help"] else a.default
        )
        choices = f" (one of {', '.join(map(str, a.choices))})" if a.choices else ""
        out.append((names, str(default), (a.help or "") + choices))
    return out


def cli_page() -> str:
    cli = _first("flowsim.cli")
    parts = ["# Command line\n", "Generated from the CLI's argparse parsers (`flowsim.cli.build_parser`).\n"]
    doc = inspect.getdoc(cli) or ""
    status = doc.split("Exit status:", 1)[1].split("\n\n`")[0] if "Exit status:" in doc else ""
    for name, parser in cli_commands().items():
        parts.append(f"## `{name}`\n")
        parts.append(_cell(parser.description or "") + "\n")
        usage = parser.format_usage().replace("usage: ", "")
        parts.append(f"```\n{usage}```\n")
        parts.append(_table(["argument", "default", "help"], ((f"`{n}`", f"`{d}`" if d else "", h)
                                                            for n, d, h in cli_options(parser))))  # fmt: skip
    if status:
        parts.append("## Exit status\n")
        rows = re.findall(r"^\s*(\d+)\s+(.*?)(?=^\s*\d+\s|\Z)", status, re.S | re.M)
        parts.append(_table(["status", "meaning"], ((c, " ".join(t.split())) for c, t in rows)))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The registries


class _Nan(dict):
    """Metrics that are all NaN: a rule applied to them still says its thresholds."""

    def __missing__(self, key: str) -> float:
        return math.nan


def registries() -> dict[str, dict[str, Any]]:
    """The registered losses, models, optimisers, claims and figure families (and engines, if registered)."""
    models = {k: c for k in kinds_of("model") for c in _model_class(k)[:1]}
    out = {
        "losses": dict(flowsim.LOSSES),
        "models": models,
        "optimisers": dict(_first("flowsim.dynamics.optimisers:OPTIMISERS") or {}),
        "claims": dict(_first("flowsim.analysis.claims:REGISTRY") or {}),
        "figures": {f.name: f for f in _first("flowsim.plotting.registry:FAMILIES") or ()},
    }
    engines = _first("flowsim.dynamics.engines:ENGINES", "flowsim.dynamics.engines:REGISTRY")
    if isinstance(engines, dict):
        out["engines"] = dict(engines)
    return out


def _api(path: str) -> str:
    """A block that renders ``path``'s docstring in the site (mkdocstrings)."""
    return f"::: {path}\n    options:\n      heading_level: 4\n      show_root_heading: false\n      members: false\n"


def _params(cls: Any) -> str:
    return ", ".join(f"{f.name} ({_fmt(f.default)})" for f in dataclasses.fields(cls))


def _beta_range(cls: Any) -> str:
    takes_beta = any(f.name == "beta" for f in dataclasses.fields(cls))
    return f"[{cls.beta_range[0]:g}, {cls.beta_range[1]:g}]" if takes_beta and hasattr(cls, "beta_range") else ""


def _path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def registries_page() -> str:
    reg = registries()
    claims_owner = _first("flowsim.analysis.studies.thresholds:ClaimThresholds")
    th = claims_owner() if claims_owner else None
    parts = ["# Registries\n",
             "Everything flowsim can run or judge is registered by name: one file and one registry line each "
             "(see [Extend flowsim](../how-to/extend.md)). This page is generated from the registries.\n"]  # fmt: skip
    parts += ["## Losses\n", "`[loss] kind`: functions of the log-ratios h = (h_w, h_l) (`flowsim.LOSSES`).\n",
              _table(["kind", "class", "parameters (default)", "beta range", "summary"],
                     ((f"`{k}`", f"`{c.__name__}`", _params(c),
                       _beta_range(c),
                       _summary(c)) for k, c in reg["losses"].items()))]  # fmt: skip
    for k, c in reg["losses"].items():
        parts += [f"### {k}\n", _api(_path(c))]
    parts += ["## Models\n", "`[model] kind`: the policy parameterisations (and the trained network).\n",
              _table(["kind", "class", "parameters (default)", "summary"],
                     ((f"`{k}`", f"`{c.__name__}`", _params(c) or "none",
                       _summary(c)) for k, c in reg["models"].items()))]  # fmt: skip
    for k, c in reg["models"].items():
        parts += [f"### {k}\n", _api(_path(c))]
    parts += ["## Optimisers\n", '`[dynamics] kind` besides "flow": discrete optimisers, t = lr x steps.\n',
              _table(["kind", "class", "hyperparameters (default)", "summary"],
                     ((f"`{k}`", f"`{c.__name__}`", _params(c),
                       _summary(c)) for k, c in reg["optimisers"].items()))]  # fmt: skip
    for k, c in reg["optimisers"].items():
        parts += [f"### {k}\n", _api(_path(c))]
    if "engines" in reg:
        parts += [
            "## Engines\n",
            _table(["name", "summary"], ((f"`{k}`", _summary(v)) for k, v in reg["engines"].items())),
        ]
    parts += ["## Claims\n",
              "The claims `flowsim analyze` judges (`flowsim.analysis.claims.REGISTRY`), each with the paper's "
              "words, what is measured, its rule at the default thresholds (overridable in the experiment's "
              "[claims] table) and the models it speaks of.\n",
              _table(["claim", "statement", "measured", "rule (default thresholds)", "models"],
                     ((f"`{c.id}`", c.title, c.metric, c.rule(_Nan(), th)[1] if th else "", ", ".join(c.models))
                      for c in reg["claims"].values()))]  # fmt: skip
    for c in reg["claims"].values():
        parts += [f"### {c.id}: {c.title}\n",
                  f"> {c.paper}\n>\n> — {c.where}\n",
                  _table(["", ""], [("measured", c.metric),
                                    ("rule", c.rule(_Nan(), th)[1] if th else ""),
                                    ("rule in full", " ".join((inspect.getdoc(c.rule) or "").split())),
                                    ("fails if", " ".join((inspect.getdoc(c.measure) or "").split())),
                                    ("thresholds", ", ".join(f"`{t}` = {_fmt(getattr(th, t))}" for t in c.thresholds)
                                     if th else ", ".join(c.thresholds)),
                                    ("models", ", ".join(c.models)),
                                    ("losses", ", ".join(c.losses) if c.losses else "any"),
                                    ("columns read", ", ".join(f"`{x}`" for x in c.columns))])]  # fmt: skip
    parts += ["## Figures\n",
              "The figure families `flowsim plot` draws (`flowsim.plotting.registry.FAMILIES`), each for the "
              "models it declares; `kinds` select them in `plot_results(kinds=...)`.\n",
              _table(["family", "kinds", "models", "what it draws"],
                     ((f"`{f.name}`", ", ".join(f.kinds), ", ".join(f.models) if f.models else "all",
                       _summary(inspect.getmodule(f.draw))) for f in reg["figures"].values()))]  # fmt: skip
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The Python API


def api_names() -> list[tuple[str, str]]:
    """(public name, defining path) of flowsim's top-level exports that are functions or classes."""
    out = []
    for name in flowsim.__all__:
        obj = getattr(flowsim, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            out.append((name, f"{obj.__module__}.{obj.__qualname__}"))
    return out


#: The pipelines behind the commands and the tutorial, documented beside the top-level names (where they exist).
API_MORE: tuple[tuple[str, str], ...] = (
    ("Experiments", "flowsim.experiment.config:load_experiment"),
    ("Experiments", "flowsim.experiment.config:parse_experiment"),
    ("Experiments", "flowsim.experiment.config:Experiment"),
    ("Pipelines", "flowsim.app.run:run"),
    ("Pipelines", "flowsim.app.analyze:analyze"),
    ("Pipelines", "flowsim.app.plot:plot"),
    ("Pipelines", "flowsim.app.reproduce:reproduce"),
    ("Pipelines", "flowsim.app.load:RunResults"),
    ("Dynamics", "flowsim.dynamics.optimisers:make_optimiser"),
    ("Dynamics", "flowsim.dynamics.optimisers:run_discrete"),
    ("Analysis", "flowsim.analysis.studies.dpo_field:evaluate_claims"),
    ("Analysis", "flowsim.analysis.tables:region_table"),
    ("Figures", "flowsim.plotting:plot_results"),
    ("Figures", "flowsim.plotting:plot_field"),
)


def api_page() -> str:
    parts = [
        "# Python API\n",
        "`import flowsim` gives the names of the first part (imported lazily); the second part holds the "
        "pipelines behind the commands. Each is documented from its docstring. The registries are on "
        "[Registries](registries.md).\n",
        "## import flowsim\n",
    ]
    block = ("::: {}\n    options:\n      show_root_heading: false\n      show_root_toc_entry: false\n"
             "      heading_level: 4\n")  # fmt: skip
    for name, path in api_names():
        parts += [f"### flowsim.{name}\n", block.format(path)]
    section = ""
    for title, spec in API_MORE:
        obj = _first(spec)
        if obj is None:  # moved or gone: the page follows the code
            continue
        if title != section:
            parts.append(f"## {title}\n")
            section = title
        path = f"{obj.__module__}.{obj.__qualname__}"
        parts += [f"### {path}\n", block.format(path)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Tables drawn from committed results, and the package map


def benchmark_page(csv: Path) -> str:
    """The performance tables, drawn from ``results/benchmark.csv`` (what ``flowsim bench --publish`` wrote)."""
    import pandas as pd

    b = pd.read_csv(csv)
    parts = [f"The tables below are drawn from `{csv.parent.name}/{csv.name}` when the site is built.\n"]
    machine = b.loc[b["line"] == "machine", "note"]
    if len(machine):
        parts.append(f"Machine and run: {machine.iloc[0]}\n")
    timed = b[b["line"] == "timed"].copy()
    for problem, rows in timed.groupby("problem", sort=False):
        flows, compute = rows["flows_per_s"], rows["compute_flows_per_s"]
        cells = [f"{f:,.0f} ({c:,.0f})" for f, c in zip(flows, compute, strict=True)]
        what = [f"{c}, {a} accuracy" + (f", rtol {r:g}" if r == r else "") + f", {w:g} worker(s), {be}"
                for c, a, r, w, be in zip(rows["contender"], rows["accuracy"], rows["rtol"], rows["workers"],
                                          rows["backend"], strict=True)]  # fmt: skip
        rows = rows.assign(cell=cells, what=what)
        grids = list(dict.fromkeys(rows["grid"]))
        table = rows.pivot_table(index="what", columns="grid", values="cell", aggfunc="first", sort=False)
        parts.append(f"#### DPO, {problem}: flows per second, whole process (compute alone)\n")
        parts.append(_table(["contender", *grids], ([w, *(table.loc[w].get(g, "") if isinstance(
            table.loc[w].get(g, ""), str) else "" for g in grids)] for w in table.index)))  # fmt: skip
    agree = b[b["line"] == "batched_vs_driver"]
    if len(agree):
        parts.append("#### The batched engine against the driver, row by row\n")
        rows = zip(agree["problem"], agree["grid"], agree["rtol"], agree["worst_rel_err"], agree["statuses_agree"],
                   strict=True)  # fmt: skip
        parts.append(_table(["problem", "grid", "rtol", "worst relative t_stop difference", "statuses agree"],
                            ((p, g, f"{r:g}", f"{e:.2g}", s) for p, g, r, e, s in rows)))  # fmt: skip
    opt = b[b["line"] == "optimiser"]
    if len(opt):
        parts.append("#### Discrete optimisers: start-steps per second per core (logits K = 10)\n")
        parts.append(
            _table(
                ["optimiser", "start-steps/s"],
                ((o, f"{v:,.0f}") for o, v in zip(opt["contender"], opt["value"], strict=True)),
            )
        )
    net = b[b["line"] == "network"]
    if len(net):
        parts.append("#### The network model (one process)\n")
        parts.append(
            _table(
                ["trainings/s", "SFT + DPO steps/s"],
                ((f"{t:.1f}", f"{v:,.0f}") for t, v in zip(net["flows_per_s"], net["value"], strict=True)),
            )
        )
    tgt = b[b["line"] == "target"]
    if len(tgt):
        parts.append("#### Against the targets of issue #23\n")
        cols = [tgt[c] for c in ("problem", "contender", "grid", "flows_per_s", "value")]
        met = (
            (p, c, g, f"{f:,.0f}", f"{v:,.0f}", "yes" if f >= v else "no") for p, c, g, f, v in zip(*cols, strict=True)
        )
        parts.append(_table(["problem", "contender", "grid", "flows/s", "target", "met"], met))
    return "\n".join(parts)


def package_map(root: Path) -> str:
    """Every module of the package with the first line of its docstring (read with ast, nothing imported)."""
    import ast

    rows = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        rows.append((f"`{name}`", doc.split("\n\n")[0].replace("\n", " ")))
    return _table(["module", "what it is"], rows)


PAGES: dict[str, Callable[[], str]] = {
    "experiment-file.md": experiment_page,
    "results-files.md": results_page,
    "cli.md": cli_page,
    "registries.md": registries_page,
    "api.md": api_page,
}


def write(outdir: Path) -> list[Path]:
    """Write every generated page into ``outdir``; return their paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, make in PAGES.items():
        path = outdir / name
        path.write_text(make())
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")):
        print(p)
