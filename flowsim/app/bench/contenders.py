"""The benchmark's contenders: each computes a grid of DPO starts and returns status, t_stop, nfev.

See :mod:`flowsim.app.bench` for what is measured.  A contender runs in a fresh process
(``python -m flowsim.app.bench --child SPEC``, timed from outside) or, for ``--quick``, in
this one; ``run`` is the ``flowsim run`` command itself.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BETA = 0.1
K = 10


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


def compute(
    contender: str, problem: str, p0: np.ndarray, ref: np.ndarray, workers: int, rtol: float, backend: str | None = None
) -> dict:
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
        return {
            "t_stop": np.array([r[0] for r in res]),
            "nfev": np.array([r[1] for r in res]),
            "status": np.array([r[2] for r in res], dtype=object),
        }
    from flowsim.experiment import parallel

    fn = driver_chunk if contender == "driver" else batched_chunk
    size = chunk_size(contender, len(p0), workers)
    tasks = ((fn, lo, (problem, p0[lo : lo + size], ref[lo : lo + size], rtol, atol)) for lo in range(0, len(p0), size))
    with parallel.backend(backend or parallel.default_backend(), None, workers) as pmap:
        res = [r for _, r in sorted(pmap(_task, tasks), key=lambda item: item[0])]  # finished in any order
    return {
        "status": np.array([s for r in res for s in r[0]], dtype=object),
        "t_stop": np.array([t for r in res for t in r[1]]),
        "nfev": np.array([v for r in res for v in r[2]]),
    }


def _task(item: tuple) -> tuple[int, tuple]:
    fn, lo, args = item
    return lo, fn(*args)


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


def run_child(spec: dict) -> int:
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
    if spec["contender"] in ("run", "run-default", "dask"):
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
    res = subprocess.run(
        [sys.executable, "-m", "flowsim.app.bench", "--child", arg], capture_output=True, text=True, check=False
    )
    whole = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({spec}):\n{res.stderr[-2000:]}")
    compute_s = json.loads(res.stdout.strip().splitlines()[-1])["compute"]
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    path.unlink()
    return whole, compute_s, out


def run_command(spec: dict, scratch: Path) -> tuple[float, float, dict]:
    """``flowsim run`` on the problem's grid, timed from outside; its rows read back in :func:`points`' order.

    "run": at the contender's rtol; "run-default": the experiment file sets no [solver] key
    (engine, method and tolerances as a user gets them); "dask": as "run", on the dask cluster
    at ``spec["scheduler"]``.  Compute is the sweep's own wall time (meta.json).
    """
    import pandas as pd

    from flowsim.experiment.store import read_meta

    tag = time.monotonic_ns()
    folder, experiment = scratch / f"run-{tag}", scratch / f"run-{tag}.toml"
    rtol = None if spec["contender"] == "run-default" else spec["rtol"]
    experiment.write_text(experiment_toml(spec["problem"], spec["num"], rtol))
    backend = (
        ["--scheduler", spec["scheduler"]]
        if spec["contender"] == "dask"
        else ["--backend", spec["backend"]]
        if spec["backend"]
        else []
    )
    argv = [
        sys.executable,
        "-m",
        "flowsim",
        "run",
        str(experiment),
        "--out",
        str(folder),
        "--quiet",
        "--n-jobs",
        str(spec["workers"]),
        *backend,
    ]
    t0 = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    whole = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"flowsim run failed ({spec}):\n{res.stderr[-2000:]}")
    compute_s = read_meta(folder)["wall_time_s"]
    df = pd.read_csv(folder / "flows.csv", usecols=["p1_0", "p2_0", "status", "t_stop", "nfev"])
    df = df.iloc[np.lexsort((df["p2_0"].to_numpy(), df["p1_0"].to_numpy()))]  # p1 outer, as points()
    out = {"status": df["status"].to_numpy(str), "t_stop": df["t_stop"].to_numpy(float), "nfev": df["nfev"].to_numpy()}
    for path in (*folder.iterdir(), folder, experiment):
        path.rmdir() if path.is_dir() else path.unlink()
    return whole, compute_s, out


def experiment_toml(problem: str, num: int, rtol: float | None) -> str:
    """The experiment file of a problem's grid for ``flowsim run``: the defaults, at ``rtol`` if given."""
    lo, hi = (0.02, 1.0) if problem == "ratio" else (0.005, 0.495)
    model = 'kind = "ratio"' if problem == "ratio" else f'kind = "logits"\nK = {K}'
    solver = "" if rtol is None else f"[solver]\nrtol = {rtol!r}\natol = {rtol * 1e-3!r}\n"
    return (
        f'name = "bench-{problem}"\n[loss]\nkind = "dpo"\nbeta = {BETA}\n'
        f'reference = "{"fixed" if problem == "ratio" else "initial"}"\n[model]\n{model}\n[grid]\n'
        f"p1 = {{ start = {lo}, stop = {hi}, num = {num} }}\np2 = {{ start = {lo}, stop = {hi}, num = {num} }}\n"
        f"{solver}"
    )


def optimiser_rates(n: int = 1000, steps: int = 1000, repeat: int = 3) -> list[dict]:
    """Start-steps per second per core of each discrete optimiser on logits K = 10 (CPU time, best of ``repeat``).

    DPO (beta = 0.1) from n random starts, the reference the start, no stop but the step limit
    (every row live throughout), as ``experiments/bench_optimisers.py``.
    """
    from flowsim.dynamics.optimisers import OPTIMISERS, make_optimiser, run_discrete
    from flowsim.dynamics.record import StopRule

    rng = np.random.default_rng(0)
    p0 = np.column_stack([rng.uniform(0.05, 0.4, n), rng.uniform(0.05, 0.4, n)])
    loss, pol = _setup("logits", p0, p0)
    no_stop = StopRule(p2_floor=1e-300, p2_target=1e-300, p1_target=1.0, t_max=1e300, max_steps=steps)
    lr = {"gd": 0.5, "momentum": 0.05, "adam": 0.01, "adamw": 0.01}
    out = []
    for kind in sorted(OPTIMISERS):
        best = np.inf
        for _ in range(repeat):
            c0 = time.process_time()
            res = run_discrete(loss, pol, make_optimiser(kind, lr=lr[kind]), no_stop)
            best = min(best, time.process_time() - c0)
        out.append(
            {
                "optimiser": kind,
                "start_steps": int(np.sum(res["steps"])),
                "cpu_seconds": best,
                "per_core": float(np.sum(res["steps"])) / best,
            }
        )
    return out


#: The network benchmark's MLP trainings: experiments/network.toml at one seed (init_seed =
#: data_seed = 0) -- the shipped experiment's sizes (vocab 12, width 16, 3-token responses; one pair
#: and 8 pairs; GD and Adam; SFT aimed at a 7 x 7 grid, the 41 starts the simplex takes; DPO beta 0.5
#: until the mean loss is 0.1).  tests/integration/test_bench.py checks it still equals the file.
NETWORK_DOC = {
    "name": "bench_network",
    "model": {
        "kind": "network",
        "reference": "initial",
        "vocab": 12,
        "prompt_len": 2,
        "response_len": 3,
        "window": 3,
        "layers": 1,
        "width": 16,
        "n_pairs": [1, 8],
        "edit_distance": 1,
        "init_seed": 0,
        "data_seed": 0,
        "sft": "target",
        "sft_steps": 100,
        "sft_lr": 0.04,
        "path_points": 30,
    },
    "loss": {"kind": "dpo", "beta": 0.5},
    "dynamics": {"kind": ["gd", "adam"], "gd": {"lr": 0.05}, "adam": {"lr": 0.001}},
    "grid": {"p1": {"start": 0.05, "stop": 0.65, "num": 7}, "p2": {"start": 0.05, "stop": 0.65, "num": 7}},
    "stop": {"loss_target": 0.1, "p2_floor": 1e-12, "max_steps": 1000},
}
#: The transformer's: experiments/network_transformer.toml at one seed -- a 2-layer GPT-2 (2 heads,
#: width 16) pretrained 30 steps on the Markov language, SFT aimed at a 6 x 6 grid, DPO with Adam.
NETWORK_TRANSFORMER_DOC = {
    "name": "bench_network_transformer",
    "model": {
        "kind": "network",
        "reference": "initial",
        "arch": "transformer",
        "layers": 2,
        "heads": 2,
        "width": 16,
        "context": 8,
        "vocab": 12,
        "prompt_len": 2,
        "response_len": 3,
        "pairs": "language",
        "word_classes": 3,
        "same_class": True,
        "append_eos": True,
        "pretrain_steps": 30,
        "pretrain_lr": 0.03,
        "pretrain_tokens": 600,
        "n_pairs": [1, 8],
        "edit_distance": 1,
        "init_seed": 0,
        "data_seed": 0,
        "sft": "target",
        "sft_steps": 500,
        "sft_lr": 0.01,
        "path_points": 30,
    },
    "loss": {"kind": "dpo", "beta": 0.5},
    "dynamics": {"kind": "adam", "lr": 0.003},
    "grid": {"p1": {"start": 0.05, "stop": 0.45, "num": 6}, "p2": {"start": 0.05, "stop": 0.45, "num": 6}},
    "stop": {"loss_target": 0.1, "p2_floor": 1e-12, "max_steps": 1000},
}
#: The shipped experiment each benchmark document mirrors (at one seed).
NETWORK_EXPERIMENTS = {"network.toml": NETWORK_DOC, "network_transformer.toml": NETWORK_TRANSFORMER_DOC}


def network_rates(doc: dict | None = None, path: str | None = None, loop_starts: int = 8) -> dict:
    """Trainings and steps per second of a network experiment's trainings, one at a time and as ensembles.

    In this process, after torch is imported and warmed up, as ``flowsim run`` computes each chunk
    (without the run folder): the loop (:func:`~flowsim.dynamics.engines.network.run_loop`, one
    training at a time) on the first ``loop_starts`` starts of each combination, the network
    engine (one ensemble per chunk of all its starts, :data:`~flowsim.dynamics.engines.network.MAX_MEMBERS`
    at most) on all of them; each timed in wall-clock and CPU seconds (the machine may be shared:
    CPU time is what the process itself used).  ``max_abs_diff``: the largest difference of any
    numeric column between the two engines' rows on the starts both computed.
    :data:`NETWORK_DOC` by default, or the file ``path``.
    """
    from flowsim.dynamics.engines.network import MAX_MEMBERS, Network, run_loop
    from flowsim.experiment.config import load_experiment, parse_experiment
    from flowsim.experiment.sweep import chunks

    exp = load_experiment(path) if path else parse_experiment(NETWORK_DOC if doc is None else doc)
    exp.model_class.prepare_workers()
    todo = list(chunks(exp, MAX_MEMBERS))
    warm = todo[0]  # the first ensemble and the first training pay for torch's lazy set-up
    Network().run(exp.task(warm.combo), warm.p0[:2], warm.ref[:2])
    out, rows = {}, {}
    for name in ("loop", "ensemble"):
        n = sft_steps = dpo_steps = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in todo:
            task = exp.task(chunk.combo)
            k = len(chunk.p0) if name == "ensemble" else min(loop_starts, len(chunk.p0))
            res = (Network().run if name == "ensemble" else run_loop)(task, chunk.p0[:k], chunk.ref[:k])
            rows[name, chunk.index] = res
            per_start = res["steps"][:: task.model.n_pairs]
            n, sft_steps, dpo_steps = n + k, sft_steps + k * task.model.sft_steps, dpo_steps + int(per_start.sum())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = {
            "trainings": n,
            "seconds": wall,
            "cpu_seconds": cpu,
            "trainings_per_s": n / wall,
            "trainings_per_cpu_s": n / cpu,
            "steps_per_s": (sft_steps + dpo_steps) / wall,
            "sft_steps": sft_steps,
            "dpo_steps": dpo_steps,
        }
    out["max_abs_diff"] = max(_max_diff(rows["loop", c.index], rows["ensemble", c.index]) for c in todo)
    out["speed_up"] = out["ensemble"]["trainings_per_s"] / out["loop"]["trainings_per_s"]
    out["speed_up_cpu"] = out["ensemble"]["trainings_per_cpu_s"] / out["loop"]["trainings_per_cpu_s"]
    return out


def _max_diff(loop: dict, ensemble: dict) -> float:
    """The largest absolute difference between the numeric columns of the loop's rows and the ensemble's
    first rows (NaN where both are NaN counts 0; a different status or NaN pattern counts inf)."""
    worst = 0.0
    for k, a in loop.items():
        a, b = np.asarray(a), np.asarray(ensemble[k])[: len(a)]
        if a.dtype.kind in "fbiu":
            a, b = a.astype(float), b.astype(float)
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                return math.inf
            worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
        elif k != "path" and a.tolist() != b.tolist():
            return math.inf
    return worst
