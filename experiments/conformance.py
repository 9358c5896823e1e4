#!/usr/bin/env python
"""flowsim's conformance sweep (issue #20): every accepted input ends, within its work budget.

    python experiments/conformance.py              # the full product, every start of every cell, matrix to stdout
    python experiments/conformance.py --out DIR    # also DIR/rows.csv (as they finish), conformance.csv, matrix.md
    python experiments/conformance.py --cover --out DIR [--resume]   # the covering run, one process (see run)
    python experiments/conformance.py --out DIR --report   # the matrix of DIR/rows.csv, part-way or not
    python experiments/conformance.py --subset     # the covering subset that tests/unit/test_conformance_sweep.py runs

The product: every loss x model (ratio, logits, features) x reference (initial, none, fixed at
(0.5, 0.25)) x the loss's beta (orpo_lambda for ORPO) at its default and both ends of its
declared range x engine ("driver", "batched") x stop rule (:data:`STOPS`: t_max = 10, 1e3 and
1e4, the last also with a loss target, a margin target, both, and without the stationary stop),
for gradient flow from an 8 x 8 grid that covers
the model's starts (p in [0.01, 1] on the ratio plane, its corners and the cap included, p_l up
to 0.99 for ORPO, which is infinite at p_l = 1 and refuses a start there; p in
[0.01, 0.98] with p1 + p2 < 1 for a normalised model: the corners of that triangle and the
diagonal below 1/2); the same for the losses with switching surfaces (DPOP, hinge) on features
with similar responses (:data:`SIMILAR`, issue #28's case, where DPOP's flows slide); and the
discrete optimisers (gd, momentum, adam, adamw) for every loss x model x reference x stop rule at
the default beta, max_steps = 2000.  Each combination runs
as one chunk of the sweep machinery (:func:`flowsim.experiment.sweep.run_chunk`) on forked
workers.  A row *conforms* when its status is not ``failed`` and its work is within budget:
nfev <= :func:`flowsim.dynamics.driver.work_budget` for a flow, steps <= max_steps for a
discrete run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import inspect
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.dynamics.driver import work_budget
from flowsim.dynamics.optimisers.runner import step_limit
from flowsim.dynamics.record import STATUSES
from flowsim.experiment import parallel
from flowsim.experiment.config import parse_experiment
from flowsim.experiment.sweep import chunks, kept, run_chunk
from flowsim.model import LOSSES

MODELS = ("ratio", "logits", "features")
ENGINES = ("driver", "batched")
OPTIMISERS = ("gd", "momentum", "adam", "adamw")
#: Learning rates of the optimisers' runs: each one's usual scale (Adam's on a log-probability scale).
LR = {"gd": 0.5, "momentum": 0.1, "adam": 0.01, "adamw": 0.01}
REFERENCES = ("initial", "none", "fixed")
FIXED_REF = (0.5, 0.25)
#: ORPO's orpo_lambda is declared in [0, inf): its upper test value is flowsim's largest beta.
ORPO_HIGH = 10.0
N = 8
#: The stop rules the product spans, by name: the default rule but for these keys.  "t1e3" is
#: issue #20's (flows that end do so long before); issue #28 found a flow that failed at t_max = 1e4.
STOPS: dict[str, dict[str, float]] = {
    "t1e3": {"t_max": 1000.0},
    "t10": {"t_max": 10.0},
    "t1e4": {"t_max": 1e4},
    "t1e4+loss": {"t_max": 1e4, "loss_target": 0.1},
    "t1e4+margin": {"t_max": 1e4, "margin_target": 4.0},
    "t1e4+loss+margin": {"t_max": 1e4, "loss_target": 0.1, "margin_target": 4.0},
    "t1e4-stationary": {"t_max": 1e4, "stationary_tol": 0.0},
}
#: The order a run takes the stop rules in: issue #28's horizon first, the rule of the published
#: t_max = 1000 table last.
RUN_ORDER = ("t1e4", "t10", "t1e4-stationary", "t1e4+loss", "t1e4+margin", "t1e4+loss+margin", "t1e3")
#: Features with similar responses (phi_l . phi_w > |phi_w|^2): DPO's field lowers p_w, DPOP's penalty
#: pushes back, and from the SFT reference its flows slide along h_w = 0 (issue #28).
SIMILAR = {"cos_wl": 0.9, "norm_ratio": 1.25}
#: The losses with switching surfaces, run on :data:`SIMILAR` features too.
KINKED = ("dpop", "hinge")
MAX_STEPS = 2000


def hyper(kind: str) -> tuple[str, tuple[float, float, float]]:
    """The loss's temperature-like parameter and its values: (low end, default, high end) of its range."""
    cls = LOSSES[kind]
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    if "beta" in fields:
        lo, hi = cls.beta_range
        return "beta", (lo, fields["beta"], hi)
    return "orpo_lambda", (0.0, fields["orpo_lambda"], ORPO_HIGH)


def grid(kind: str, model: str) -> dict:
    """An 8 x 8 mesh over the model's starts: up to the cap p = 1 on the ratio plane, else up to 0.98.

    A loss infinite where p = 1 (ORPO at p_l = 1, refused there when the experiment is read) gets
    that axis up to 0.99 instead.
    """
    stop = 1.0 if model == "ratio" else 0.98
    name, values = hyper(kind)
    infinite = np.any([LOSSES[kind](**{name: v}).infinite_at_certainty() for v in values], axis=0)
    return {
        f"p{i + 1}": {"start": 0.01, "stop": 0.99 if inf and stop == 1.0 else stop, "num": N}
        for i, inf in enumerate(infinite)
    }


def experiment(
    kind: str, model: str, engine: str = "driver", dynamics: str = "flow", stop: str = "t1e3", similar: bool = False
):
    """One loss on one model with one engine and stop rule: betas x references swept (one beta for an optimiser).

    ``similar``: the features model with :data:`SIMILAR` responses.
    """
    name, values = hyper(kind)
    loss = {
        "kind": kind,
        name: list(values) if dynamics == "flow" else values[1],
        "reference": list(REFERENCES),
        "ref_w": FIXED_REF[0],
        "ref_l": FIXED_REF[1],
    }
    params = SIMILAR if similar else {}
    label = f"{kind}_{model}{'_similar' if similar else ''}_{engine}_{dynamics}_{stop}"
    doc = {
        "name": f"conformance_{label}",
        "loss": loss,
        "model": {"kind": model, **params},
        "grid": grid(kind, model),
        "solver": {"engine": engine},
        "stop": dict(STOPS[stop]),
    }
    if dynamics != "flow":
        doc["dynamics"] = {"kind": dynamics, "lr": LR[dynamics]}
        doc["stop"]["max_steps"] = MAX_STEPS
    return parse_experiment(doc, source=doc["name"])


def experiments(losses=None, models=MODELS, engines=ENGINES, optimisers=OPTIMISERS, stops=RUN_ORDER) -> list:
    """The full product: (experiment, None = every combination); flows on each engine, and the optimisers.

    Stop rule by stop rule (in ``stops``' order, so that a run stopped part-way has whole rules),
    each as batched flows, optimisers, driver flows: a covering run reads each driver cell's
    starts off the batched engine's rows of the same combination (:func:`covering`).
    """
    losses = sorted(LOSSES) if losses is None else losses
    out = []
    for s in stops:
        flows = [experiment(k, m, e, stop=s) for k in losses for m in models for e in engines]
        if "features" in models:
            kinked = [k for k in KINKED if k in losses]
            flows += [experiment(k, "features", e, stop=s, similar=True) for k in kinked for e in engines]
        opts = [experiment(k, m, "discrete", o, stop=s) for k in losses for m in models for o in optimisers]
        out += [e for e in flows if e.engine != "driver"] + opts + [e for e in flows if e.engine == "driver"]
    return [(e, None) for e in out]


def subset_experiments() -> list:
    """The test's covering subset: (experiment, the indices of the combinations it runs).

    Every loss x model x reference x beta (ends and default) with the driver at t_max = 1e3; with
    the batched engine one combination per loss x model, and one optimiser at one reference per
    loss x model, each chosen in rotation so that every reference, beta and optimiser is taken on
    every model; one more combination per loss x model on the driver under each other stop rule
    of :data:`STOPS` in rotation (every rule on every model); and issue #28's case: the losses with
    switching surfaces on :data:`SIMILAR` features, reference = the start, t_max = 1e4, both engines.
    """
    out = []
    others = [s for s in STOPS if s != "t1e3"]
    for i, kind in enumerate(sorted(LOSSES)):
        for m, model in enumerate(MODELS):
            out.append((experiment(kind, model, "driver"), None))
            out.append((experiment(kind, model, "batched"), [(i + 3 * m) % 9]))
            opt = OPTIMISERS[(i + m) % len(OPTIMISERS)]
            out.append((experiment(kind, model, "discrete", opt), [(i + m) % len(REFERENCES)]))
            stop = others[(i + 2 * m) % len(others)]
            out.append((experiment(kind, model, "driver", stop=stop), [(2 * i + m) % 9]))
    initial = [REFERENCES.index("initial") + len(REFERENCES) * b for b in range(3)]  # the SFT reference, each beta
    for kind in KINKED:
        for engine in ENGINES:
            out.append((experiment(kind, "features", engine, stop="t1e4", similar=True), initial))
    return out


def items(plan, subset: int | None = None, seed: int = 20, cover: dict | None = None, done=frozenset()):
    """(experiment, chunk) for each combination of the plan: all its starts, or ``subset`` of them.

    The subset is seeded and covering: on each model, the combinations run by one engine (flows)
    or by the optimisers under one stop rule share out the grid's starts in one random order, in turn, so that
    every start is run once the combinations outnumber the starts.

    ``cover``: a dict that the caller fills, as the plan's rows come back, with each batched cell's
    rows by (cell, combination); a driver cell whose batched twin is in it runs only the starts
    :func:`covering` picks from the twin's rows.  ``done``: (cell, combination) pairs to skip (a
    resumed run).  The chunk's ``p0`` keeps the grid's order; the row's ``start`` says where it was.
    """
    rng = np.random.default_rng(seed)
    order, taken = {}, {}
    for exp, which in plan:
        cs = list(chunks(exp, N * N, kept(exp)))
        key = (exp.model_kind, exp.engine, exp.dynamics[0][0] == "flow", exp.stop)  # each stop rule its own turn
        if key not in order:
            order[key], taken[key] = rng.permutation(len(cs[0].p0)), 0
        for j, c in enumerate(cs):
            if which is not None and j not in which:
                continue
            pick = np.arange(len(c.p0))
            if subset is not None:
                pick = np.take(order[key], np.arange(taken[key], taken[key] + subset), mode="wrap")
                taken[key] += subset
            twin = None if cover is None else cover.get((twin_of(exp.name), c.index))
            if (exp.name, c.index) in done:
                continue
            if twin is not None:
                pick = pick[np.isin(pick, covering(twin))]
            yield exp, dataclasses.replace(c, p0=c.p0[pick], ref=c.ref[pick]), pick


def twin_of(cell: str) -> str:
    """The batched engine's cell of the same combination as a driver flow cell (else the cell itself)."""
    return cell.replace("_driver_flow_", "_batched_flow_")


def covering(rows: pd.DataFrame) -> np.ndarray:
    """The starts (positions in the grid's order) a driver cell runs: a covering of the plane's outcomes.

    ``rows``: the batched engine's rows of the same combination over the whole grid.  For every
    outcome it found -- status, whether p_w was displaced, and which engine computed the row (the
    batched engine hands its stiff rows and a loss's switching surfaces to the driver) -- the start
    of that outcome whose flow took the most evaluations (the hardest), and the grid's first start
    (its corner (0.01, 0.01)).
    """
    outcome = rows["status"].astype(str) + "|" + rows["displaced"].astype(str) + "|" + rows["by"].astype(str)
    hardest = rows.assign(outcome=outcome.values).sort_values("nfev", ascending=False, kind="stable")
    return np.unique(np.r_[rows["start"].min(), hardest.drop_duplicates("outcome")["start"].to_numpy()])


class Memo:
    """The driver's ``integrate`` and the optimisers' ``run_discrete``, remembered across the product's cells.

    A task asked again with the same inputs gets its first record instead of a second run:

    * the batched engine hands the rows it cannot compute (a loss's switching surfaces, stiff
      flows) to the driver, whose cell of the same combination integrates them too.
      ``integrate`` is a deterministic function of its arguments (loss, policy, stop rule,
      options, path); the key is the pickle of all of them (a policy's whole state: its model,
      start and reference), so two calls share a record only when their inputs are equal;
    * an optimiser reads t_max only through the step it times out at (``step_limit``): stop
      rules that differ in t_max alone and give the same step (t_max = 1e3 and 1e4 at
      max_steps 2000 and these learning rates) run the same steps, so the key has that step in
      place of t_max (``tests/unit/test_conformance_sweep.py`` checks that the rows are equal).
    """

    def __init__(self) -> None:
        self.records: dict[bytes, object] = {}
        self.hits = self.calls = 0

    def __enter__(self) -> Memo:
        from flowsim.dynamics.batched import engine as batched
        from flowsim.dynamics.engines import discrete, driver

        self.saved = [(driver, "integrate"), (batched, "integrate"), (discrete, "run_discrete")]
        self.saved = [(m, name, getattr(m, name)) for m, name in self.saved]
        for module, name, fn in self.saved:
            setattr(module, name, self.wrap(fn, _discrete_key if name == "run_discrete" else _flow_key))
        return self

    def __exit__(self, *exc) -> None:
        for module, name, fn in self.saved:
            setattr(module, name, fn)

    def wrap(self, fn, keyed):
        signature = inspect.signature(fn)

        def remembered(*args, **kwargs):
            self.calls += 1
            call = signature.bind(*args, **kwargs)
            call.apply_defaults()
            key = hashlib.sha256(pickle.dumps(keyed(call.arguments))).digest()
            if key in self.records:
                self.hits += 1
            else:
                self.records[key] = fn(*args, **kwargs)
            out = self.records[key]
            return {k: np.array(v, copy=True) for k, v in out.items()} if isinstance(out, dict) else out

        return remembered


def _flow_key(arguments: dict) -> list:
    """``integrate``'s arguments as a key: the path's points count only for a path."""
    if not arguments["path"]:
        arguments["path_points"] = None
    return sorted(arguments.items())


def _discrete_key(arguments: dict) -> list:
    """``run_discrete``'s arguments as a key: the stop rule's t_max as the step it times out at."""
    stop, lr = arguments["stop"], arguments["optimiser"].lr
    arguments["stop"] = sorted((f.name, getattr(stop, f.name)) for f in dataclasses.fields(stop) if f.name != "t_max")
    arguments["steps"] = step_limit(stop, lr)
    return _flow_key(arguments)


def run_item(item) -> pd.DataFrame:
    """In a worker: one combination's rows, with its engine, work budget and wall time."""
    exp, chunk, pick = item
    t0 = time.perf_counter()
    df = run_chunk(exp, chunk)
    df["seconds"] = time.perf_counter() - t0
    df["by"] = df["engine"]  # the engine that computed each row (the batched engine hands some to the driver)
    df["engine"] = exp.engine
    df["budget"] = work_budget(exp.solver) if df["dynamics"].iloc[0] == "flow" else exp.stop.max_steps
    df["hyper"] = df["orpo_lambda"] if "orpo_lambda" in df.columns else df["beta"]
    df["stop"] = exp.name.rsplit("_", 1)[1]
    df["model"] = df["model"] + ("_similar" if "_similar_" in exp.name else "")
    df["cell"], df["combo"], df["start"] = exp.name, chunk.index, pick
    return df[list(COLUMNS)]


#: The columns of the product's rows.
COLUMNS = (
    "loss",
    "model",
    "reference",
    "hyper",
    "engine",
    "dynamics",
    "stop",
    "p1_0",
    "p2_0",
    "status",
    "displaced",
    "nfev",
    "steps",
    "budget",
    "t_sliding",
    "by",
    "message",
    "seconds",
    "cell",
    "combo",
    "start",
)


def run(plan, n_jobs: int = 2, subset: int | None = None, log=None, cover: bool = False, resume: bool = False):
    """Every row of the plan's combinations (forked workers; one task per combination).

    ``log``: a path to which each combination's rows are appended as they finish (a long run
    can be followed, and read back if it is stopped).  ``cover``: the driver's flow cells run the
    starts :func:`covering` picks from the batched engine's rows of the same combination, and the
    driver's records are remembered (:class:`Memo`) across cells; it computes in this process
    (n_jobs must be 1).  ``resume``: the combinations already in ``log`` are read back, not run.
    """
    if cover and n_jobs != 1:
        raise ValueError("a covering run reads each cell's rows before the next: it needs n_jobs = 1")
    parts, seen = [], {}
    if resume and log is not None and Path(log).exists():
        old = pd.read_csv(log, keep_default_na=False, na_values=[""], on_bad_lines="skip")
        if len(old):
            last = (old["cell"] == old["cell"].iloc[-1]) & (old["combo"] == old["combo"].iloc[-1])
            old = old[~last]  # the combination being written when the run stopped may be cut short: again
        old.to_csv(log, index=False)
        parts = [old]
        seen = {k: g for k, g in old.groupby(["cell", "combo"])} if cover else {}
        done = set(seen) if cover else set(map(tuple, old[["cell", "combo"]].drop_duplicates().to_numpy()))
    else:
        done = set()
    header = not parts
    memo = Memo() if cover else contextlib.nullcontext()
    with parallel.backend("fork", None, n_jobs) as pmap, memo:
        for part in pmap(run_item, items(plan, subset, cover=seen if cover else None, done=done)):
            parts.append(part)
            if cover and part["engine"].iloc[0] == "batched":
                seen[(part["cell"].iloc[0], part["combo"].iloc[0])] = part
            if log is not None:
                part.to_csv(log, mode="a", header=header, index=False)
                header = False
    df = pd.concat(parts, ignore_index=True)
    work = np.where(df["dynamics"] == "flow", df["nfev"], df["steps"].astype(float))
    df["within_budget"] = work <= df["budget"]
    if cover:
        df.attrs["memo"] = (memo.hits, memo.calls)
    return df


def nonconforming(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that failed or overran their work budget."""
    return df[(df["status"] == "failed") | ~df["within_budget"]]


def matrix(df: pd.DataFrame) -> str:
    """Markdown: per (stop rule, model, dynamics, engine) the combinations, rows by status, evaluations, time."""
    statuses = [s for s in STATUSES if s in set(df["status"]) or s == "failed"]  # the record's order
    head = [
        "stop",
        "model",
        "dynamics",
        "engine",
        "combinations",
        "rows",
        *statuses,
        "over budget",
        "stiff (LSODA)",
        "nfev median",
        "nfev max",
        "seconds",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (stop, model, dyn, engine), g in df.groupby(["stop", "model", "dynamics", "engine"], sort=False):
        combos = g.groupby(["loss", "reference", "hyper"]).ngroups
        counts = g["status"].value_counts()
        flow = dyn == "flow"
        work = g["nfev"] if flow else g["steps"]
        stiff = int(g["message"].fillna("").str.startswith("stiff").sum())
        secs = g.groupby(["loss", "reference", "hyper"])["seconds"].first().sum()
        row = [
            stop,
            model,
            dyn,
            engine,
            combos,
            len(g),
            *(int(counts.get(s, 0)) for s in statuses),
            int((~g["within_budget"]).sum()),
            stiff if flow else "-",
            f"{work.median():.0f}",
            f"{work.max():.0f}",
            f"{secs:.1f}",
        ]
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)


def report(df: pd.DataFrame, plan) -> str:
    """The matrix of a run's rows (complete or not), with what it covers of the plan's cells and its time."""
    work = np.where(df["dynamics"] == "flow", df["nfev"], df["steps"].astype(float))
    df = df.assign(within_budget=work <= df["budget"])
    cells = {(e.name, j) for e, which in plan for j in range(len(e.parameter_sets())) if which is None or j in which}
    done = set(map(tuple, df[["cell", "combo"]].drop_duplicates().to_numpy()))
    by_stop = df.groupby(["cell", "combo"]).agg(stop=("stop", "first"), seconds=("seconds", "first"))
    secs = by_stop.groupby("stop", sort=False)["seconds"].sum()
    bad = nonconforming(df)
    return (
        matrix(df)
        + f"\n\n{len(df)} rows; {len(done & cells)} of {len(cells)} combinations (cells x their"
        + f" beta x reference); {len(bad)} nonconforming (failed {int((df['status'] == 'failed').sum())},"
        + f" over budget {int((~df['within_budget']).sum())}); seconds by stop rule: "
        + ", ".join(f"{k} {v:.0f}" for k, v in secs.items())
        + f" (total {secs.sum():.0f})\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for rows.csv (as they finish), conformance.csv and matrix.md")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--subset", action="store_true", help="the test's seeded covering subset")
    ap.add_argument(
        "--cover", action="store_true", help="driver flow cells on covering starts, driver records shared (n-jobs 1)"
    )
    ap.add_argument("--resume", action="store_true", help="keep --out's rows.csv and run only what it lacks")
    ap.add_argument("--report", action="store_true", help="only the matrix of --out's rows.csv (a run part-way)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    plan = subset_experiments() if args.subset else experiments()
    if args.report:
        print(report(pd.read_csv(args.out / "rows.csv", keep_default_na=False, na_values=[""]), plan))
        return 0
    log = args.out and args.out / "rows.csv"
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            log.unlink(missing_ok=True)
    n_jobs = 1 if args.cover else args.n_jobs
    df = run(plan, n_jobs, subset=SUBSET if args.subset else None, log=log, cover=args.cover, resume=args.resume)
    wall = time.perf_counter() - t0
    text = matrix(df) + f"\n\n{len(df)} rows in {wall:.1f} s wall on {n_jobs} workers"
    if "memo" in df.attrs:
        text += " (driver records shared: {} of {} asked)".format(*df.attrs["memo"])
    text += "\n"
    bad = nonconforming(df)
    for _, r in bad.head(20).iterrows():
        where = f"{r['loss']} {r['model']} {r['reference']} {r['hyper']:g} {r['engine']} {r['dynamics']}"
        start = f"({r['p1_0']:g}, {r['p2_0']:g})"
        text += f"\nnonconforming: {where} {start} {r['status']} nfev={r['nfev']}: {r['message']}"
    print(text)
    if args.out:
        df.to_csv(args.out / "conformance.csv", index=False)
        (args.out / "matrix.md").write_text(text)
    return 1 if len(bad) else 0


#: Starts per combination in the test's subset.
SUBSET = 1

if __name__ == "__main__":
    sys.exit(main())
