"""The benchmark run: the scans, the timed lines of the plan, the cluster and optimiser lines, the CSV.

See :mod:`flowsim.app.bench` for what is measured and how.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from flowsim.app.bench.contenders import BETA, network_rates, optimiser_rates, run_child, timed_run
from flowsim.app.bench.measure import (
    CONTENDERS,
    RUN_ENGINE,
    Scan,
    check_against_driver,
    cpu_times,
    load_average,
    scan_problem,
    steal_share,
    timed_row,
)
from flowsim.dynamics.driver import DEFAULT_RTOL

SCAN = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12)  # rtol; atol = rtol * 1e-3
QUICK_SCAN = (1e-6, 1e-8)
SCAN_GRID, QUICK_SCAN_GRID = 30, 5
#: The issue's targets (printed next to the measurements, never asserted): flows/s on 2 cores, whole
#: process, by (problem, grid side); and start-steps per second per core of the discrete optimisers.
TARGETS = {("ratio", 100): 20_000.0, ("ratio", 300): 40_000.0, ("logits", 100): 5_000.0}
OPTIMISER_TARGET = 1e6
#: The timed lines: (contender, grid side, workers) per problem.  The per-start contenders are timed
#: on the grids they finish in seconds (their rate is flat in the grid); "run-default" is
#: ``flowsim run`` with no [solver] key; "dask" is ``flowsim run`` on a 2-worker LocalCluster.
PLAN = {
    "ratio": [
        ("naive", 30, 2),
        ("driver", 100, 2),
        ("batched", 100, 1),
        ("batched", 100, 2),
        ("batched", 300, 2),
        ("run", 100, 2),
        ("run", 300, 2),
        ("run-default", 100, 2),
        ("run-default", 300, 2),
        ("dask", 300, 2),
        ("closed", 100, 1),
        ("closed", 300, 1),
    ],
    "logits": [
        ("driver", 30, 2),
        ("batched", 100, 2),
        ("batched", 300, 2),
        ("run", 100, 2),
        ("run-default", 100, 2),
        ("closed", 100, 1),
    ],
}
QUICK_PLAN = {
    p: [(c, 5, w) for c in CONTENDERS[p] for w in (1, 2)] + [("run", 5, 1), ("closed", 5, 1)] for p in CONTENDERS
}
#: Contenders timed again at equal achieved accuracy (the others have no tolerance, or use the batched one's).
ACHIEVED = ("naive", "driver", "batched")


def run(
    quick: bool = False,
    repeats: int = 3,
    out: str | Path | None = None,
    publish: bool = False,
    budget: float = 60.0,
    backend: str | None = None,
    dask: bool = True,
    echo: Callable = print,
):
    """Measure everything; print the tables; write the CSV (returned as a table too)."""
    import pandas as pd

    from flowsim.experiment.parallel import default_backend

    backend = backend or default_backend()
    path = Path("results/benchmark.csv") if publish else Path(out) if out else _scratch() / "benchmark.csv"
    load_start, cpu_start, t_start = load_average(), cpu_times(), time.perf_counter()
    echo(
        f"flowsim benchmark: DPO beta={BETA}; {os.cpu_count()} CPUs; flowsim's backend {backend}; "
        f"load average {load_start}"
    )
    plan = QUICK_PLAN if quick else PLAN
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="flowsim-bench-") as tmp:
        ctx = {
            "scratch": Path(tmp),
            "in_process": quick,
            "repeats": 1 if quick else repeats,
            "budget": budget,
            "done": {},
            "per_flow": {},
            "oracles": {},
            "echo": echo,
            "backend": backend,
            "scan_workers": 1 if quick else 2,
        }
        choices = {problem: _scan(problem, quick, ctx, rows) for problem in CONTENDERS}
        echo(
            f"\ntimed runs ({'in-process: no start-up' if quick else 'each a fresh process, timed from outside'}); "
            f"median of up to {ctx['repeats']}"
        )
        for problem, lines in plan.items():
            rows += _timed_lines(problem, [x for x in lines if x[0] != "dask"], choices[problem], ctx)
        dask_lines = [(p, x) for p, lines in plan.items() for x in lines if x[0] == "dask" and dask]
        if dask_lines and importlib.util.find_spec("distributed") is None:
            echo("dask line skipped: dask.distributed is not installed (pip install 'flowsim[dask]')")
            dask_lines = []
        if dask_lines:  # the cluster runs only for its own lines
            with _cluster(echo) as ctx["scheduler"]:
                rows += [
                    timed_row(p, "required", c, num, w, choices[p]["required"][RUN_ENGINE], ctx)
                    for p, (c, num, w) in dask_lines
                ]
    rows += _optimisers(quick, echo)
    rows += _network(quick, echo)
    rows += _trace(quick, echo)
    rows += _summary(rows, echo)
    rows.append(_machine(load_start, steal_share(cpu_start, cpu_times()), time.perf_counter() - t_start))
    table = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    echo(f"\n{rows[-1]['note']}\nwritten to {path}")
    return table


def _scan(problem: str, quick: bool, ctx: dict, rows: list[dict]) -> dict:
    """The tolerance scan of a problem (its lines appended to ``rows``); the chosen rtols."""
    scan_values, scan_num = (QUICK_SCAN, QUICK_SCAN_GRID) if quick else (SCAN, SCAN_GRID)
    scan = Scan(problem, scan_num, scan_values, ctx["echo"], ctx["scan_workers"], ctx["backend"])
    chosen = scan_problem(problem, scan, ctx["echo"])
    rows += [
        {
            "line": "scan",
            "problem": problem,
            "contender": c,
            "grid": f"{scan_num}x{scan_num}",
            "n": len(scan.p0),
            "workers": scan.workers,
            "rtol": r,
            "atol": r * 1e-3,
            "seconds": v["seconds"],
            "flows_per_s": len(scan.p0) / v["seconds"],
            "worst_rel_err": v["worst"],
            "median_rel_err": v["median"],
            "statuses_agree": v["statuses_agree"],
            "nfev_mean": v["nfev"],
        }
        for (c, r), v in scan.runs.items()
    ]
    chk = check_against_driver(scan, scan_values[-1] if quick else DEFAULT_RTOL, ctx["echo"])
    rows.append(
        {
            "line": "batched_vs_driver",
            "problem": problem,
            "grid": f"{scan_num}x{scan_num}",
            "rtol": chk["rtol"],
            "worst_rel_err": chk["worst"],
            "statuses_agree": chk["statuses_agree"],
            "note": "batched engine against the per-start driver, row by row, same options",
        }
    )
    ctx["per_flow"].update({(problem, c, r): v["per_flow"] for (c, r), v in scan.runs.items()})
    return chosen


def _timed_lines(problem: str, lines, chosen: dict, ctx: dict) -> list[dict]:
    """The plan's lines at equal required accuracy, those of ACHIEVED again at equal achieved accuracy."""
    out = []
    for mode in ("required", "achieved"):
        for contender, num, workers in lines:
            if contender == "closed":
                if mode == "required":
                    out.append(timed_row(problem, "exact", "closed", num, 1, None, ctx))
                continue
            if mode == "achieved" and contender not in ACHIEVED:
                continue
            engine = contender if contender in CONTENDERS[problem] else RUN_ENGINE
            rtol = None if contender == "run-default" else chosen[mode][engine]
            out.append(timed_row(problem, mode, contender, num, workers, rtol, ctx))
    return out


@contextlib.contextmanager
def _cluster(echo) -> Iterator[str]:
    """A dask LocalCluster of 2 single-threaded worker processes, warmed; its scheduler's address."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.run(__import__, "flowsim.experiment.sweep")  # workers import flowsim once, as long-lived ones have
        echo(f"dask LocalCluster at {cluster.scheduler_address}: 2 workers, 1 thread each (started before timing)")
        yield cluster.scheduler_address


def _optimisers(quick: bool, echo) -> list[dict]:
    """The discrete optimisers' start-steps per second per core (logits K = 10)."""
    repeat = 1 if quick else 3
    rates = optimiser_rates(n=50 if quick else 1000, steps=20 if quick else 1000, repeat=repeat)
    echo(f"\ndiscrete optimisers, logits K = 10, every row live (CPU time of this process, best of {repeat}):")
    out = []
    for r in rates:
        ok = "met" if r["per_core"] >= OPTIMISER_TARGET else "NOT met"
        echo(
            f"  {r['optimiser']:9} {r['start_steps']:>10,} start-steps in {r['cpu_seconds']:.3f} s CPU: "
            f"{r['per_core']:12,.0f} per core  target >= {OPTIMISER_TARGET:,.0f}: {ok}"
        )
        out.append(
            {
                "line": "optimiser",
                "problem": "logits",
                "contender": r["optimiser"],
                "workers": 1,
                "seconds": r["cpu_seconds"],
                "value": r["per_core"],
                "n": r["start_steps"],
                "note": "start-steps per second per core (CPU time)",
            }
        )
    return out


def _network(quick: bool, echo) -> list[dict]:
    """The network model's trainings and steps per second, one at a time and as ensembles (one process),
    for the shipped MLP and transformer experiments at one seed (``NETWORK_DOC``,
    ``NETWORK_TRANSFORMER_DOC``), if torch is installed."""
    if importlib.util.find_spec("torch") is None:
        echo("\nnetwork line skipped: torch is not installed (pip install -e '.[nn]')")
        return []
    from flowsim.app.bench.contenders import NETWORK_DOC, NETWORK_TRANSFORMER_DOC

    if quick:  # four small trainings of the MLP: seconds
        small = {"p1": {"start": 0.25, "stop": 0.35, "num": 2}, "p2": {"start": 0.15, "stop": 0.25, "num": 2}}
        cases = {
            "mlp": NETWORK_DOC
            | {
                "model": NETWORK_DOC["model"] | {"n_pairs": 1, "sft_steps": 10},
                "dynamics": {"kind": "gd", "gd": {"lr": 0.05}},
                "grid": small,
                "stop": {"max_steps": 10},
            }
        }
        loops = {"mlp": 8}
    else:  # the shipped experiments at one seed: every combination of their other axes
        cases = {"mlp": NETWORK_DOC}
        loops = {"mlp": 8, "transformer": 4}
        if importlib.util.find_spec("transformers") is None:
            echo("\nnetwork transformer line skipped: transformers is not installed (pip install -e '.[nn]')")
        else:
            cases["transformer"] = NETWORK_TRANSFORMER_DOC
    rows = []
    echo("\nnetwork (torch, one process): one training at a time (loop) and one ensemble per chunk, same rows")
    for arch, doc in cases.items():
        r = network_rates(doc, loop_starts=loops[arch])
        for engine in ("loop", "ensemble"):
            e = r[engine]
            echo(
                f"  {arch:24s} {engine:8s} {e['trainings']:4d} trainings in {e['seconds']:6.1f} s "
                f"({e['cpu_seconds']:6.1f} s CPU): {e['trainings_per_s']:7.2f} trainings/s, "
                f"{e['steps_per_s']:9,.0f} steps/s ({e['sft_steps']:,} SFT + {e['dpo_steps']:,} DPO steps)"
            )
            rows.append(
                {
                    "line": "network",
                    "problem": f"network-{arch}",
                    "contender": engine,
                    "workers": 1,
                    "seconds": e["seconds"],
                    "n": e["trainings"],
                    "value": e["steps_per_s"],
                    "flows_per_s": e["trainings_per_s"],
                    "worst_rel_err": r["max_abs_diff"],
                    "note": f"trainings per second (flows_per_s; {e['trainings_per_cpu_s']:.2f} per CPU second) "
                    "and SFT + DPO steps per second (value), one process; worst_rel_err: the largest absolute "
                    "difference between the loop's and the ensemble's rows",
                }
            )
        diff = r["max_abs_diff"]
        # rounding grows to O(1) where SFT after pretraining is chaotic (docs/explanation/transformer.md)
        same = f"rows equal to {diff:.1e}" if diff <= 1e-8 else f"rows differ by up to {diff:.1e} (a chaotic training)"
        echo(
            f"  {arch:24s} ensemble / loop: {r['speed_up']:.1f}x trainings/s ({r['speed_up_cpu']:.1f}x per CPU "
            f"second); {same}"
        )
    return rows


def _trace(quick: bool, echo) -> list[dict]:
    """The TRL callback's cost per recorded step for 64 probe pairs on the tiny GPT-2, if the trl extra is installed."""
    if importlib.util.find_spec("trl") is None:
        echo("\ntrace line skipped: TRL is not installed (pip install -e '.[trl]')")
        return []
    if quick:  # importing transformers and TRL alone takes ~10 s
        echo("\ntrace line skipped by --quick (TRL's import alone takes ~10 s)")
        return []

    from flowsim.integrations import tiny

    with tempfile.TemporaryDirectory() as scratch:
        r = tiny.overhead(scratch, steps=20, pairs=64, repeats=2)
    echo(
        f"\ntrace (TRL callback, tiny GPT-2, 64 probe pairs, one thread): {1e3 * r['overhead_s_per_step']:.1f} ms "
        f"per recorded step ({1e3 * r['plain_s_per_step']:.1f} ms/step without, {1e3 * r['traced_s_per_step']:.1f} "
        f"with; scoring {1e3 * r['score_s']:.1f} ms, writing {1e3 * r['write_s']:.1f} ms per recording)"
    )
    return [
        {
            "line": "trace",
            "problem": "trl-tiny-gpt2",
            "contender": "callback",
            "workers": 1,
            "seconds": r["traced_s_per_step"] * r["steps"],
            "n": r["pairs"],
            "value": r["overhead_s_per_step"],
            "note": "seconds added per recorded step by the TRL callback (64 probe pairs; best of runs with and "
            "without it)",
        }
    ]


def _summary(rows: list[dict], echo) -> list[dict]:
    """The issue's targets against the whole-process lines of ``flowsim run`` (and the engine's) on 2 workers."""
    out = []
    echo("")
    for r in rows:
        target = TARGETS.get((r.get("problem"), int(str(r.get("grid", "0x")).split("x")[0] or 0)))
        if r.get("line") != "timed" or target is None or "flows_per_s" not in r or r["workers"] != 2:
            continue
        if r["contender"] not in ("run", "run-default", "batched") or r["accuracy"] == "achieved":
            continue
        what = (
            f"{r['problem']} {r['grid']}: {r['contender']}, {r['process']} process, rtol "
            f"{'default' if r['rtol'] is None else format(r['rtol'], 'g')}, worst t_stop error "
            f"{r['worst_rel_err']:.1e}"
        )
        ok = r["flows_per_s"] >= target and r["worst_rel_err"] <= 1e-6
        echo(f"{what:<90} {r['flows_per_s']:>10,.0f}/s  target >= {target:,.0f}: {'met' if ok else 'NOT met'}")
        out.append(
            {
                "line": "target",
                "problem": r["problem"],
                "contender": r["contender"],
                "grid": r["grid"],
                "workers": 2,
                "flows_per_s": r["flows_per_s"],
                "value": target,
                "note": what,
            }
        )
    return out


def _machine(load_start: str, steal: str, seconds: float) -> dict:
    import pandas as pd
    import scipy

    from flowsim.experiment.store import git_commit

    versions = ", ".join(f"{m.__name__} {m.__version__}" for m in (np, scipy, pd))
    return {
        "line": "machine",
        "workers": os.cpu_count(),
        "seconds": seconds,
        "note": f"{platform.platform()}; {os.cpu_count()} CPUs; python {platform.python_version()}, {versions}; "
        f"load average {load_start} (start), {load_average()} (end); CPU time stolen by the hypervisor "
        f"during the run: {steal}; benchmark took {seconds:.0f} s; flowsim at {git_commit()}",
    }


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="flowsim-bench-out-"))


def main(argv: Sequence[str] | None = None) -> int:
    """``flowsim bench`` / ``python experiments/benchmark.py``."""
    parser = argparse.ArgumentParser(prog="flowsim bench", description="flowsim's performance benchmark")
    parser.add_argument("--quick", action="store_true", help="a 5x5 grid, in-process (a smoke test, seconds)")
    parser.add_argument("--publish", action="store_true", help="write results/benchmark.csv (else a scratch folder)")
    parser.add_argument("--out", default=None, help="CSV to write instead of the scratch folder's")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per line, median reported (default 3)")
    parser.add_argument("--budget", type=float, default=60.0, help="skip runs estimated longer (s; default 60)")
    parser.add_argument(
        "--backend",
        default=None,
        choices=["fork", "loky"],
        help="flowsim's backend for its contenders (default as flowsim run)",
    )
    parser.add_argument("--no-dask", action="store_true", help="leave out the dask LocalCluster line")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # flowsim bench -- --quick
    if args.child is not None:
        import json

        return run_child(json.loads(args.child))
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    run(
        quick=args.quick,
        repeats=args.repeats,
        out=args.out,
        publish=args.publish,
        budget=args.budget,
        backend=args.backend,
        dask=not args.no_dask,
    )
    return 0


__all__ = ["main", "run", "timed_run"]
