"""The documentation's reference pages, generated from flowsim's code at build time.

Nothing here restates a fact the code holds: the experiment file's keys are found by asking the
parser itself (an unknown key is refused with the list of keys allowed there; a bad value with the
rule it breaks), their defaults by parsing a file that leaves them out, their meanings from the
numpydoc ``Parameters`` of the class that owns them; the results files' columns by running a
tiny experiment and reading the headers it writes; the CLI from argparse; the losses, models,
optimisers, engines, claims and figure families from their registries.  What no code says (what a
results column means when no docstring does, what a table is for) is written once, below, in
``NOTES`` and ``COLUMN_NOTES``; a key or column with no meaning from either fails the build.

Every name is imported directly, so a name that moves in flowsim breaks the build (an ImportError
here), never quietly empties a page.  One file, imported by ``docs/_hooks.py`` (the site) and
``tests/unit/test_docs_reference.py``.

    python docs/_gen.py OUTDIR      # write the pages into OUTDIR (what the build does)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import inspect
import io
import json
import math
import re
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import flowsim
import flowsim.cli
from flowsim._validation import ParamError
from flowsim.analysis.claims import REGISTRY as CLAIMS
from flowsim.analysis.studies.dpo_field import evaluate_claims
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import region_table
from flowsim.app.analyze import analyze
from flowsim.app.bench import main as bench_main
from flowsim.app.load import RunResults
from flowsim.app.plot import plot
from flowsim.app.reproduce import reproduce
from flowsim.app.run import run
from flowsim.app.trace import trace as trace_command
from flowsim.app.trace.output import OUTPUTS as TRACE_OUTPUTS
from flowsim.cli import build_parser
from flowsim.dynamics import record
from flowsim.dynamics.driver import SolverOptions
from flowsim.dynamics.engines import ENGINES, Engine, Task, choose
from flowsim.dynamics.optimisers import OPTIMISERS, make_optimiser, run_discrete
from flowsim.dynamics.record import STATUSES, FlowResult, StopRule
from flowsim.errors import UserError
from flowsim.experiment.config import Experiment, load_experiment, parse_experiment
from flowsim.experiment.regions import REGIONS
from flowsim.experiment.store import RUN_FILE
from flowsim.integrations.folder import FORMAT as TRACE_FORMAT
from flowsim.integrations.folder import REFERENCE_STEP, TraceWriter
from flowsim.model.parameterisations import MODELS, Model, Parameterisation, Policy
from flowsim.model.probes import PROBE_MEANINGS
from flowsim.plotting import plot_field, plot_results
from flowsim.plotting.registry import FAMILIES

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
    "solver.method": 'A `solve_ivp` method, or "auto" (DOP853; a stiff flow goes to LSODA by Hairer\'s test). '
    '`method = "exact"`, the spelling of older files, reads as `engine = "exact"`.',
    "solver.engine": 'How rows are computed (see [Engines](registries.md#engines)): "auto", for each combination '
    "the first engine in the registry's order that runs it and is verified for it; or one engine by name "
    '("exact": the closed form registered for the (loss, model) pair).',
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
    "engine": "The engine that computed the row (see [Engines](registries.md#engines)); a row the batched "
    'engine handed over to the per-start driver says "driver".',
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
    "study": "The study the claim belongs to (`flowsim.analysis.studies.STUDIES`: dpo_field, displacement).",
    "low": "Seeds pooled: the lower end of the value's 95% bootstrap interval over the seeds (NaN without).",
    "high": "The upper end of that interval.",
    "uncertain": "True where the interval of a metric the rule reads straddles one of its thresholds.",
    "n_seeds": "Seed combinations (init_seed x data_seed) pooled in the group.",
    "intervals": 'Each metric the rule reads as JSON {"metric": [pooled value, low, high]} ("" without seeds).',
}
#: meta.json's keys: what a run's results depend on (the same when the run is made again).
META_NOTES: dict[str, str] = {
    "experiment": "The experiment as run, after defaults, in the file's own shape.",
    "rows": "Rows in flows.csv.",
    "counts_by_status": "Rows by status.",
    "counts_by_engine": "Rows by the engine that computed them (the `engine` column).",
    "flows_bytes": "Size of flows.csv; analyze, plot and reproduce check it.",
    "flows_sha256": "SHA-256 of flows.csv; analyze, plot and reproduce check it.",
    "starts_left_out": "Grid points a normalised model could not take (p1 + p2 >= 1).",
    "versions": "Versions of flowsim, Python and the numerical libraries.",
    "git_commit": "The commit of the code that ran (with -dirty for uncommitted changes).",
}
#: run.json's keys: how this run went (differs on every run; git-ignored, never compared by reproduce).
RUN_NOTES: dict[str, str] = {
    "started": "Start time (UTC, ISO 8601).",
    "finished": "End time.",
    "wall_time_s": "The sweep's wall time (seconds).",
    "resumed": "Whether the sweep was resumed (`--resume`).",
    "n_jobs": "Workers asked for (-1: all cores).",
    "backend": "Where chunks ran: fork, loky or dask.",
    "chunk_size": "Flows per chunk.",
    "machine": "The machine the sweep ran on:",
    "machine.cpus": "Its CPUs (`os.cpu_count()`).",
    "machine.platform": "Its platform (`platform.platform()`).",
    "machine.host": "Its host name.",
    "machine.load_1min": "The 1-minute load average at the end of the sweep (empty where the OS does not say).",
}
#: Keys of run.json whose fields are listed one by one (dotted).
RUN_NESTED = ("machine",)
#: loss_comparison.csv's columns that no other file has (``p_w_final_<region>`` is derived, one per region).
LOSS_COMPARISON_NOTES: dict[str, str] = {
    "n": "Rows of the (model, loss) that did not fail; the shares below are of these.",
    "share_displaced": "Share of them displaced (p_w fell below p_w0 at some time).",
    "share_l_before_w": "Share where p_l reached p2_target before p_w reached p1_target (a target never reached "
    "counts as never).",
    "displacement_impossible": "Whether the model declares displacement impossible by construction for the loss at "
    "every start (`Model.impossible`; see [Claims](../explanation/claims.md#impossible-by-construction)): a "
    "share_displaced of 0 is then no finding about the loss.",
}
#: The files of a trace, by file: what their columns and keys mean where a sweep's words do not fit (a trace's
#: flows.csv takes a sweep's meaning for the others; its JSON files and logps.csv have notes for every key).
_TRACE_PAIR = "The pair's position in the probe set."
TRACE_NOTES: dict[str, dict[str, str]] = {
    "logps.csv": {
        "step": "Optimiser steps taken before the record (-1: the reference).",
        "what": '"reference" or "policy".',
        "probe": _TRACE_PAIR,
        "index": "The pair's row in the training set (TRL's `train_dataset`).",
        "logp_w": "log pi(y_w|x) of the pair, summed over the completion's tokens as TRL scores it (nats).",
        "logp_l": "log pi(y_l|x), as logp_w (nats).",
    },
    "meta.json": {
        "format": f'"{TRACE_FORMAT}".',
        "trace": "The trace's spec: model, dtype, versions, beta, loss type, probe seed and indices, every (a resumed "
        "training must give the same).",
        "history": "TRL's logged batch means (`logps/*`, `rewards/*`, the loss) by step, from `log_history`.",
        "training": "The training's settings (learning rate, optimiser, schedule, batch size, ..., global step, seed) "
        "and the median seconds per recording.",
        "steps": "The steps recorded (the policy after s optimiser steps).",
        "rows": "Rows in logps.csv.",
        "logps_bytes": "Size of logps.csv; `flowsim trace` checks it.",
        "logps_sha256": "SHA-256 of logps.csv; `flowsim trace` checks it.",
        "versions": "Versions of flowsim, Python and the numerical libraries.",
        "commit": "flowsim's commit.",
        "started": "When the training started recording (local time, ISO 8601).",
        "finished": "When it finished.",
    },
    "flows.csv": {
        "pair": _TRACE_PAIR,
        "index": "The pair's row in the training set (TRL's `train_dataset`).",
        "status": '"timeout": the training stopped by its own step count.',
        "t_stop": "Optimiser steps between the first and the last recorded step.",
        "t_w": "The first recorded step (from the first) with p_w >= p1_target of flowsim's default stop rule; empty "
        "if never.",
        "t_l": "The first recorded step with p_l <= p2_target; empty if never.",
        "nfev": "Recorded steps.",
        "steps": "The trainer's step at the last record.",
        "t_p_w_min": "The recorded step (from the first) where p_w was lowest.",
        "loss": "flowsim's loss of the same formula as TRL's `loss_type` (`sigmoid` is DPO), or `trl:<loss_type>` "
        "where flowsim has none.",
        "model": '"network": the pairs share the parameters.',
        "dynamics": "TRL's optimiser (`optim`).",
        "reference": '"initial": each pair has its own reference, the recorded one.',
        "ref_w": "The reference's pi(y_w|x) of the pair, recorded once.",
        "ref_l": "The reference's pi(y_l|x) of the pair.",
        "engine": '"trl".',
        "message": "Empty, or that the trace was interrupted and at which step.",
        "logp_w0": "log pi(y_w|x) of the pair at the first recorded step (nats).",
        "logp_l0": "log pi(y_l|x) at the first recorded step (nats).",
        "logp_w_final": "log pi(y_w|x) at the last recorded step (nats).",
        "logp_l_final": "log pi(y_l|x) at the last recorded step (nats).",
        "dp1_dt_0": "The observed rate of p_w over the first recorded interval (per step): the field the claims read.",
        "dp2_dt_0": "The observed rate of p_l over the first recorded interval (per step).",
        "grad_norm_0": "Empty (not recorded).",
        "path": "The pair's recorded path as JSON `[[step, log p_w, log p_l], ...]`.",
    },
    "predicted.csv": {
        "pair": _TRACE_PAIR,
        "ideal_model": 'The idealised model of the row ("ratio" or "logits").',
    },
    "trace.json": {
        "source": "The trace folder traced (absolute path).",
        "trace": "The trace's spec with the training's settings, as the callback's meta.json records them "
        "(TRL's logged history left out).",
        "rows": "Rows in flows.csv.",
        "flows_bytes": "Size of this folder's flows.csv.",
        "flows_sha256": "SHA-256 of this folder's flows.csv.",
    },
    "batch_mean.csv": {
        "step": "TRL's logging step.",
        "gm_p_w": "Geometric mean over the step's batch of p_w: exp(`logps/chosen`).",
        "gm_p_l": "Geometric mean of p_l: exp(`logps/rejected`).",
        "gm_x1": "Geometric mean of x1 = p_w / p_ref: exp(`rewards/chosen` / beta).",
        "gm_x2": "Geometric mean of x2: exp(`rewards/rejected` / beta).",
    },
}
#: What each output of ``flowsim trace`` is (the files are :data:`TRACE_OUTPUTS`; one without a note fails the build).
TRACE_FILES: dict[str, str] = {
    "flows.csv": "One row per probe pair in the flows.csv schema (below).",
    "trace.json": "The source folder, the trace's record, and the rows, bytes and sha256 of flows.csv.",
    "regions.csv": "The region tables, as `flowsim analyze` writes them.",
    "claims.csv": "The claims that read rows, judged as for a sweep.",
    "claims.md": "The same as a report, with why the others are not applicable.",
    "predicted.csv": "The idealised flows from the same starts and references, same loss and beta, on the ratio "
    "plane and softmax logits, stopped at the run's median implicit reward margin (where flowsim has the loss).",
    "trace.md": "The report: the run, the predicted-vs-observed table, the claims, the figures.",
    "batch_mean.md": "From a plain `trainer_state.json`: the batch-mean path, with why it is no pair's path.",
    "batch_mean.csv": "Its values, one row per logged step (below).",
    "figures": "The starts, each pair's path in (p_w, p_l) and on the (x1, x2) plane with the idealised paths and the "
    "field; or `batch_mean.png`.",
}
_QUANTILES = {"median": "median", "q25": "lower quartile", "q75": "upper quartile"}


# ---------------------------------------------------------------------------------------------------------------
# Small readers of docstrings and comments


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
    out, pending = {}, []
    for line in inspect.getsource(obj).splitlines():
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


#: The least file the parser accepts: a name and a one-point grid (a mesh needs its axes).
_MINIMAL = {
    "name": "probe",
    "grid": {"p1": {"start": 0.5, "stop": 1.0, "num": 1}, "p2": {"start": 0.25, "stop": 1.0, "num": 1}},
}
#: Keys every kind of a table takes alike (others, such as beta, are listed under each kind: defaults differ).
_COMMON_KEYS = ("kind", "reference", "ref_w", "ref_l")


def _refusal(doc: dict) -> str | None:
    """The parser's message for ``doc``, or None if it accepts it."""
    try:
        parse_experiment(doc)
    except UserError as exc:  # a refusal is the answer; any other exception is a bug and fails the build
        return str(exc)
    return None


def _nested(where: str, value: dict, around: dict | None = None) -> dict:
    """The least file with ``value`` as table ``where`` (dotted; "" the top level), ``around``'s tables merged in
    (e.g. ``[dynamics] kind = "gd"`` around ``[dynamics.gd]``)."""
    doc = copy.deepcopy(_MINIMAL)
    for table, keys in (around or {}).items():
        doc.setdefault(table, {}).update(copy.deepcopy(keys))
    if not where:
        return doc | value
    *parents, last = where.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


def allowed_keys(where: str, base: dict | None = None, around: dict | None = None) -> list[str]:
    """The keys the parser allows in table ``where`` (dotted; "" for the top level), given ``base`` there."""
    msg = _refusal(_nested(where, {**(base or {}), "zz_probe": 1}, around)) or ""
    m = re.search(r"unknown key '([^']*)'; allowed here: (.*)$", msg, flags=re.M)
    if not m:
        raise RuntimeError(f"the parser did not list the keys allowed in [{where}]: {msg!r}")
    return [k.strip() for k in m.group(2).split(",")]


def kinds_of(where: str) -> list[str]:
    """The values the parser accepts for ``where.kind`` (from its refusal of an unknown one)."""
    msg = _refusal(_nested(where, {"kind": "zz_probe"})) or ""
    m = re.search(r"must be one of \[([^\]]*)\]", msg) or re.search(r"must be one of ((?:'[^']*'(?:, )?)+)", msg)
    if not m:
        raise RuntimeError(f"the parser did not list the kinds of [{where}]: {msg!r}")
    return re.findall(r"'([^']*)'", m.group(1))


@functools.cache
def _default_kinds() -> dict[str, str]:
    """Each table's kind in a file that names none."""
    exp = parse_experiment(_MINIMAL)
    grid = exp.as_dict()["grid"]["kind"]
    return {"loss": exp.loss_kind, "model": exp.model_kind, "dynamics": exp.dynamics[0][0], "grid": grid}


def _rules(where: str, base: dict, key: str, default: Any, around: dict | None) -> tuple[list[str], bool]:
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
        msg = _refusal(_nested(where, {**base, key: v}, around)) or ""
        m = re.search(rf": {re.escape(dotted)} (.*?); got ", msg)
        if m and m.group(1) not in rules:
            rules.append(m.group(1))
    swept = False
    if default is not None and not isinstance(default, dict | list):  # a list is swept where no refusal names it
        swept = f"{dotted} " not in (_refusal(_nested(where, {**base, key: [default, default]}, around)) or "")
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


_TYPE_NAMES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list | tuple, "list"), (dict, "table"))


def _type_name(v: Any) -> str:
    return next((name for t, name in _TYPE_NAMES if isinstance(v, t)), "")


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


def _defaults(where: str, base: dict, around: dict | None) -> dict:
    """The table ``where`` after defaults, as meta.json records it (``Experiment.as_dict``)."""
    node: Any = parse_experiment(_nested(where, base, around)).as_dict()
    for p in where.split(".") if where else []:
        node = node.get(p, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _table_keys(
    where: str,
    base: dict,
    owners: list[Any],
    kinds: tuple[str, ...] = (),
    skip: Iterable[str] = (),
    around: dict | None = None,
) -> list[Key]:
    """Every key allowed in ``where`` (with ``base`` there), described from ``owners``' docstrings."""
    try:
        defaults = _defaults(where, base, around)
    except UserError:  # a table that needs more than base (the network: an optimiser; the grid: its axes)
        defaults = {}
    described: dict[str, str] = {}
    field_defaults: dict[str, Any] = {}
    for owner in owners:
        described = {**comment_docs(owner), **numpydoc_params(owner), **described}
        for f in dataclasses.fields(owner):
            if f.default is not dataclasses.MISSING:
                field_defaults.setdefault(f.name, f.default)
    order = [f.name for o in owners for f in dataclasses.fields(o)]
    out = []
    for k in sorted(allowed_keys(where, base, around), key=lambda k: order.index(k) if k in order else -1):
        if k in skip and k not in order:
            continue
        default = defaults.get(k, field_defaults.get(k))
        rules, swept = _rules(where, base, k, default, around) if k != "kind" else ([], False)
        meaning = NOTES.get(f"{where}.{k}" if where else k) or described.get(k, "")
        out.append(
            Key(
                where,
                k,
                kinds,
                _type_name(default),
                "" if default is None and k not in field_defaults else _fmt(default),
                rules,
                swept,
                meaning,
            )
        )
    return out


def _described_kind(key: Key) -> Key:
    """A table's ``kind`` key with the kinds the parser accepts and the one it takes when none is named."""
    key.rules = [f"one of {', '.join(map(repr, kinds_of(key.table)))}"]
    key.default = _fmt(_default_kinds()[key.table])
    return key


@functools.cache
def experiment_keys() -> list[Key]:
    """Every key of the experiment file, by table, found by asking the parser."""
    keys = [Key("", k, meaning=NOTES.get(k, ""), type="str" if k == "name" else "table") for k in allowed_keys("")]
    keys += _kind_keys("loss", flowsim.LOSSES)
    keys += _kind_keys("model", MODELS)
    keys += _dynamics_keys()
    keys += _grid_keys()
    keys += _table_keys("stop", {}, [StopRule, Experiment])
    keys += _table_keys("solver", {}, [SolverOptions, Experiment])
    keys += _table_keys("regions", {}, [Experiment]) + _claims_keys()
    _all_described("experiment keys", {k.dotted: k.meaning for k in keys})
    return keys


def _all_described(what: str, meanings: dict[str, str]) -> None:
    """Fail the build where a key or column has no meaning (no docstring gives one and no note here)."""
    missing = [k for k, text in meanings.items() if not text.strip()]
    if missing:
        raise RuntimeError(f"{what} without a meaning (add it to the owner's docstring, or NOTES): {missing}")


def _kind_keys(where: str, registry: dict[str, type]) -> list[Key]:
    """The table's keys for every kind of ``registry``: the common ones once, each kind's own under it."""
    kinds = kinds_of(where)
    per_kind = {k: _table_keys(where, {"kind": k}, [registry[k]], (k,)) for k in kinds}
    shared = set.intersection(*({x.key for x in v} for v in per_kind.values()))
    out = [
        dataclasses.replace(x, kinds=())
        for x in per_kind[kinds[0]]
        if x.key in shared and (x.key in _COMMON_KEYS or len(kinds) == 1)
    ]
    out = [_described_kind(x) if x.key == "kind" else x for x in out]
    done = {x.key for x in out}
    for k in kinds:
        out += [x for x in per_kind[k] if x.key not in done]
    return out


def _dynamics_keys() -> list[Key]:
    out = [_described_kind(x) for x in _table_keys("dynamics", {}, []) if x.key == "kind"]
    for k, cls in OPTIMISERS.items():  # each optimiser's keys in its sub-table [dynamics.<kind>] (or directly)
        out += _table_keys(f"dynamics.{k}", {}, [cls], (k,), skip=("kind",), around={"dynamics": {"kind": k}})
    return out


def _grid_keys() -> list[Key]:
    out = [_described_kind(x) if x.key == "kind" else x for x in _table_keys("grid", {}, [])]
    axis = {"start": 0.01, "stop": 1.0, "num": 3}
    for ax in ("p1", "p2"):
        for x in _table_keys(f"grid.{ax}", axis, []):
            x.meaning = x.meaning or NOTES[f"grid.p1.{x.key}"]
            x.default = "" if x.key in axis else x.default  # required keys (base gave them)
            x.rules = x.rules if x.key != "spacing" else ['"linear" or "log"']
            out.append(x)
    for k in kinds_of("grid"):
        if k != _default_kinds()["grid"]:
            for x in _table_keys("grid", {"kind": k, "n": 4}, [], (k,), skip=("kind",)):
                x.default = "" if x.key == "n" else x.default
                out.append(x)
    return out


def _claims_keys() -> list[Key]:
    """[claims]: the thresholds of :class:`ClaimThresholds` (the analysis validates them, not the parser)."""
    desc = numpydoc_params(ClaimThresholds)
    out = []
    for f in dataclasses.fields(ClaimThresholds):
        rules = []
        for v in (-1e300, 0.0, 1e300):
            try:
                ClaimThresholds(**{f.name: v})
            except ParamError as exc:
                if exc.key == f.name and exc.rule not in rules:
                    rules.append(exc.rule)
        out.append(Key("claims", f.name, (), _type_name(f.default), _fmt(f.default), rules, False, desc[f.name]))
    return out


def experiment_page() -> str:
    parts = [
        "# Experiment files\n",
        "An experiment is a TOML file; `flowsim run FILE` runs it. Every key below is found by asking the "
        "parser (`flowsim.experiment.config.parse_experiment`), its default by parsing a file that leaves "
        "it out, its accepted values from the parser's own refusals, and its meaning from the docstring of "
        "the class that owns it. *Swept*: a list of values is swept (the sweep runs over the Cartesian "
        "product). A key of one kind only is listed under that kind.\n",
        "```toml\n" + _example_toml() + "```\n",
    ]
    header = ["key", "type", "default", "accepted values", "swept", "meaning"]
    tables: dict[str, list[Key]] = {}
    for k in experiment_keys():
        tables.setdefault(k.table.split(".")[0], []).append(k)
    for table, ks in tables.items():
        parts.append(f"## {'[' + table + ']' if table else 'top level'}\n")
        if table and NOTES.get(table):
            parts.append(NOTES[table] + "\n")
        groups: dict[tuple[str, ...], list[Key]] = {}
        for k in ks:
            groups.setdefault(k.kinds, []).append(k)
        for kinds, group in groups.items():
            if kinds:
                sub = f" (a sub-table [{table}.{kinds[0]}], or directly in [{table}] for one kind)"
                sub = sub if table == "dynamics" else ""
                parts.append(f'### {table}: kind = "{kinds[0]}"{sub}\n')
            parts.append(
                _table(
                    header,
                    (
                        (
                            f"`{k.dotted}`",
                            k.type,
                            f"`{k.default}`" if k.default else "",
                            "; ".join(k.rules),
                            "yes" if k.swept else "",
                            k.meaning,
                        )
                        for k in group
                    ),
                )
            )
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
    parse_experiment(tomllib.loads(text))
    return text


# ---------------------------------------------------------------------------------------------------------------
# The results files, from a tiny run


def results_headers(workdir: Path | None = None) -> dict[str, list[str]]:
    """The columns and keys of every results file as the code writes them: a 2 x 2 closed-form run of two
    losses (flows.csv, meta.json, run.json; analyze's regions.csv, claims.csv, loss_comparison.csv) and a
    trace of a few pairs written by the callback's writer (``trace: ...``, see :func:`trace_headers`)."""
    with contextlib.ExitStack() as stack:
        work = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        toml = work / "tiny.toml"
        toml.write_text(
            'name = "tiny"\n[loss]\nkind = ["dpo", "ipo"]\n[grid]\np1 = { start = 0.2, stop = 0.8, '
            "num = 2 }\np2 = { start = 0.2, stop = 0.8, num = 2 }\n"
        )
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(toml, work / "run", n_jobs=1, progress=False)
            list(analyze(work / "run", progress=False))
        names = ("flows.csv", "regions.csv", "claims.csv", "loss_comparison.csv", "meta.json", RUN_FILE)
        out = {name: _header(work / "run" / name) for name in names}
        return out | trace_headers(work / "trace")


def _header(path: Path) -> list[str]:
    """A CSV file's columns, or a JSON file's keys (those of :data:`RUN_NESTED` field by field, dotted)."""
    if path.suffix == ".csv":
        return path.read_text().splitlines()[0].split(",")
    doc = json.loads(path.read_text())
    nested = RUN_NESTED if path.name == RUN_FILE else ()
    return [x for k, v in doc.items() for x in (k, *(f"{k}.{f}" for f in (v if k in nested else ())))]


def trace_headers(work: Path) -> dict[str, list[str]]:
    """The files of a trace: a callback's folder of 4 pairs and 3 steps, written by its writer
    (:class:`~flowsim.integrations.folder.TraceWriter`, as the TRL callback does, without TRL), then
    ``flowsim trace`` on it; and ``flowsim trace`` on a ``trainer_state.json`` of two logged steps."""
    index, rng = [3, 7, 11, 19], np.random.default_rng(0)
    ref = rng.uniform(-4.0, -1.5, (4, 2))
    writer = TraceWriter(
        work / "run",
        {
            "format": TRACE_FORMAT,
            "beta": 0.1,
            "loss_type": ["sigmoid"],
            "probe_index": index,
            "probe_seed": 0,
            "every": 1,
        },
    )
    writer.open(0)
    writer.write(REFERENCE_STEP, "reference", index, ref)
    for step in range(3):
        writer.write(step, "policy", index, ref + step * rng.uniform([0.0, -0.6], [0.4, 0.0], (4, 2)))
    writer.finish({"history": [], "training": {"optim": "adamw_torch"}})
    state = {
        "log_history": [
            {
                "step": s,
                "logps/chosen": -3.0 + 0.1 * s,
                "logps/rejected": -3.0 - 0.2 * s,
                "rewards/chosen": 0.01 * s,
                "rewards/rejected": -0.02 * s,
            }
            for s in (1, 2)
        ]
    }
    (work / "trainer_state.json").write_text(json.dumps(state))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        trace_command(work / "run")
        trace_command(work / "trainer_state.json", work / "batch")
    traced = work / "run" / "flowsim"
    files = {
        "logps.csv": work / "run" / "logps.csv",
        "meta.json": work / "run" / "meta.json",
        "flows.csv": traced / "flows.csv",
        "predicted.csv": traced / "predicted.csv",
        "trace.json": traced / "trace.json",
        "batch_mean.csv": work / "batch" / "batch_mean.csv",
    }
    return {f"trace: {name}": _header(path) for name, path in files.items()}


def column_meanings() -> dict[str, str]:
    """Every column's meaning: the record's docstring and comments first, then :data:`COLUMN_NOTES`."""
    out = {k: v for k, v in numpydoc_params(FlowResult, "Attributes").items() if not k.startswith("path")}
    path_doc = comment_docs(record)["PATH_FIELDS"]
    for name, text in re.findall(r"``(\w+)``(?: and ``\w+``)?: (.*?)(?=; ``|$)", path_doc):
        out[name] = text.rstrip(". ")
    for first, second, text in re.findall(r"``(\w+)`` (?:and|/) ``(\w+)``: (.*?)(?=; ``|$)", path_doc):
        out[first] = out[second] = text
    return out | COLUMN_NOTES | PROBE_MEANINGS


def meaning_of(column: str, meanings: dict[str, str], params: dict[str, str]) -> str:
    """A column's meaning, derived for the families of columns the code builds (n_<status>, <col>_<quantile>)."""
    if column in meanings:
        return meanings[column]
    if column in params and column not in ("ref_w", "ref_l"):
        return f"A parameter of the row's combination: {params[column]}."
    if column.startswith("n_") and column[2:] in STATUSES:
        return f"Rows with status {column[2:]}."
    base, _, q = column.rpartition("_")
    if q in _QUANTILES and base:
        return f"The {_QUANTILES[q]} of {base} over the region's rows ({meanings.get(base, '').rstrip('.')})."
    return ""


def extra_columns() -> dict[str, tuple[str, ...]]:
    """The columns a model's rows add after flows.csv's own, by model kind (each model's ``extra_columns``)."""
    return {k: cls.extra_columns for k, cls in MODELS.items() if cls.extra_columns}


def statuses() -> list[tuple[str, str]]:
    """Each status and its meaning, from the ``#:`` comment on :data:`STATUSES`."""
    found = dict(re.findall(r"``(\w+)``: (.*?)(?=; ``|$)", comment_docs(record)["STATUSES"]))
    return [(s, found.get(s, "")) for s in STATUSES]


def _parameter_meanings() -> dict[str, str]:
    out: dict[str, str] = {}
    for k in experiment_keys():
        if k.table.split(".")[0] in ("loss", "model", "dynamics") and k.key not in ("kind", "reference"):
            out.setdefault(k.key, f"the experiment key `{k.dotted}`")
    return out


#: Each run file's own notes, which must name exactly the keys the file has (a key moved between them fails).
_KEY_NOTES = {"meta.json": META_NOTES, RUN_FILE: RUN_NOTES}
#: What each file of a run folder is for, under its heading.
_FILE_INTROS = {
    "loss_comparison.csv": "Written by `flowsim analyze` when the run has several losses: one row per (model, loss), "
    "the losses compared (the figure `loss_comparison` draws it).\n",
    "meta.json": "What the results depend on: the same whenever the run is made again (committed with results; "
    "`flowsim reproduce` compares it, reporting the commit and versions as notes).\n",
    RUN_FILE: "How this run went: times, workers, host, load. It differs on every run, so it is kept out of the "
    "committed results (git-ignored) and out of reproduce's comparison; `flowsim.load` adds it to `.meta`.\n",
}


def _key_rows(name: str, keys: list[str], notes: dict[str, str]) -> list[tuple[str, str]]:
    """A file's keys with their notes; a key without one, or a note of a key the file lacks, fails the build."""
    stale = sorted(set(notes) - set(keys))
    if stale:
        raise RuntimeError(f"{name} no longer has {stale}: move their notes to the file that has them")
    return [(f"`{k}`", notes.get(k, "")) for k in keys]


def _loss_comparison_meaning(column: str, meanings: dict[str, str]) -> str:
    if column.startswith("p_w_final_") and column.removeprefix("p_w_final_") in REGIONS:
        return f"The median final p_w of the starts in the {column.removeprefix('p_w_final_')} region (empty: none)."
    return LOSS_COMPARISON_NOTES.get(column) or meanings.get(column, "")


def results_page(headers: dict[str, list[str]] | None = None) -> str:
    headers = headers or results_headers()
    meanings = column_meanings()
    parts = [
        "# Results files\n",
        "A run folder holds `flows.csv` (one row per start and parameter combination), `meta.json` and "
        "`run.json`; `flowsim analyze` adds `regions.csv`, `claims.csv`, `claims.md` and, for several losses, "
        "`loss_comparison.csv`. The columns below are read from the headers the code writes for a small run, "
        "so they are the ones a run writes. Times are gradient-flow time (with gradient descent at learning "
        "rate lr: lr x steps); x are ratios p / ref, p probabilities; losses and margins in nats.\n",
        "The parameter columns come first: the loss's parameters (with several losses the union of theirs, "
        "empty where a row's loss does not take one), `ref_w`, `ref_l`, the model's parameters and the "
        "optimiser's: the keys of [Experiment files](experiment-file.md) of the same names.\n",
        "## Statuses\n",
        _table(["status", "meaning"], ((f"`{s}`", m) for s, m in statuses())),
    ]
    params = _parameter_meanings()
    for name, cols in headers.items():
        if name.startswith("trace: "):
            continue
        parts.append(f"## {name}\n")
        parts.append(_FILE_INTROS.get(name, ""))
        if name in _KEY_NOTES:
            rows = _key_rows(name, cols, _KEY_NOTES[name])
        elif name == "loss_comparison.csv":
            rows = [(f"`{c}`", _loss_comparison_meaning(c, meanings)) for c in cols]
        else:
            rows = [(f"`{c}`", meaning_of(c, meanings, params)) for c in cols]
        _all_described(name, dict(rows))
        parts.append(_table(["key" if name.endswith(".json") else "column", "meaning"], rows))
        for kind, extra in extra_columns().items() if name == "flows.csv" else ():
            parts.append(f'\nRows of `[model] kind = "{kind}"` add, after these:\n')
            rows = [(f"`{c}`", meaning_of(c, meanings, {})) for c in extra]
            _all_described(f"{kind}'s columns", dict(rows))
            parts.append(_table(["column", "meaning"], rows))
    return "\n".join(parts + trace_section(headers, meanings, params))


def trace_section(headers: dict[str, list[str]], meanings: dict[str, str], params: dict[str, str]) -> list[str]:
    """The files of a trace (the callback's folder and ``flowsim trace``'s outputs), from a small trace's headers."""
    files = [(f"`{f}`", TRACE_FILES.get(f, "")) for f in TRACE_OUTPUTS]
    _all_described("flowsim trace's outputs", dict(files))
    parts = [
        "## Traces of a TRL run\n",
        "The TRL callback (`flowsim.integrations.trl.trace`) writes a trace folder: `logps.csv` and "
        "`meta.json` (below), written through the run-folder store. `flowsim trace RUN` writes into "
        "`RUN/flowsim/` (or `--out`); see [Trace your own TRL run](../how-to/trace.md).\n",
        _table(["output of flowsim trace", "what it is"], files),
    ]
    titles = {
        "logps.csv": "The callback's `logps.csv`: one row per pair and recorded step",
        "meta.json": "The callback's `meta.json`",
        "flows.csv": "A trace's `flows.csv`: one row per probe pair",
        "predicted.csv": "`predicted.csv`: the idealised flows from the pairs' starts",
        "trace.json": "`trace.json`",
        "batch_mean.csv": "`batch_mean.csv`: the batch means of TRL's log",
    }
    intros = {
        "flows.csv": "The flows.csv schema where its columns make sense (t in optimiser steps); the meanings "
        "that differ from a sweep's are the trace's own.\n",
        "predicted.csv": "Rows of flows.csv as a sweep writes them (the loss's and the model's parameters "
        "among them), with the pair and the idealised model.\n",
    }
    for name, cols in headers.items():
        if not name.startswith("trace: "):
            continue
        file = name.removeprefix("trace: ")
        parts += [f"### {titles.get(file, file)}\n", intros.get(file, "")]
        notes = TRACE_NOTES[file]
        if file in ("flows.csv", "predicted.csv"):  # the sweep's schema: its meanings where the trace has none
            rows = [(f"`{c}`", notes.get(c) or meaning_of(c, meanings, params)) for c in cols]
        else:
            rows = _key_rows(name, cols, notes)
        _all_described(name, dict(rows))
        parts.append(_table(["key" if file.endswith(".json") else "column", "meaning"], rows))
    return parts


# ---------------------------------------------------------------------------------------------------------------
# The command line


def _bench_parser() -> argparse.ArgumentParser:
    """The benchmark's own parser (it parses its options itself), caught as it parses ``--help``."""
    caught: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_args

    def grab(self, *a, **k):
        caught.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = grab  # type: ignore[method-assign]
    try:
        with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
            bench_main(["--help"])
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    return caught[0]


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """``{"flowsim": parser, "flowsim run": subparser, ...}`` from the CLI's argparse."""
    parser = build_parser()
    out = {"flowsim": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name)
                out[f"flowsim {name}"] = sub
    return out | {"flowsim bench": _bench_parser()}


def cli_options(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    """(option strings or argument name, default, help) of each visible action."""
    out = []
    for a in parser._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._SubParsersAction):
            continue
        quiet = a.default in (None, False, argparse.SUPPRESS) or a.option_strings == ["-h", "--help"]
        choices = f" (one of {', '.join(map(str, a.choices))})" if a.choices else ""
        out.append((", ".join(a.option_strings) or a.dest, "" if quiet else str(a.default), (a.help or "") + choices))
    return out


def cli_page() -> str:
    parts = ["# Command line\n", "Generated from the CLI's argparse parsers (`flowsim.cli.build_parser`).\n"]
    for name, parser in cli_commands().items():
        parts.append(f"## `{name}`\n")
        parts.append(_cell(parser.description or "") + "\n")
        usage = parser.format_usage().replace("usage: ", "")
        parts.append(f"```\n{usage}```\n")
        parts.append(
            _table(
                ["argument", "default", "help"],
                ((f"`{n}`", f"`{d}`" if d else "", h) for n, d, h in cli_options(parser)),
            )
        )
    status = inspect.getdoc(flowsim.cli).split("Exit status:", 1)[1].split("\n\n`")[0]
    rows = re.findall(r"^\s*(\d+)\s+(.*?)(?=^\s*\d+\s|\Z)", status, re.S | re.M)
    parts += ["## Exit status\n", _table(["status", "meaning"], ((c, " ".join(t.split())) for c, t in rows))]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# The registries


class _Nan(dict):
    """Metrics that are all NaN: a rule applied to them still says its thresholds."""

    def __missing__(self, key: str) -> float:
        return math.nan


def registries() -> dict[str, dict[str, Any]]:
    """The registered losses, models, optimisers, engines, claims and figure families, by name."""
    return {
        "losses": dict(flowsim.LOSSES),
        "models": dict(MODELS),
        "optimisers": dict(OPTIMISERS),
        "engines": dict(ENGINES),
        "claims": dict(CLAIMS),
        "figures": {f.name: f for f in FAMILIES},
    }


def _api(obj: Any) -> str:
    """A block that renders ``obj``'s docstring in the site (mkdocstrings)."""
    cls = obj if inspect.isclass(obj) else type(obj)
    return (
        f"::: {cls.__module__}.{cls.__qualname__}\n    options:\n      heading_level: 4\n"
        "      show_root_heading: false\n      members: false\n"
    )


def _params(cls: Any) -> str:
    return ", ".join(f"{f.name} ({_fmt(f.default)})" for f in dataclasses.fields(cls)) or "none"


def _beta_range(cls: Any) -> str:
    takes_beta = any(f.name == "beta" for f in dataclasses.fields(cls))
    return f"[{cls.beta_range[0]:g}, {cls.beta_range[1]:g}]" if takes_beta and hasattr(cls, "beta_range") else ""


def _margin_only(cls: Any) -> str:
    """Whether the loss at its defaults is a function of h_w - h_l alone (``Loss.margin_only``)."""
    return "yes" if cls().margin_only() else "no"


def _engine_covers(e: Any) -> str:
    dynamics = "the gradient flow" if e.flow else "the discrete optimisers"
    models = ", ".join(sorted(e.models)) if e.models is not None else "every model of independent starts"
    return f"{dynamics}; models: {models}"


def _section(
    title: str, intro: str, registry: dict[str, Any], columns: dict[str, Callable[[Any], str]], label: str = "kind"
) -> list[str]:
    """A registry of classes (or engines): one table row each, then each one's docstring."""
    rows = (
        (
            f"`{k}`",
            f"`{(c if inspect.isclass(c) else type(c)).__name__}`",
            *(f(c) for f in columns.values()),
            _summary(c),
        )
        for k, c in registry.items()
    )
    parts = [f"## {title}\n", intro, _table([label, "class", *columns, "summary"], rows)]
    for k, c in registry.items():
        parts += [f"### {k}\n", _api(c)]
    return parts


#: When a family is drawn, by its ``per_combination``.
DRAWN = {False: "by default", True: "with --all, or for a single combination"}


def _drawn(family: Any) -> str:
    return DRAWN[bool(family.per_combination)]


def registries_page() -> str:
    reg, th = registries(), ClaimThresholds()
    parts = [
        "# Registries\n",
        "Everything flowsim can run or judge is registered by name: one file and one registry line each "
        "(see [Extend flowsim](../how-to/extend.md)). This page is generated from the registries.\n",
    ]
    parts += _section(
        "Losses",
        "`[loss] kind`: functions of the log-ratios h = (h_w, h_l) (`flowsim.LOSSES`). "
        "*Margin only*: L depends on h through h_w - h_l alone at the default fields "
        "(`Loss.margin_only()`), which the [impossible-by-construction]"
        "(../explanation/claims.md#impossible-by-construction) limits read.\n",
        reg["losses"],
        {"parameters (default)": _params, "beta range": _beta_range, "margin only": _margin_only},
    )
    parts += _section(
        "Models",
        "`[model] kind`: the policy parameterisations and the trained network (`flowsim.MODELS`).\n",
        reg["models"],
        {"parameters (default)": _params},
    )
    parts += _section(
        "Optimisers",
        '`[dynamics] kind` besides "flow": discrete optimisers, t = lr x steps '
        "(`flowsim.dynamics.optimisers.OPTIMISERS`).\n",
        reg["optimisers"],
        {"hyperparameters (default)": _params},
    )
    parts += _section(
        "Engines",
        "`[solver] engine`: how rows are computed (`flowsim.dynamics.engines.ENGINES`). "
        '"auto" (the default) takes, for each combination, the first engine in this order that runs '
        'it and is verified for it; an engine that "auto" never takes is chosen by name only. See '
        "[Architecture](../explanation/architecture.md#engines).\n",
        reg["engines"],
        {"runs": _engine_covers, "auto": lambda e: "yes" if e.auto else "by name only"},
        label="name",
    )
    parts += [
        "## Claims\n",
        "The claims `flowsim analyze` judges (`flowsim.analysis.claims.REGISTRY`), each with the paper's "
        "words, what is measured, its rule at the default thresholds (overridable in the experiment's "
        "[claims] table) and the models it speaks of.\n",
        _table(
            ["claim", "statement", "measured", "rule (default thresholds)", "models"],
            (
                (f"`{c.id}`", c.title, c.metric, c.rule(_Nan(), th)[1], ", ".join(c.models))
                for c in reg["claims"].values()
            ),
        ),
    ]
    for c in reg["claims"].values():
        parts += [
            f"### {c.id}: {c.title}\n",
            f"> {c.paper}\n>\n> — {c.where}\n",
            _table(
                ["", ""],
                [
                    ("measured", c.metric),
                    ("rule", c.rule(_Nan(), th)[1]),
                    ("rule in full", " ".join((inspect.getdoc(c.rule) or "").split())),
                    ("fails if", " ".join((inspect.getdoc(c.measure) or "").split())),
                    ("thresholds", ", ".join(f"`{t}` = {_fmt(getattr(th, t))}" for t in c.thresholds)),
                    ("models", ", ".join(c.models)),
                    ("losses", ", ".join(c.losses) if c.losses else "any"),
                    ("columns read", ", ".join(f"`{x}`" for x in c.columns)),
                ],
            ),
        ]
    default = [f"`{f.name}`" for f in reg["figures"].values() if not f.per_combination]
    parts += [
        "## Figures\n",
        "The figure families `flowsim plot` draws (`flowsim.plotting.registry.FAMILIES`), each for the "
        "models it declares; `kinds` select them in `plot_results(kinds=...)`. For a run of several "
        "parameter combinations the default set is the families not drawn per combination "
        f"({', '.join(default)}, each where it applies); the families drawn a file "
        "per combination come with `flowsim plot --all` (`plot_results(every=True)`), and always for a single "
        "combination (`Family.per_combination`).\n",
        _table(
            ["family", "kinds", "models", "drawn", "what it draws"],
            (
                (
                    f"`{f.name}`",
                    ", ".join(f.kinds),
                    ", ".join(f.models) if f.models else "all",
                    _drawn(f),
                    _summary(inspect.getmodule(f.draw)),
                )
                for f in reg["figures"].values()
            ),
        ),
    ]
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


#: The pipelines behind the commands and the tutorial, and the interfaces an extension implements.
API_MORE: dict[str, tuple[Any, ...]] = {
    "Experiments": (load_experiment, parse_experiment, Experiment),
    "Pipelines": (run, analyze, plot, reproduce, RunResults),
    "Models": (Model, Parameterisation, Policy),
    "Dynamics": (make_optimiser, run_discrete, Engine, Task, choose),
    "Analysis": (evaluate_claims, region_table),
    "Figures": (plot_results, plot_field),
}


def api_page() -> str:
    parts = [
        "# Python API\n",
        "`import flowsim` gives the names of the first part (imported lazily); the second part holds the "
        "pipelines behind the commands and the interfaces an extension implements. Each is documented from its "
        "docstring. The registries are on [Registries](registries.md).\n",
        "## import flowsim\n",
    ]
    block = (
        "::: {}\n    options:\n      show_root_heading: false\n      show_root_toc_entry: false\n"
        "      heading_level: 4\n"
    )
    for name, path in api_names():
        parts += [f"### flowsim.{name}\n", block.format(path)]
    for title, objs in API_MORE.items():
        parts.append(f"## {title}\n")
        for obj in objs:
            path = f"{obj.__module__}.{obj.__qualname__}"
            parts += [f"### {path}\n", block.format(path)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Tables drawn from committed results, and the package map

#: The kinds of line results/benchmark.csv holds; another kind fails the build until this page shows it.
BENCH_LINES = ("machine", "timed", "scan", "batched_vs_driver", "optimiser", "network", "trace", "target")


def benchmark_page(csv: Path) -> str:
    """The performance tables, drawn from ``results/benchmark.csv`` (what ``flowsim bench --publish`` wrote)."""
    import pandas as pd

    b = pd.read_csv(csv)
    unknown = set(b["line"]) - set(BENCH_LINES)
    if unknown:
        raise RuntimeError(f"{csv} has lines the performance page does not show: {sorted(unknown)}")
    parts = [f"The tables below are drawn from `{csv.parent.name}/{csv.name}` when the site is built.\n"]
    machine = b.loc[b["line"] == "machine", "note"]
    if len(machine):
        parts.append(f"Machine and run: {machine.iloc[0]}\n")
    for problem, rows in b[b["line"] == "timed"].groupby("problem", sort=False):
        cells = [f"{f:,.0f} ({c:,.0f})" for f, c in zip(rows["flows_per_s"], rows["compute_flows_per_s"], strict=True)]
        what = [
            f"{c}, {a} accuracy" + (f", rtol {r:g}" if r == r else "") + f", {w:g} worker(s), {be}"
            for c, a, r, w, be in zip(
                rows["contender"], rows["accuracy"], rows["rtol"], rows["workers"], rows["backend"], strict=True
            )
        ]
        grids = list(dict.fromkeys(rows["grid"]))
        table = rows.assign(cell=cells, what=what).pivot_table(
            index="what", columns="grid", values="cell", aggfunc="first", sort=False
        )
        table = table.reindex(columns=grids).fillna("")
        parts.append(f"#### DPO, {problem}: flows per second, whole process (compute alone)\n")
        parts.append(_table(["contender", *grids], ([w, *table.loc[w]] for w in table.index)))
    agree = b[b["line"] == "batched_vs_driver"]
    if len(agree):
        parts.append("#### The batched engine against the driver, row by row\n")
        rows = zip(
            agree["problem"], agree["grid"], agree["rtol"], agree["worst_rel_err"], agree["statuses_agree"], strict=True
        )
        parts.append(
            _table(
                ["problem", "grid", "rtol", "worst relative t_stop difference", "statuses agree"],
                ((p, g, f"{r:g}", f"{e:.2g}", s) for p, g, r, e, s in rows),
            )
        )
    opt = b[b["line"] == "optimiser"]
    if len(opt):
        parts.append("#### Discrete optimisers: start-steps per second per core (logits K = 10)\n")
        rates = ((o, f"{v:,.0f}") for o, v in zip(opt["contender"], opt["value"], strict=True))
        parts.append(_table(["optimiser", "start-steps/s"], rates))
    net = b[b["line"] == "network"]
    if len(net):
        parts.append("#### The network model (one process)\n")
        parts.append(
            _table(
                ["trainings/s", "SFT + DPO steps/s"],
                ((f"{t:.1f}", f"{v:,.0f}") for t, v in zip(net["flows_per_s"], net["value"], strict=True)),
            )
        )
    trace = b[b["line"] == "trace"]
    if len(trace):
        parts.append("#### The TRL callback (`flowsim.integrations.trl`)\n")
        parts.append(
            _table(
                ["probe pairs", "added per recorded step", "what"],
                (
                    (f"{n:g}", f"{1e3 * v:.1f} ms", note)
                    for n, v, note in zip(trace["n"], trace["value"], trace["note"], strict=True)
                ),
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
