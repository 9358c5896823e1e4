"""The benchmark's measurements: accuracy against the oracle, the tolerance scan, one timed line.

See :mod:`flowsim.app.bench` for what is measured and how.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from flowsim.app.bench.contenders import compute, oracle, points, timed_run

REQUIRED = 1e-6  # the bar on the worst relative t_stop error
#: The contenders of each problem's scan, and the one whose rtol the ``flowsim run`` lines use.
CONTENDERS = {"ratio": ("naive", "driver", "batched"), "logits": ("driver", "batched")}
RUN_ENGINE = "batched"
#: A timed line is repeated (median reported) only while one run takes less than this (s).
REPEAT_BELOW = 10.0


# -- accuracy and the machine -----------------------------------------------------------------


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
    return {
        "worst": float(err.max()),
        "median": float(np.median(err)),
        "statuses_agree": bool(np.array_equal(np.asarray(out["status"], str), np.asarray(ref["status"], str))),
        "nfev": float(np.mean(out["nfev"])),
    }


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq steal), or None."""
    try:
        with open("/proc/stat") as fh:
            return [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def steal_share(start: list[int] | None, end: list[int] | None) -> str:
    if not start or not end:
        return "n/a"
    d = [b - a for a, b in zip(start, end, strict=True)]
    return f"{100 * d[7] / max(1, sum(d)):.0f}%"


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
            self.echo(
                f"  {contender:8} {rtol:8.0e} {r['worst']:10.2e} {r['median']:10.2e} {agree:>8} "
                f"{len(self.p0) / seconds:9,.0f} {r['nfev']:9.0f}"
            )
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
    echo(
        f"  batched vs driver, row by row at rtol {rtol:g}: statuses {'identical' if same else 'DIFFER'}, "
        f"worst relative t_stop difference {worst:.1e}"
    )
    return {"statuses_agree": same, "worst": worst, "rtol": rtol}


def scan_problem(problem: str, scan: Scan, echo) -> dict[str, dict[str, float]]:
    """Pick each contender's rtol at equal required and at equal achieved accuracy."""
    side = math.isqrt(len(scan.p0))
    echo(
        f"\n{problem}: tolerance scan on the {side}x{side} scan grid ({len(scan.p0)} starts, in-process, "
        f"{scan.workers} worker(s)), atol = rtol * 1e-3; wanted: worst t_stop error <= {REQUIRED:g}"
    )
    echo(f"  {'':8} {'rtol':>8} {'worst err':>10} {'median err':>10} {'statuses':>8} {'flows/s':>9} {'nfev/flow':>9}")
    required = {c: scan.loosest(c, REQUIRED) for c in CONTENDERS[problem]}
    target = _round_up(min(scan.runs[(c, r)]["worst"] for c, r in required.items()))
    echo(f"  equal achieved accuracy: worst t_stop error <= {target:.2g} (the most accurate at the required setting)")
    achieved = {c: scan.loosest(c, target) for c in CONTENDERS[problem]}
    for mode, chosen in (("required", required), ("achieved", achieved)):
        echo(
            f"  chosen ({mode}): "
            + ", ".join(f"{c} rtol {r:g} (worst {scan.runs[(c, r)]['worst']:.1e})" for c, r in chosen.items())
        )
    return {"required": required, "achieved": achieved, "target": target}


def _round_up(v: float) -> float:
    """v rounded up to 2 significant digits (so that a contender exactly as accurate meets it, as printed)."""
    if not v > 0 or not math.isfinite(v):
        return v
    unit = 10.0 ** (math.floor(math.log10(v)) - 1)
    return math.ceil(v / unit * (1 - 1e-12)) * unit


def timed_row(problem, mode, contender, num, workers, rtol, ctx) -> dict:
    """One timed line: median of the repeats, or a skip with its reason."""
    p0, ref = points(problem, num)
    n = len(p0)
    outside = contender in ("run", "run-default", "dask")  # a command, always a whole process
    row = {
        "line": "timed",
        "problem": problem,
        "accuracy": "default" if contender == "run-default" else mode,
        "contender": contender,
        "grid": f"{num}x{num}",
        "n": n,
        "workers": workers,
        "rtol": rtol,
        "atol": None if rtol is None else rtol * 1e-3,
        "process": "in-process" if ctx["in_process"] and not outside else "whole",
        "backend": {"naive": "joblib (loky)", "dask": "dask"}.get(contender, ctx["backend"]),
    }
    key = (problem, contender, num, workers, rtol)
    if key in ctx["done"]:
        return row | ctx["done"][key] | {"note": "same run as the required-accuracy line (same rtol)"}
    engine = RUN_ENGINE if contender in ("run", "run-default", "dask") else contender
    per_flow = ctx["per_flow"].get((problem, engine, rtol), ctx["per_flow"].get((problem, engine, None), 0.0))
    estimate = n * per_flow * ctx["scan_workers"] / workers
    if estimate > ctx["budget"]:
        return row | {"note": f"skipped: estimated {estimate:,.0f} s > budget {ctx['budget']:g} s"}
    spec = {
        "problem": problem,
        "contender": contender,
        "num": num,
        "workers": workers,
        "rtol": rtol or 0.0,
        "backend": ctx["backend"],
        "scheduler": ctx.get("scheduler"),
    }
    wholes, computes = [], []
    while len(wholes) < ctx["repeats"]:
        whole, comp, out = timed_run(spec, ctx["scratch"], ctx["in_process"])
        wholes.append(whole)
        computes.append(comp)
        if whole > REPEAT_BELOW:
            break
    acc = accuracy(out, ctx["oracles"].setdefault((problem, num), oracle(problem, p0, ref)))
    med, cmed = statistics.median(wholes), statistics.median(computes)
    res = {
        "repeats": len(wholes),
        "seconds": med,
        "seconds_all": " ".join(f"{t:.3f}" for t in wholes),
        "compute_seconds": cmed,
        "startup_seconds": med - cmed,
        "flows_per_s": n / med,
        "compute_flows_per_s": n / cmed,
        "worst_rel_err": acc["worst"],
        "median_rel_err": acc["median"],
        "statuses_agree": acc["statuses_agree"],
        "nfev_mean": acc["nfev"],
        "note": "",
    }
    ctx["done"][key] = res
    ctx["echo"](_format_line(row | res))
    return row | res


def _format_line(r: dict) -> str:
    rtol = "-" if r.get("rtol") is None else f"{r['rtol']:.0e}"
    head = f"  {r['problem']:6} {r['accuracy']:8} {r['contender']:8} {r['grid']:>7} {r['workers']:>2}w {rtol:>6}"
    if r.get("note", "").startswith("skipped"):
        return f"{head}  {r['note']}"
    return (
        f"{head} {r['seconds']:8.2f} s {r['flows_per_s']:10,.0f}/s (compute {r['compute_flows_per_s']:10,.0f}/s) "
        f"worst {r['worst_rel_err']:.1e} {'' if r['statuses_agree'] else 'STATUSES DIFFER'}"
    )
