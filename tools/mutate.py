"""Mutation testing of flowsim's core modules: plant one small bug at a time, run that module's tests.

A mutant is one edit of a module's syntax tree by a fixed operator (a comparison flipped or
made strict, ``all`` <-> ``any``, ``mean`` -> ``min``, ``min`` <-> ``max``, ``side="right"`` <->
``"left"``, ``and`` <-> ``or``, one condition of an ``and`` / ``or`` dropped, ``not`` dropped,
a sign dropped, ``+`` <-> ``-``, ``*`` <-> ``/``, a number changed, ``True`` <-> ``False``).  Every
site of every operator is listed in a fixed order; a seeded sample of them, spread over the
operators, is run.  Each mutant is written into a private copy of the package (the work tree is
never edited) and the module's tests (:data:`MODULES`) run against it (``pytest -x -n 0``): a
failing test *kills* it, a test run past its time limit counts as killed (and says so), and a
mutant every test passes *survives* -- a bug the tests cannot see, or an equivalent mutant.

Usage, from the repository root, one module at a time on a shared machine (15 mutants of a
module take 0.5-10 minutes of one process; all eleven, about 35; more on a loaded machine)::

    OMP_NUM_THREADS=1 python tools/mutate.py -m engine_driver -n 15   # one module, 15 mutants
    python tools/mutate.py -m training -m store -n 30     # the modules a change touched, more mutants
    python tools/mutate.py --list -m regions              # the sample and each mutant's EQUIVALENT key
    python tools/mutate.py --jobs 2 --out mutation.md     # every module, two at a time; the table as a file

Run it on the modules a change touches before you stop.  It is not run in CI (too slow for its
budget); the survivors of the last run and why each is harmless are in
docs/explanation/accuracy.md.  The script reads no module internals: the table :data:`MODULES`
below maps a module file to its tests, so when code moves, update one line there.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_U, _I = "tests/unit/", "tests/integration/"
_CLAIMS = [f"{_U}test_verdicts.py", f"{_U}test_claims_conformance.py"]
_NOT_SLOW = "not sigterm and not kill_9 and not second_writer and not real_kill and not dask"  # signals, processes
#: Core module -> (its file, the tests that must catch its bugs: pytest arguments, fast ones).
MODULES: dict[str, tuple[str, list[str]]] = {
    "losses": ("flowsim/model/losses/dpo.py", [f"{_U}test_dpo_loss.py", f"{_U}test_losses_family.py"]),
    "closed_form_ratio": (
        "flowsim/dynamics/closed_forms/dpo_ratio.py",
        [f"{_U}test_closed_form_ratio.py", f"{_U}test_driver.py"],
    ),  # its oracle
    "closed_form_logits": ("flowsim/dynamics/closed_forms/dpo_logits.py", [f"{_U}test_closed_form_logits.py"]),
    "engine_batched": ("flowsim/dynamics/batched/engine.py", [f"{_U}test_batched.py"]),
    "engine_driver": ("flowsim/dynamics/driver.py", [f"{_U}test_driver.py", f"{_U}test_switching.py"]),
    "record": (
        "flowsim/dynamics/record.py",
        [f"{_U}test_record.py", f"{_U}test_driver.py", f"{_U}test_network_stops.py", f"{_U}test_optimisers.py"],
    ),
    "store": (
        "flowsim/experiment/store.py",
        [f"{_I}test_run_folder.py", f"{_I}test_sweep.py", f"{_I}test_cli_errors.py", "-k", _NOT_SLOW],
    ),
    "regions": ("flowsim/experiment/regions.py", [f"{_U}test_regions.py", f"{_U}test_analysis.py"]),
    "claims_rules": ("flowsim/analysis/claims/rules.py", _CLAIMS),
    "verdicts": ("flowsim/analysis/verdicts.py", _CLAIMS),
    "training": (
        "flowsim/dynamics/training.py",
        [f"{_U}test_network_stops.py", f"{_U}test_network.py", f"{_U}test_network_field.py"],
    ),
}

#: Survivors judged equivalent (no test can tell them from the code, or only at a float's exact equality or
#: in an unreachable fallback): (file, the mutated statement, the mutant) -> why.  The statement is the
#: mutant's normalised syntax (:func:`statement`: ``ast.unparse`` of the innermost statement holding the
#: mutated node, a compound statement by its header only), so a reformatting (line breaks, quotes, trailing
#: commas, comments) keeps its entries, and two mutants of one kind in one statement are told apart; a
#: statement whose code changes drops out of this table, so its mutant is judged again.  ``--list`` prints
#: each sampled mutant's key.  Reported, and left out of the score's denominator.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "flowsim/dynamics/closed_forms/dpo_ratio.py",
        "upper = w0 > 0.5",
        ">= -> >",
    ): "which series of the incomplete beta function at w0 = 0.5 exactly: both are exact there",
    (
        "flowsim/dynamics/closed_forms/dpo_logits.py",
        "moving = (new <= x) & (step > 4e-16 * np.abs(x))",
        "< -> <=",
    ): "new == x means step == 0, which the second condition already stops",
    (
        "flowsim/dynamics/closed_forms/dpo_logits.py",
        "moving = (new < x) & (step >= 4e-16 * np.abs(x))",
        "> -> >=",
    ): "a Newton step of exactly 4e-16 |x|: one more step, of a rounding error's size",
    (
        "flowsim/dynamics/batched/engine.py",
        "broken = ~finite & ~np.any(np.isfinite(K), axis=(0, 1))",
        "all(...) -> any(...)",
    ): (
        "a row with a partly non-finite field is then rejected until its step is below min_step, and handed to the "
        "driver all the same: the same row, a few wasted steps"
    ),
    (
        "flowsim/dynamics/batched/engine.py",
        "accepted = finite & (err <= 1) & ~broken",
        "< -> <=",
    ): "an error norm of exactly 1.0",
    (
        "flowsim/dynamics/batched/engine.py",
        "dpos = np.full(len(j), 1)",
        "drop unary -",
    ): "the fill is never read: dpos is read only for rows with an event (set on the next line)",
    (
        "flowsim/dynamics/batched/engine.py",
        "d = np.where(s != 1, -gv / np.where(s != 0, s, 1.0), 0.0)",
        "0 -> 1",
    ): "differs only at a slope of exactly 0 (or 1) at the stop's level crossing",
    (
        "flowsim/dynamics/batched/engine.py",
        "d = np.where(s != 0, -gv / np.where(s != 1, s, 1.0), 0.0)",
        "0 -> 1",
    ): "differs only at a slope of exactly 0 (or 1) at the stop's level crossing",
    (
        "flowsim/dynamics/batched/engine.py",
        "out[todo] = 0.5 * (a - b)[todo]",
        "+ -> -",
    ): "unreachable: Chandrupatla's method converges within maxiter = 100 iterations on float64 brackets",
    (
        "flowsim/dynamics/record.py",
        "path_x: np.ndarray | None = field(default=None, repr=True, compare=False)",
        "repr=False -> True",
    ): "the record's repr only",
    (
        "flowsim/dynamics/record.py",
        "path_t: np.ndarray | None = field(default=None, repr=True, compare=False)",
        "repr=False -> True",
    ): "the record's repr only",
    (
        "flowsim/experiment/store.py",
        "self.partial.mkdir(parents=False, exist_ok=True)",
        "parents=True -> False",
    ): "the run folder exists by then",
    (
        "flowsim/experiment/store.py",
        "self.partial.mkdir(parents=True, exist_ok=False)",
        "exist_ok=True -> False",
    ): "a fresh sweep refuses a folder that has .partial in it before this",
    (
        "flowsim/analysis/verdicts.py",
        "return value >= bound",
        "drop condition 1 of and",
    ): "NaN >= bound is False already (the explicit test documents that a NaN metric meets no bound)",
    (
        "flowsim/analysis/verdicts.py",
        "return value <= bound",
        "drop condition 1 of and",
    ): "NaN <= bound is False already",
    (
        "flowsim/analysis/verdicts.py",
        "reads_verdicts: bool = True",
        "False -> True",
    ): "a claim that does not read the verdicts, measured again under each alternative, gives the same verdicts",
    (
        "flowsim/dynamics/record.py",
        "top = np.argmax(others, axis=1)",
        "axis=drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
    (
        "flowsim/dynamics/record.py",
        (
            "return out | {'rest_final': np.sum(others, axis=1), 'top_other': top + 2.0, 'p_top_other': "
            "np.take_along_axis(others, top[..., None], -1)[..., 0]}"
        ),
        "axis=drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
    (
        "flowsim/dynamics/record.py",
        (
            "return out | {'rest_final': np.sum(others, axis=-1), 'top_other': top + 2.0, 'p_top_other': "
            "np.take_along_axis(others, top[..., None], 1)[..., 0]}"
        ),
        "drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
    (
        "flowsim/dynamics/training.py",
        "return -torch.mean(torch.sum(weights * batch.log_probs(net), dim=1))",
        "dim=drop unary -",
    ): "log-probabilities are (n, 2): dim 1 is the last",
    (
        "flowsim/dynamics/training.py",
        "for k in range(k_max + 2):",
        "1 -> 2",
    ): "the loop ends at k = k_max as timeout before the extra iteration",
    (
        "flowsim/dynamics/training.py",
        "pair_status = np.where(np.exp(logp[:, 1]) < stop.p2_floor, 'converged', status).astype(object)",
        "<= -> <",
    ): "a pair's p_l exactly equal to the floor",
    (
        "flowsim/dynamics/driver.py",
        "if first is None or tau < first[1] or (tau == first[1] and name in switches):",
        "not in -> in",
    ): (
        "unreachable tie: solve_ivp records no terminal event after the first one it meets (handle_events cuts its "
        "sorted roots there), so a run's t_events hold one terminal event; at equal roots its argsort keeps the "
        "first added, a stop"
    ),
    (
        "flowsim/dynamics/batched/engine.py",
        "up, down = ((g_old < 0) & (g_new >= 0), (g_old >= 0) & (g_new <= 0))",
        "<= -> <",
    ): (
        "g_old is exactly 0 only where the step before caught the crossing (its g_new >= 0) or at a start: a "
        "threshold met there exactly is disarmed (met counts equality), and a monitor's turn at tau = 0 is the "
        "start, which the track holds"
    ),
    (
        "flowsim/dynamics/batched/engine.py",
        "up, down = ((g_old <= 0) & (g_new >= 0), (g_old >= 0) & (g_new < 0))",
        "<= -> <",
    ): (
        "a residual exactly 0 at a step's end: the next step (g_old = 0 >= 0) finds the same root (its lower end), "
        "lands on it as the step before would have (one step's evaluations more)"
    ),
    (
        "flowsim/model/losses/dpo.py",
        "if f_divergence == 'alpha_divergence' and abs(alpha - 1.0) > ALPHA_ONE_TOL:",
        ">= -> >",
    ): (
        "|alpha - 1| is never exactly ALPHA_ONE_TOL: alpha - 1 is exact near 1 and a multiple of 2**-53, and the "
        "double 1e-6 is not (its denominator is 2**72)"
    ),
    (
        "flowsim/model/losses/dpo.py",
        (
            "return self.f_divergence == 'reverse_kl' or (self.f_divergence == 'alpha_divergence' and "
            "abs(self.alpha - 1.0) <= ALPHA_ONE_TOL)"
        ),
        "< -> <=",
    ): (
        "|alpha - 1| is never exactly ALPHA_ONE_TOL: alpha - 1 is exact near 1 and a multiple of 2**-53, and the "
        "double 1e-6 is not (its denominator is 2**72)"
    ),
    (
        "flowsim/model/losses/dpo.py",
        "if self.f_divergence != 'alpha_divergence' or abs(self.alpha - 1.0) <= ALPHA_ONE_TOL:",
        "< -> <=",
    ): (
        "|alpha - 1| is never exactly ALPHA_ONE_TOL: alpha - 1 is exact near 1 and a multiple of 2**-53, and the "
        "double 1e-6 is not (its denominator is 2**72)"
    ),
    (
        "flowsim/dynamics/closed_forms/dpo_logits.py",
        "cm1 = _exp_times_expm1(np.where(pos, 1.0, c0), np.where(pos, 1.0, x))",
        "0.0 -> 1.0",
    ): "the filler np.where puts in the other branch's rows, which the same mask (pos) never reads",
    (
        "flowsim/dynamics/closed_forms/dpo_logits.py",
        "fp = np.where(pos, ec + em1 + 1.0, 1.0 + np.exp(np.where(pos, 1.0, c0 + x)))",
        "0.0 -> 1.0",
    ): "the filler np.where puts in the other branch's rows, which the same mask (pos) never reads",
    (
        "flowsim/dynamics/training.py",
        "met = {'converged': np.all(p[:, 1] < stop.p2_floor), 'timeout': timeout}",
        "<= -> <",
    ): "every pair's p_l exactly equal to the floor: a float's exact equality (the same test as pair_status's)",
    (
        "flowsim/dynamics/driver.py",
        "if first is None or tau < first[1] or tau == first[1]:",
        "drop condition 2 of and",
    ): "unreachable tie, as for 'not in -> in' on this line: a run's t_events hold at most one terminal event",
    (
        "flowsim/dynamics/batched/engine.py",
        "finite = np.isfinite(err) & np.all(np.isfinite(y_new), axis=0) & np.any(np.isfinite(f_new), axis=0)",
        "all(...) -> any(...)",
    ): (
        "err already reads f_new (K's last stage, in every tableau's error weights; DOP853's weight is 0, but 0 x "
        "NaN or inf is NaN): a non-finite f_new makes err non-finite, so the row is not finite either way"
    ),
    (
        "flowsim/dynamics/closed_forms/dpo_ratio.py",
        "total = np.full_like(x, coefs[1])",
        "drop unary -",
    ): (
        "Horner started at coefs[1] for the last coefficient: that term is x^n-small (n chosen so that x^n < "
        "1e-16, x <= 0.25) and the closed form needs beta < 2, so first = 1 +- beta/2 is in (0, 2) and the "
        "coefficients are O(1): the sum moves by <= 2.2e-16 relative (measured on x in [0, 0.25], first 0.5, 1, "
        "1.5, 2)"
    ),
    (
        "flowsim/dynamics/record.py",
        (
            "return out | {'rest_final': np.sum(others, axis=1), 'top_other': top + 2.0, 'p_top_other': "
            "np.take_along_axis(others, top[..., None], -1)[..., 0], 'top_other_gain': np.take_along_axis(others, "
            "top0[..., None], -1)[..., 0] - track.p_top0[rows]}"
        ),
        "axis=drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
    (
        "flowsim/dynamics/record.py",
        (
            "return out | {'rest_final': np.sum(others, axis=-1), 'top_other': top + 2.0, 'p_top_other': "
            "np.take_along_axis(others, top[..., None], 1)[..., 0], 'top_other_gain': np.take_along_axis(others, "
            "top0[..., None], -1)[..., 0] - track.p_top0[rows]}"
        ),
        "drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
    (
        "flowsim/dynamics/record.py",
        (
            "return out | {'rest_final': np.sum(others, axis=-1), 'top_other': top + 2.0, 'p_top_other': "
            "np.take_along_axis(others, top[..., None], -1)[..., 0], 'top_other_gain': np.take_along_axis(others, "
            "top0[..., None], 1)[..., 0] - track.p_top0[rows]}"
        ),
        "drop unary -",
    ): "finish_rows takes p as (m, K) rows (its contract; every caller passes 2-D): axis 1 is the last",
}

PYTEST = [
    "-m",
    "pytest",
    "-p",
    "no:cacheprovider",
    "-o",
    "addopts=",
    "--import-mode=importlib",
    "-x",
    "-q",
    "--no-header",
    "-p",
    "no:warnings",
]


# -- the operators -----------------------------------------------------------------------------

#: Comparison flips: strictness, direction, equality, membership, identity.
_COMPARE = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
#: Reductions and their partners, called as ``np.name(...)``, ``x.name(...)`` or ``name(...)``.
_CALLS = {
    "all": ["any"],
    "any": ["all"],
    "mean": ["min", "max"],
    "min": ["max"],
    "max": ["min"],
    "minimum": ["maximum"],
    "maximum": ["minimum"],
    "nanmin": ["nanmax"],
    "nanmax": ["nanmin"],
    "argmin": ["argmax"],
    "argmax": ["argmin"],
    "floor": ["ceil"],
    "ceil": ["floor"],
    "isfinite": ["isnan"],
    "sum": ["mean"],
}
_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


@dataclass(frozen=True)
class Site:
    """One mutant: the ``index``-th node of the walk, edited by ``op`` into variant ``variant``."""

    op: str
    index: int
    variant: int
    line: int
    what: str


def _variants(node: ast.AST, keyword: str | None = None) -> Iterator[tuple[str, str, Callable[[ast.AST], ast.AST]]]:
    """(operator, description, edit) for every mutant of one node; edit returns the replacement.

    ``keyword``: the name the node is passed as, if it is a keyword argument's value (named in the description).
    """
    for kind, variants in _BY_NODE:
        if isinstance(node, kind):
            for op, what, edit in variants(node):
                yield op, (f"{keyword}={what}" if keyword else what), edit


def _keywords(tree: ast.AST) -> dict[int, str]:
    """id(value) -> name of every keyword argument's value."""
    return {id(k.value): k.arg for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords if k.arg}


def _compare(node: ast.Compare):
    for i, cmp in enumerate(node.ops):
        for new in _COMPARE.get(type(cmp), []):
            yield "compare", f"{_sym(cmp)} -> {_sym(new())}", _set_op(i, new)


def _boolop(node: ast.BoolOp):
    other = ast.Or if isinstance(node.op, ast.And) else ast.And
    yield "boolop", f"{_sym(node.op)} -> {_sym(other())}", lambda n, o=other: ast.BoolOp(o(), n.values)
    for i in range(len(node.values)):
        yield "drop_condition", f"drop condition {i + 1} of {_sym(node.op)}", _drop(i)


def _call(node: ast.Call):
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    for new in _CALLS.get(name, []):
        yield "call", f"{name}(...) -> {new}(...)", _rename(new)
    for i, kw in enumerate(node.keywords):
        if kw.arg == "side" and isinstance(kw.value, ast.Constant) and kw.value.value in ("left", "right"):
            new = "left" if kw.value.value == "right" else "right"
            yield "side", f'side="{kw.value.value}" -> "{new}"', _keyword(i, new)


def _unary(node: ast.UnaryOp):
    if isinstance(node.op, (ast.Not, ast.USub)):
        yield "unary", f"drop {_sym(node.op)}", lambda n: n.operand


def _binop(node: ast.BinOp):
    if type(node.op) in _BINOP:
        new = _BINOP[type(node.op)]
        yield "binop", f"{_sym(node.op)} -> {_sym(new())}", lambda n, o=new: ast.BinOp(n.left, o(), n.right)


def _constant(node: ast.Constant):
    v = node.value
    if type(v) in (int, float, bool):
        new = (not v) if isinstance(v, bool) else v + 1 if isinstance(v, int) else (v * 2 if v else 1.0)
        yield "constant", f"{v!r} -> {new!r}", lambda n, x=new: ast.Constant(x)


_BY_NODE = (
    (ast.Compare, _compare),
    (ast.BoolOp, _boolop),
    (ast.Call, _call),
    (ast.UnaryOp, _unary),
    (ast.BinOp, _binop),
    (ast.Constant, _constant),
)


def _set_op(i: int, new: type) -> Callable[[ast.AST], ast.AST]:
    def edit(n: ast.Compare) -> ast.AST:
        ops = list(n.ops)
        ops[i] = new()
        return ast.Compare(n.left, ops, n.comparators)

    return edit


def _drop(i: int) -> Callable[[ast.AST], ast.AST]:
    def edit(n: ast.BoolOp) -> ast.AST:
        rest = n.values[:i] + n.values[i + 1 :]
        return rest[0] if len(rest) == 1 else ast.BoolOp(n.op, rest)

    return edit


def _rename(new: str) -> Callable[[ast.AST], ast.AST]:
    def edit(n: ast.Call) -> ast.AST:
        n = copy.copy(n)
        n.func = copy.copy(n.func)
        if isinstance(n.func, ast.Attribute):
            n.func.attr = new
        else:
            n.func.id = new
        return n

    return edit


def _keyword(i: int, new: str) -> Callable[[ast.AST], ast.AST]:
    def edit(n: ast.Call) -> ast.AST:
        kws = list(n.keywords)
        kws[i] = ast.keyword(kws[i].arg, ast.Constant(new))
        return ast.Call(n.func, n.args, kws)

    return edit


_SYMBOLS = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
    ast.Not: "not",
    ast.USub: "unary -",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}


def _sym(op: ast.AST) -> str:
    return _SYMBOLS[type(op)]


# -- the sites of a module ---------------------------------------------------------------------


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes not to mutate: annotations, docstrings, ``__all__``, f-string internals."""
    out: set[int] = set()

    def skip(node: ast.AST | None) -> None:
        if node is not None:
            out.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skip(node.returns)
            for a in [
                *node.args.args,
                *node.args.kwonlyargs,
                *node.args.posonlyargs,
                node.args.vararg,
                node.args.kwarg,
            ]:
                skip(a.annotation if a else None)
        elif isinstance(node, ast.AnnAssign):
            skip(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            skip(node)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            skip(node)
    return out


def sites(source: str) -> list[Site]:
    """Every mutant of a module's source, in a fixed order (the walk's, then each node's variants)."""
    tree = ast.parse(source)
    skip, kws = _skipped(tree), _keywords(tree)
    out = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for variant, (op, what, _) in enumerate(_variants(node, kws.get(id(node)))):
            out.append(Site(op, index, variant, getattr(node, "lineno", 0), what))
    return out


def statement(source: str, site: Site) -> str:
    """The key of ``site`` in :data:`EQUIVALENT`: the innermost statement holding its node, mutated, normalised.

    ``ast.unparse`` of that statement with the mutant in it, on one line (a compound statement --
    ``if``, ``for``, ``def``, ``class``, ``with``, ... -- by its header, decorators included, its
    bodies left out), so that layout, quotes and comments do not change it, and two mutants of one
    kind in one statement (two ``<=`` flipped) have different keys.
    """
    tree = ast.parse(source)
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    node = _apply(tree, site)
    while not isinstance(node, ast.stmt):
        node = parents[id(node)]
    head = copy.copy(node)
    for body in ("body", "orelse", "handlers", "finalbody"):
        if isinstance(getattr(head, body, None), list):
            setattr(head, body, [ast.Pass()] if body == "body" else [])
    lines = [ln.strip() for ln in ast.unparse(ast.fix_missing_locations(head)).splitlines()]
    return " ".join(lines[:-1] if lines[-1] == "pass" and len(lines) > 1 else lines)


def mutate(source: str, site: Site) -> str:
    """The module's source with ``site`` applied (unparsed: comments and layout are not kept)."""
    tree = ast.parse(source)
    _apply(tree, site)
    return ast.unparse(ast.fix_missing_locations(tree))


def _apply(tree: ast.Module, site: Site) -> ast.AST:
    """Apply ``site`` to ``tree`` in place; returns the node that now holds the mutant (its parent)."""
    nodes = list(ast.walk(tree))
    target = nodes[site.index]
    edit = list(_variants(target, _keywords(tree).get(id(target))))[site.variant][2]
    new = ast.copy_location(edit(target), target)
    for parent in nodes:  # replace target in its parent
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return parent
            if isinstance(value, list) and any(v is target for v in value):
                value[next(i for i, v in enumerate(value) if v is target)] = new
                return parent
    raise LookupError(f"no parent for {site}")


def sample(all_sites: list[Site], n: int, seed: str) -> list[Site]:
    """``n`` sites, seeded, spread over the operators (round robin over shuffled groups), in line order."""
    rng = random.Random(seed)
    groups: dict[str, list[Site]] = {}
    for s in all_sites:
        groups.setdefault(s.op, []).append(s)
    for g in groups.values():
        rng.shuffle(g)
    order = sorted(groups)
    rng.shuffle(order)
    picked: list[Site] = []
    while len(picked) < min(n, len(all_sites)):
        for op in order:
            if groups[op] and len(picked) < n:
                picked.append(groups[op].pop())
    return sorted(picked, key=lambda s: (s.line, s.index, s.variant))


# -- running -----------------------------------------------------------------------------------


def run_tests(copy_root: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """("passed" | "failed" | "timeout", seconds, the first failing test) of the tests against a copy."""
    env = {**os.environ, "PYTHONPATH": str(copy_root), "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, *PYTEST, *tests], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    first = next((ln.split(" - ")[0] for ln in out.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))), "")
    return ("passed" if out.returncode == 0 else "failed"), time.perf_counter() - t0, first


class Workspace:
    """A private copy of the package to write mutants into (one per concurrent job)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="flowsim-mutate-"))
        shutil.copytree(ROOT / "flowsim", self.root / "flowsim", ignore=shutil.ignore_patterns("__pycache__"))

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).write_text(text)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _check_copy_is_imported(ws: Workspace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ws.root), "PYTHONSAFEPATH": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import flowsim; print(flowsim.__file__)"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not where.startswith(str(ws.root)):
        raise SystemExit(f"mutate: the tests import flowsim from {where}, not the mutated copy {ws.root}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--module", action="append", choices=sorted(MODULES), help="a core module (repeatable)")
    ap.add_argument("-n", "--per-module", type=int, default=10, help="mutants per module (default 10)")
    ap.add_argument("--seed", default="0", help="the sample's seed (default 0)")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    ap.add_argument("--list", action="store_true", help="list the sampled mutants and exit")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    names = args.module or list(MODULES)
    plan: list[tuple[str, str, str, Site]] = []
    for name in names:
        rel, _ = MODULES[name]
        if not (ROOT / rel).exists():
            raise SystemExit(f"mutate: {rel} (module {name!r}) does not exist: update MODULES in {Path(__file__).name}")
        source = (ROOT / rel).read_text()
        every = sites(source)
        picked = sample(every, args.per_module, f"{args.seed}:{name}")
        print(f"{name}: {len(every)} sites, {len(picked)} sampled", file=sys.stderr)
        plan += [(name, rel, source, s) for s in picked]
    if args.list:
        for name, rel, source, s in plan:
            print(f"{name:20s} {rel}:{s.line:<5d} {s.op:15s} {s.what}\n{'':20s} key: {statement(source, s)!r}")
        return 0
    return _run(plan, names, args)


def _run(plan, names: list[str], args) -> int:
    spaces = [Workspace() for _ in range(max(1, args.jobs))]
    free = list(spaces)
    try:
        _check_copy_is_imported(spaces[0])
        limits = _baselines(spaces[0], names)
        t0 = time.perf_counter()

        def one(item):
            name, rel, source, site = item
            ws = free.pop()
            try:
                ws.write(rel, mutate(source, site))
                verdict, secs, first = run_tests(ws.root, MODULES[name][1], limits[name])
                ws.write(rel, source)
            finally:
                free.append(ws)
            status = {"passed": "SURVIVED", "failed": "killed", "timeout": "killed (timeout)"}[verdict]
            key = (rel, statement(source, site), site.what)
            if verdict == "passed" and key in EQUIVALENT:
                status = "equivalent"
            print(f"{status:16s} {name:20s} {rel}:{site.line} {site.what}  [{secs:.1f} s] {first}", file=sys.stderr)
            return name, rel, site, status, first or EQUIVALENT.get(key, "")

        with ThreadPoolExecutor(max_workers=len(spaces)) as pool:
            results = list(pool.map(one, plan))
        table = _table(results, time.perf_counter() - t0, args)
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        return 0
    finally:
        for ws in spaces:
            ws.close()


def _baselines(ws: Workspace, names: list[str]) -> dict[str, float]:
    """Each module's tests on the unmutated copy (they must pass); time limit = 4x their time + 60 s."""
    limits = {}
    for name in names:
        rel, tests = MODULES[name]
        ws.write(rel, ast.unparse(ast.parse((ROOT / rel).read_text())))  # the unparsed source must pass too
        verdict, secs, first = run_tests(ws.root, tests, timeout=900)
        ws.write(rel, (ROOT / rel).read_text())
        if verdict != "passed":
            raise SystemExit(f"mutate: {name}'s tests fail without a mutant ({first or verdict}); fix them first")
        limits[name] = 4 * secs + 60
        print(f"baseline {name}: {secs:.1f} s", file=sys.stderr)
    return limits


def _table(results, wall: float, args) -> str:
    lines = [
        f"Mutation testing (tools/mutate.py, seed {args.seed}, {args.per_module} per module): "
        f"{wall:.0f} s wall, {args.jobs} job(s); score = killed / (mutants - equivalent)",
        "",
        "| module | mutants | killed | equivalent | survived | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in [*dict.fromkeys(r[0] for r in results), None]:
        rows = [r for r in results if r[0] == name] if name else results
        k, e = sum(r[3].startswith("killed") for r in rows), sum(r[3] == "equivalent" for r in rows)
        score = f"{k / (len(rows) - e):.0%}" if len(rows) > e else "-"
        label = name or "**all**"
        lines.append(f"| {label} | {len(rows)} | {k} | {e} | {len(rows) - k - e} | {score} |")
    for status in ("SURVIVED", "equivalent"):
        rows = [r for r in results if r[3] == status]
        if rows:
            lines += ["", f"{status.capitalize()}:", ""]
            lines += [f"- {r[1]}:{r[2].line} ({r[2].op}) {r[2].what}" + (f": {r[4]}" if r[4] else "") for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
