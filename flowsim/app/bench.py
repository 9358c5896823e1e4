"""The performance benchmark (issue #15): integrated flows per second, whole process, at stated accuracy.

    flowsim bench [--quick] [--publish] [--out FILE] [--repeats N] [--grids 30,100,300] [--workers 1,2]
    python experiments/benchmark.py [the same options]

Problems (DPO, beta = 0.1, one num x num grid of starts each):

* ``ratio``: the paper's plane, references 1, grid over [0.02, 1]^2; oracle: ``exact_dpo``;
* ``logits``: a tabular softmax over K = 10 responses, reference = the start (DPO as practised),
  grid over [0.005, 0.495]^2 (every point a valid start); oracle: the closed form of
  :mod:`flowsim.dynamics.closed_forms.dpo_logits`.

Contenders:

* ``naive`` (ratio only): what a user writes -- per start, ``solve_ivp(method="RK45")`` on
  Theorem 1's field in x with the stop and crossing events, one joblib task per start;
* ``driver``: flowsim's per-start ``solve_ivp`` driver (DOP853 in the registered chart), in
  chunks of at most 256 starts as ``flowsim run`` makes them, one joblib task per chunk;
* ``batched``: :func:`flowsim.dynamics.batched.integrate_batch` (DOP853, all the rows of a
  chunk in lockstep), in chunks of at most 5,000 starts;
* ``closed``: the closed form itself (1 worker; no tolerance);
* ``run``: the ``flowsim run`` command itself on the same grid (the batched engine at its
  chosen rtol), timed from outside: start-up, the sweep, writing ``flows.csv`` and
  ``meta.json``; its rows are read back and checked against the oracle.

flowsim's contenders run on flowsim's own backend (``--backend``, default as ``flowsim run``:
"fork" on Linux); the naive loop on joblib's default (loky), as a user would write it.

Accuracy is the worst relative error of t_stop against the oracle (statuses must agree).
Each contender is timed (1) at *equal required accuracy*: the loosest rtol of a printed scan
(atol = rtol * 1e-3) whose worst t_stop error on the scan grid (30 x 30) is <= 1e-6, and
(2) at *equal achieved accuracy*: the loosest rtol whose worst error is <= the smallest one
any contender achieved in (1).  Each timed run is a fresh process (``python -m
flowsim.app.bench --child ...``) timed from outside: interpreter start-up, imports, the
joblib workers started and importing, the flows and collecting them -- the whole process;
the compute alone (first flow to last) is reported beside it, and start-up = whole - compute.
Medians of ``--repeats`` (one run where a run takes over 30 s); a run
whose estimated time (from the scan) exceeds ``--budget`` seconds is skipped with a note.
The scan also checks the batched engine against the driver row by row (same statuses,
t_stop within 1e-6) at the driver's default tolerance.

Results go to ``results/benchmark.csv`` only with ``--publish``; otherwise to a scratch
folder (printed).  ``--quick`` is a smoke run of seconds: a 5 x 5 grid, in-process.
Nothing asserts a speed: the machine may be shared; the table says what was measured, with
the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

BETA = 0.1
K = 10
REQUIRED = 1e-6  # the bar on the worst relative t_stop error
SCAN = (1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12)  # rtol; atol = rtol * 1e-3
QUICK_SCAN = (1e-6, 1e-8)
GRIDS, QUICK_GRIDS = (30, 100, 300), (5,)
SCAN_GRID, QUICK_SCAN_GRID = 30, 5
WORKERS = (1, 2)
CONTENDERS = {"ratio": ("naive", "driver", "batched"), "logits": ("driver", "batched")}
#: The contender whose rtol the ``flowsim run`` lines use.
RUN_ENGINE = "batched"
#: The issue's targets (printed next to the measurements, never asserted): flows/s on 2 cores, whole process.
TARGETS = {"ratio": 10_000.0, "logits": 3_000.0}
DRIVER_DEFAULT_RTOL = 1e-9


# -- the contenders ----------------------------------------------------------------------


def baseline_flow(x0: Sequence[float], beta: float, rtol: float, atol: float) -> tuple[float, int, str]:
    """One DPO flow by hand: Theorem 1's field in x, RK45, stop and crossing events.

    Returns (t_stop, right-hand-side evaluations, status).  References are 1, so x = p.
    """
    from scipy.integrate import solve_ivp

    p2_floor, p1_target, p2_target, t_max = 1e-6, 0.9, 0.1, 1e4
    if x0[1] <= p2_floor:
        return 0.0, 0, "converged"
    if x0[0] >= 1.0:  # already stopped
        return 0.0, 0, "capped"

    def rhs(t, x):
        s = x[1] ** beta / (x[0] ** beta + x[1] ** beta)
        return [beta * s / x[0], -beta * s / x[1]]

    def floor(t, x):
        return x[1] - p2_floor

    def cap(t, x):
        return x[0] - 1.0

    def won(t, x):
        return x[0] - p1_target

    def lost(t, x):
        return x[1] - p2_target

    floor.terminal, floor.direction = True, -1
    cap.terminal, cap.direction = True, 1
    won.direction, lost.direction = 1, -1
    with np.errstate(all="ignore"):  # RK stages may overshoot x2 < 0 near the floor (NaN there)
        sol = solve_ivp(rhs, (0.0, t_max), x0, method="RK45", rtol=rtol, atol=atol, events=[floor, cap, won, lost])
    ends = [(te[0], name) for te, name in zip(sol.t_events[:2], ("converged", "capped"), strict=True) if te.size]
    if ends:
        t, status = min(ends)
        return float(t), int(sol.nfev), status
    return float(sol.t[-1]), int(sol.nfev), "timeout" if sol.status == 0 else "failed"


def _setup(problem: str, p0: np.ndarray, ref: np.ndarray):
    from flowsim.model.losses import DPO
    from flowsim.model.parameterisations import RatioPlane, SoftmaxLogits

    par = RatioPlane() if problem == "ratio" else SoftmaxLogits(K=K)
    return DPO(beta=BETA), par.bind(p0, ref)


def driver_chunk(problem: str, p0: np.ndarray, ref: np.ndarray, rtol: float, atol: float):
    """flowsim's per-start driver over a chunk: (status, t_stop, nfev)."""
    from flowsim.dynamics.driver import SolverOptions, integrate

    loss, pol = _setup(problem, p0, ref)
    opts = SolverOptions(rtol=rtol, atol=atol)
    rs = [integrate(loss, policy=pol.row(i), options=opts) for i in range(len(p0))]
    return [r.status for r in rs], [r.t_stop for r in rs], [r.nfev for r in rs]


def batched_chunk(problem: str, p0: np.ndarray, ref: np.ndarray, rtol: float, atol: float):
    """The batched engine over a chunk: (status, t_stop, nfev)."""
    from flowsim.dynamics.batched import integrate_batch
    from flowsim.dynamics.driver import SolverOptions

    loss, pol = _setup(problem, p0, ref)
    out = integrate_batch(loss, pol, options=SolverOptions(rtol=rtol, atol=atol))
    return out["status"].tolist(), out["t_stop"].tolist(), out["nfev"].tolist()


def oracle(problem: str, p0: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The closed form's record of every start."""
    from flowsim.dynamics.closed_forms import dpo_logits, dpo_ratio
    from flowsim.dynamics.record import StopRule

    loss, pol = _setup(problem, p0, ref)
    return (dpo_ratio if problem == "ratio" else dpo_logits).flows(loss, pol, StopRule())


def points(problem: str, num: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid's starts (n, 2) and references (n, 2)."""
    lo, hi = (0.02, 1.0) if problem == "ratio" else (0.005, 0.495)
    axis = np.linspace(lo, hi, num)
    p = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return p, (np.ones_like(p) if problem == "ratio" else p.copy())


def chunk_size(contender: str, n: int, workers: int) -> int:
    per_worker = -(-n // workers)
    if contender == "driver":  # flowsim run's default for integrated sweeps
        return int(min(256, max(16, per_worker // 8)))
    return int(min(5000, per_worker))


def compute(contender: str, problem: str, p0: np.ndarray, ref: np.ndarray, workers: int, rtol: float,
            backend: str | None = None) -> dict:  # fmt: skip
    """Every start by one contender on ``workers`` processes: status, t_stop, nfev arrays.

    The naive loop runs on joblib's default backend, as a user would write it; flowsim's
    contenders on flowsim's backend ``backend`` (default: as ``flowsim run``).
    """
    if contender == "closed":
        out = oracle(problem, p0, ref)
        return {"status": np.asarray(out["status"]), "t_stop": out["t_stop"], "nfev": np.zeros(len(p0))}
    atol = rtol * 1e-3
    if contender == "naive":
        import joblib

        tasks = [joblib.delayed(baseline_flow)(x, BETA, rtol, atol) for x in p0.tolist()]
        res = joblib.Parallel(n_jobs=workers)(tasks)
        return {"t_stop": np.array([r[0] for r in res]), "nfev": np.array([r[1] for r in res]),
                "status": np.array([r[2] for r in res], dtype=object)}  # fmt: skip
    from flowsim.experiment import parallel

    fn = driver_chunk if contender == "driver" else batched_chunk
    size = chunk_size(contender, len(p0), workers)
    tasks = ((fn, lo, (problem, p0[lo : lo + size], ref[lo : lo + size], rtol, atol)) for lo in range(0, len(p0), size))
    with parallel.backend(backend or parallel.default_backend(), None, workers) as pmap:
        res = [r for _, r in sorted(pmap(_task, tasks), key=lambda item: item[0])]  # finished in any order
    return {"status": np.array([s for r in res for s in r[0]], dtype=object),
            "t_stop": np.array([t for r in res for t in r[1]]),
            "nfev": np.array([v for r in res for v in r[2]])}  # fmt: skip


def _task(item: tuple) -> tuple[int, tuple]:
    fn, lo, args = item
    return lo, fn(*args)


# -- measurement helpers -------------------------------------------------------------------


def rel_err(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| / |exact|; 0 where both are 0, inf where only exact is 0 or one is NaN."""
    got, exact = np.asarray(got, float), np.asarray(exact, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(got - exact) / np.abs(exact)
    err[got == exact] = 0.0
    err[np.isnan(err)] = np.inf
    return err


def accuracy(out: dict, ref: dict) -> dict:
    err = rel_err(out["t_stop"], ref["t_stop"])
    return {"worst": float(err.max()), "median": float(np.median(err)),
            "statuses_agree": bool(np.array_equal(np.asarray(out["status"], str), np.asarray(ref["status"], str))),
            "nfev": float(np.mean(out["nfev"]))}  # fmt: skip


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq steal), or None."""
    try:
        with open("/proc/stat") as fh:
            return [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def _steal(start: list[int] | None, end: list[int] | None) -> str:
    if not start or not end:
        return "n/a"
    d = [b - a for a, b in zip(start, end, strict=True)]
    return f"{100 * d[7] / max(1, sum(d)):.0f}%"


# -- one timed run: a fresh process, timed from outside ----------------------------------------


def warm(contender: str) -> int:
    """Import what a contender needs (in the process that calls it); its pid."""
    if contender in ("driver", "batched"):
        import flowsim.dynamics.batched
        import flowsim.dynamics.driver
    if contender in ("closed", "driver", "batched"):
        import flowsim.dynamics.closed_forms
        import flowsim.model.parameterisations  # noqa: F401
    if contender == "naive":
        import scipy.integrate  # noqa: F401
    return os.getpid()


def _child(spec: dict) -> int:
    """In a fresh process: start up (imports, the joblib workers), compute one grid, save it; print the times (JSON).

    Start-up is everything before the first flow: the interpreter, the imports, and with more
    than one worker the joblib processes, started and importing the contender's modules.
    """
    warm(spec["contender"])
    if spec["workers"] > 1 and (spec["contender"] == "naive" or spec["backend"] == "loky"):
        import joblib  # loky's workers start (and import) on first use: start-up, not compute

        joblib.Parallel(n_jobs=spec["workers"])(joblib.delayed(warm)(spec["contender"]) for _ in range(spec["workers"]))
    t0 = time.perf_counter()
    p0, ref = points(spec["problem"], spec["num"])
    out = compute(**{k: spec[k] for k in ("contender", "problem", "workers", "rtol", "backend")}, p0=p0, ref=ref)
    seconds = time.perf_counter() - t0
    np.savez(spec["out"], status=np.asarray(out["status"], str), t_stop=out["t_stop"], nfev=out["nfev"])
    print(json.dumps({"compute": seconds}))
    return 0


def timed_run(spec: dict, scratch: Path, in_process: bool) -> tuple[float, float, dict]:
    """(whole seconds, compute seconds, result) of one run: a fresh process unless ``in_process``."""
    if spec["contender"] == "run":
        return run_command(spec, scratch)
    if in_process:
        t0 = time.perf_counter()
        p0, ref = points(spec["problem"], spec["num"])
        out = compute(**{k: spec[k] for k in ("contender", "problem", "workers", "rtol", "backend")}, p0=p0, ref=ref)
        seconds = time.perf_counter() - t0
        return seconds, seconds, out
    path = scratch / f"run-{time.monotonic_ns()}.npz"
    arg = json.dumps(spec | {"out": str(path)})
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "flowsim.app.bench", "--child", arg], capture_output=True, text=True,
                         check=False)  # fmt: skip
    whole = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec}):\n{res.stderr[-2000:]}")
    compute_s = json.loads(res.stdout.strip().splitlines()[-1])["compute"]
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    path.unlink()
    return whole, compute_s, out


def run_command(spec: dict, scratch: Path) -> tuple[float, float, dict]:
    """``flowsim run`` on the problem's grid (batched engine), timed from outside; its rows read back.

    Compute is the sweep's own wall time (meta.json); the rows are put in :func:`points`' order.
    """
    import pandas as pd

    tag = time.monotonic_ns()
    folder, experiment = scratch / f"run-{tag}", scratch / f"run-{tag}.toml"
    experiment.write_text(experiment_toml(spec["problem"], spec["num"], spec["rtol"]))
    argv = [sys.executable, "-m", "flowsim", "run", str(experiment), "--out", str(folder), "--quiet",
            "--n-jobs", str(spec["workers"]), *(["--backend", spec["backend"]] if spec["backend"] else [])]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    whole = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"flowsim run failed ({spec}):\n{res.stderr[-2000:]}")
    compute_s = json.loads((folder / "meta.json").read_text())["wall_time_s"]
    df = pd.read_csv(folder / "flows.csv", usecols=["p1_0", "p2_0", "status", "t_stop", "nfev"])
    df = df.iloc[np.lexsort((df["p2_0"].to_numpy(), df["p1_0"].to_numpy()))]  # p1 outer, as points()
    out = {"status": df["status"].to_numpy(str), "t_stop": df["t_stop"].to_numpy(float), "nfev": df["nfev"].to_numpy()}
    for path in (*folder.iterdir(), folder, experiment):
        path.rmdir() if path.is_dir() else path.unlink()
    return whole, compute_s, out


def experiment_toml(problem: str, num: int, rtol: float) -> str:
    """The experiment file of a problem's grid for ``flowsim run``, the batched engine at ``rtol``."""
    lo, hi = (0.02, 1.0) if problem == "ratio" else (0.005, 0.495)
    model = 'kind = "ratio"' if problem == "ratio" else f'kind = "logits"\nK = {K}'
    return (f'name = "bench-{problem}"\n[loss]\nkind = "dpo"\nbeta = {BETA}\n'
            f'reference = "{"fixed" if problem == "ratio" else "initial"}"\n[model]\n{model}\n[grid]\n'
            f"p1 = {{ start = {lo}, stop = {hi}, num = {num} }}\np2 = {{ start = {lo}, stop = {hi}, num = {num} }}\n"
            f'[solver]\nengine = "batched"\nrtol = {rtol!r}\natol = {rtol * 1e-3!r}\n')  # fmt: skip


# -- the scan ---------------------------------------------------------------------------------


class Scan:
    """Each contender's runs on the scan grid, by rtol (in-process; printed)."""

    def __init__(self, problem: str, num: int, scan: Sequence[float], echo, workers: int, backend: str) -> None:
        self.problem, self.scan, self.echo, self.workers = problem, tuple(scan), echo, workers
        self.backend = backend
        self.p0, self.ref = points(problem, num)
        self.exact = oracle(problem, self.p0, self.ref)
        self.runs: dict[tuple[str, float], dict] = {}
        self.outs: dict[tuple[str, float], dict] = {}

    def run(self, contender: str, rtol: float) -> dict:
        key = (contender, rtol)
        if key not in self.runs:
            t0 = time.perf_counter()
            out = compute(contender, self.problem, self.p0, self.ref, self.workers, rtol, self.backend)
            seconds = time.perf_counter() - t0
            acc = accuracy(out, self.exact)
            self.runs[key] = acc | {"rtol": rtol, "seconds": seconds, "per_flow": seconds / len(self.p0)}
            self.outs[key] = out
            r = self.runs[key]
            agree = "yes" if r["statuses_agree"] else "NO"
            self.echo(f"  {contender:8} {rtol:8.0e} {r['worst']:10.2e} {r['median']:10.2e} {agree:>8} "
                      f"{len(self.p0) / seconds:9,.0f} {r['nfev']:9.0f}")  # fmt: skip
        return self.runs[key]

    def loosest(self, contender: str, want: float) -> float:
        """The loosest scanned rtol whose worst t_stop error is <= want (else the most accurate tried)."""
        for rtol in self.scan:
            r = self.run(contender, rtol)
            if r["worst"] <= want and r["statuses_agree"]:
                return rtol
        best = min((v for (c, _), v in self.runs.items() if c == contender), key=lambda v: v["worst"])
        return best["rtol"]


def check_against_driver(scan: Scan, rtol: float, echo) -> dict:
    """The batched engine against the driver, row by row, at the same options."""
    a, b = scan.outs.get(("batched", rtol)), scan.outs.get(("driver", rtol))
    if a is None:
        scan.run("batched", rtol)
        a = scan.outs[("batched", rtol)]
    if b is None:
        scan.run("driver", rtol)
        b = scan.outs[("driver", rtol)]
    same = bool(np.array_equal(np.asarray(a["status"], str), np.asarray(b["status"], str)))
    worst = float(rel_err(a["t_stop"], b["t_stop"]).max())
    echo(f"  batched vs driver, row by row at rtol {rtol:g}: statuses {'identical' if same else 'DIFFER'}, "
         f"worst relative t_stop difference {worst:.1e}")  # fmt: skip
    return {"statuses_agree": same, "worst": worst, "rtol": rtol}


# -- the benchmark ------------------------------------------------------------------------------


def _scan_problem(problem: str, scan: Scan, echo) -> dict[str, dict[str, float]]:
    """Pick each contender's rtol at equal required and at equal achieved accuracy."""
    side = math.isqrt(len(scan.p0))
    echo(f"\n{problem}: tolerance scan on the {side}x{side} scan grid ({len(scan.p0)} starts, in-process, "
         f"{scan.workers} worker(s)), atol = rtol * 1e-3; wanted: worst t_stop error <= {REQUIRED:g}")  # fmt: skip
    echo(f"  {'':8} {'rtol':>8} {'worst err':>10} {'median err':>10} {'statuses':>8} {'flows/s':>9} {'nfev/flow':>9}")
    required = {c: scan.loosest(c, REQUIRED) for c in CONTENDERS[problem]}
    target = _round_up(min(scan.runs[(c, r)]["worst"] for c, r in required.items()))
    echo(f"  equal achieved accuracy: worst t_stop error <= {target:.2g} (the most accurate at the required setting)")
    achieved = {c: scan.loosest(c, target) for c in CONTENDERS[problem]}
    for mode, chosen in (("required", required), ("achieved", achieved)):
        echo(f"  chosen ({mode}): " + ", ".join(f"{c} rtol {r:g} (worst {scan.runs[(c, r)]['worst']:.1e})"
                                                 for c, r in chosen.items()))  # fmt: skip
    return {"required": required, "achieved": achieved, "target": target}


def _round_up(v: float) -> float:
    """v rounded up to 2 significant digits (so that a contender exactly as accurate meets it, as printed)."""
    if not v > 0 or not math.isfinite(v):
        return v
    unit = 10.0 ** (math.floor(math.log10(v)) - 1)
    return math.ceil(v / unit * (1 - 1e-12)) * unit


def _timed(problem, mode, contender, num, workers, rtol, ctx) -> dict:
    """One timed line: median of the repeats, or a skip with its reason."""
    p0, ref = points(problem, num)
    n = len(p0)
    row = {"line": "timed", "problem": problem, "accuracy": mode, "contender": contender, "grid": f"{num}x{num}",
           "n": n, "workers": workers, "rtol": rtol, "atol": None if rtol is None else rtol * 1e-3,
           "process": "in-process" if ctx["in_process"] and contender != "run" else "whole",
           "backend": "joblib (loky)" if contender == "naive" else ctx["backend"]}  # fmt: skip
    key = (problem, contender, num, workers, rtol)
    if key in ctx["done"]:
        return row | ctx["done"][key] | {"note": "same run as the required-accuracy line (same rtol)"}
    per_flow = ctx["per_flow"].get((problem, RUN_ENGINE if contender == "run" else contender, rtol), 0.0)
    estimate = n * per_flow * max(WORKERS) / workers
    if estimate > ctx["budget"]:
        return row | {"note": f"skipped: estimated {estimate:,.0f} s > budget {ctx['budget']:g} s"}
    spec = {"problem": problem, "contender": contender, "num": num, "workers": workers, "rtol": rtol or 0.0,
            "backend": ctx["backend"]}  # fmt: skip
    wholes, computes = [], []
    while len(wholes) < ctx["repeats"]:
        whole, comp, out = timed_run(spec, ctx["scratch"], ctx["in_process"])
        wholes.append(whole)
        computes.append(comp)
        if whole > 30:
            break
    acc = accuracy(out, ctx["oracles"].setdefault((problem, num), oracle(problem, p0, ref)))
    med, cmed = statistics.median(wholes), statistics.median(computes)
    res = {"repeats": len(wholes), "seconds": med, "seconds_all": " ".join(f"{t:.3f}" for t in wholes),
           "compute_seconds": cmed, "startup_seconds": med - cmed, "flows_per_s": n / med,
           "compute_flows_per_s": n / cmed, "worst_rel_err": acc["worst"], "median_rel_err": acc["median"],
           "statuses_agree": acc["statuses_agree"], "nfev_mean": acc["nfev"], "note": ""}  # fmt: skip
    ctx["done"][key] = res
    ctx["echo"](_format_line(row | res))
    return row | res


def _format_line(r: dict) -> str:
    rtol = "-" if r.get("rtol") is None else f"{r['rtol']:.0e}"
    head = f"  {r['problem']:6} {r['accuracy']:8} {r['contender']:8} {r['grid']:>7} {r['workers']:>2}w {rtol:>6}"
    if r.get("note", "").startswith("skipped"):
        return f"{head}  {r['note']}"
    return (f"{head} {r['seconds']:8.2f} s {r['flows_per_s']:10,.0f}/s (compute {r['compute_flows_per_s']:10,.0f}/s) "
            f"worst {r['worst_rel_err']:.1e} {'' if r['statuses_agree'] else 'STATUSES DIFFER'}")  # fmt: skip


def run(quick: bool = False, repeats: int = 3, out: str | Path | None = None, publish: bool = False,
        grids: Sequence[int] | None = None, workers: Sequence[int] = WORKERS, budget: float = 150.0,
        backend: str | None = None, echo: Callable = print):  # fmt: skip
    """Measure everything; print the tables; write the CSV (returned as a table too)."""
    import pandas as pd

    from flowsim.experiment.parallel import default_backend
    from flowsim.experiment.store import git_commit

    backend = backend or default_backend()
    grids = tuple(grids or (QUICK_GRIDS if quick else GRIDS))
    scan_values, scan_num = (QUICK_SCAN, QUICK_SCAN_GRID) if quick else (SCAN, SCAN_GRID)
    path = Path("results/benchmark.csv") if publish else Path(out) if out else _scratch() / "benchmark.csv"
    load_start, cpu_start = _load(), _cpu_times()
    echo(f"flowsim benchmark (issue #15): DPO beta={BETA}; {os.cpu_count()} CPUs; flowsim's backend {backend}; "
         f"load average {load_start}")  # fmt: skip
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="flowsim-bench-") as tmp:
        ctx = {"scratch": Path(tmp), "in_process": quick, "repeats": 1 if quick else repeats, "budget": budget,
               "done": {}, "per_flow": {}, "oracles": {}, "echo": echo, "backend": backend}  # fmt: skip
        choices = {}
        for problem in CONTENDERS:
            scan = Scan(problem, scan_num, scan_values, echo, 1 if quick else max(WORKERS), backend)
            choices[problem] = _scan_problem(problem, scan, echo)
            rows += [{"line": "scan", "problem": problem, "contender": c, "grid": f"{scan_num}x{scan_num}",
                      "n": len(scan.p0), "workers": scan.workers, "rtol": r, "atol": r * 1e-3, "seconds": v["seconds"],
                      "flows_per_s": len(scan.p0) / v["seconds"], "worst_rel_err": v["worst"],
                      "median_rel_err": v["median"], "statuses_agree": v["statuses_agree"], "nfev_mean": v["nfev"]}
                     for (c, r), v in scan.runs.items()]  # fmt: skip
            chk = check_against_driver(scan, DRIVER_DEFAULT_RTOL if not quick else scan_values[-1], echo)
            rows.append({"line": "batched_vs_driver", "problem": problem, "grid": f"{scan_num}x{scan_num}",
                         "rtol": chk["rtol"], "worst_rel_err": chk["worst"], "statuses_agree": chk["statuses_agree"],
                         "note": "batched engine against the per-start driver, row by row, same options"})  # fmt: skip
            ctx["per_flow"].update({(problem, c, r): v["per_flow"] for (c, r), v in scan.runs.items()})
            ctx["per_flow"][(problem, "closed", None)] = 0.0
        echo(f"\ntimed runs ({'in-process: no start-up' if quick else 'each a fresh process, timed from outside'}); "
             f"median of {ctx['repeats']}")  # fmt: skip
        for problem in CONTENDERS:
            for mode in ("required", "achieved"):
                for contender in CONTENDERS[problem]:
                    rtol = choices[problem][mode][contender]
                    rows += [_timed(problem, mode, contender, num, w, rtol, ctx) for num in grids for w in workers]
            rows += [_timed(problem, "exact", "closed", num, 1, None, ctx) for num in grids]
            rtol = choices[problem]["required"][RUN_ENGINE]  # the command itself, as a user runs it
            rows += [_timed(problem, "required", "run", num, w, rtol, ctx) for num in grids
                     for w in (workers[:1] if quick else workers)]  # fmt: skip
    load_end, steal = _load(), _steal(cpu_start, _cpu_times())
    rows += _summary(rows, echo)
    versions = [f"{m.__name__} {m.__version__}" for m in (np, _scipy(), pd)]
    rows.append({"line": "machine", "workers": os.cpu_count(),
                 "note": f"{platform.platform()}; {os.cpu_count()} CPUs; python {platform.python_version()}, "
                         f"{', '.join(versions)}; load average {load_start} (start), {load_end} (end); "
                         f"CPU time stolen by the hypervisor during the run: {steal}; "
                         f"flowsim at {git_commit()}"})  # fmt: skip
    table = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    echo(f"\nload average {load_start} at the start, {load_end} at the end; CPU time stolen: {steal}")
    echo(f"written to {path}")
    return table


def _summary(rows: list[dict], echo) -> list[dict]:
    """The issue's targets (on this 2-core machine) against the batched engine's and ``flowsim run``'s lines."""
    out = []
    echo("")
    for problem, target in TARGETS.items():
        lines = [r for r in rows if r.get("line") == "timed" and r["problem"] == problem
                 and r["contender"] in ("batched", "run") and r["accuracy"] == "required"
                 and "flows_per_s" in r]  # fmt: skip
        if not lines:
            continue
        for r in lines:
            who = "flowsim run (batched)" if r["contender"] == "run" else "batched engine"
            what = (f"{problem}: {who}, {r['grid']}, {r['workers']} workers, {r['process']} process, worst "
                    f"t_stop error {r['worst_rel_err']:.1e}")  # fmt: skip
            ok = r["flows_per_s"] >= target
            echo(f"{what:<95} {r['flows_per_s']:>10,.0f}/s  target >= {target:,.0f}: {'met' if ok else 'NOT met'}")
            out.append({"line": "target", "problem": problem, "grid": r["grid"], "workers": r["workers"],
                        "flows_per_s": r["flows_per_s"], "value": target, "note": what})  # fmt: skip
    return out


def _scipy():
    import scipy

    return scipy


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="flowsim-bench-out-"))


def main(argv: Sequence[str] | None = None) -> int:
    """``flowsim bench`` / ``python experiments/benchmark.py``."""
    parser = argparse.ArgumentParser(prog="flowsim bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 5x5 grid, in-process (a smoke test, seconds)")
    parser.add_argument("--publish", action="store_true", help="write results/benchmark.csv (else a scratch folder)")
    parser.add_argument("--out", default=None, help="CSV to write instead of the scratch folder's")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per line, median reported (default 3)")
    parser.add_argument("--grids", default=None, help="grid sides, comma-separated (default 30,100,300)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    parser.add_argument("--budget", type=float, default=150.0, help="skip runs estimated longer (s; default 150)")
    parser.add_argument("--backend", default=None, choices=["fork", "loky"],
                        help="flowsim's backend for its contenders (default as flowsim run)")  # fmt: skip
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # flowsim bench -- --quick
    if args.child is not None:
        return _child(json.loads(args.child))
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    grids = [int(v) for v in args.grids.split(",")] if args.grids else None
    run(quick=args.quick, repeats=args.repeats, out=args.out, publish=args.publish, grids=grids,
        workers=[int(v) for v in args.workers.split(",")], budget=args.budget, backend=args.backend)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
