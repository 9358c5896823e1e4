"""Throughput of :func:`~flowsim.dynamics.optimisers.run_discrete`: start-steps per second.

    python experiments/bench_optimisers.py [--n 1000] [--steps 1000] [--K 10] [--repeat 3]

Runs DPO (beta = 0.1) on ``logits`` with K responses from n random starts (standard
reference), each optimiser for ``steps`` steps with no stop but the step limit (every row
live throughout: the per-step cost), then Adam with stops spread over many steps (rows
retiring, arrays compacting) at several values of :data:`~.runner.COMPACT_AT`.  Prints the
best of ``repeat`` CPU times of the process (``time.process_time``: what one core spent,
robust to other load on the machine) and wall-clock times, and start-steps per second =
sum over rows of their steps / time.  numpy's elementwise work is single-threaded (the
logits evaluator makes no BLAS calls), so CPU time is one core's.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from flowsim.dynamics.optimisers import OPTIMISERS, make_optimiser, run_discrete
from flowsim.dynamics.optimisers import runner as _runner
from flowsim.dynamics.record import StopRule
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import SoftmaxLogits

#: A learning rate per optimiser at which DPO moves at a comparable pace.
LR = {"gd": 0.5, "momentum": 0.05, "adam": 0.01, "adamw": 0.01}


def _best(fn, repeat: int) -> tuple[float, float, dict]:
    """(best CPU time of this process, best wall time, the output) over ``repeat`` runs."""
    cpu = wall = np.inf
    out = None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall, out


def _line(label: str, cpu: float, wall: float, out: dict) -> str:
    steps = int(out["steps"].sum())
    return (
        f"  {label:52s} CPU {cpu:6.3f} s: {steps / cpu:8.3g} start-steps/s per core "
        f"(wall {wall:6.3f} s: {steps / wall:8.3g}/s)"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    p0 = np.column_stack([rng.uniform(0.05, 0.4, args.n), rng.uniform(0.05, 0.4, args.n)])
    pol = SoftmaxLogits(K=args.K).bind(p0, p0)
    loss = DPO(beta=0.1)
    print(f"logits K={args.K}, n={args.n} starts, {os.cpu_count()} cpus; best of {args.repeat}")
    no_stop = StopRule(p2_floor=1e-300, p2_target=1e-300, p1_target=1.0, t_max=1e300, max_steps=args.steps)
    for kind in sorted(OPTIMISERS):
        res = _best(lambda k=kind: run_discrete(loss, pol, make_optimiser(k, lr=LR[k]), no_stop), args.repeat)
        print(_line(f"{kind}, every row live", *res))
    spread = StopRule(t_max=1e300, max_steps=args.steps)  # Adam: rows converge over several hundred steps
    saved = _runner.COMPACT_AT
    try:
        for frac in (0.0, 0.1, 0.25, 0.5, 1.01):
            _runner.COMPACT_AT = frac
            res = _best(lambda: run_discrete(loss, pol, make_optimiser("adam", lr=0.01), spread), args.repeat)
            label = "never (masks only)" if frac > 1 else f"COMPACT_AT={frac:g}"
            print(_line(f"adam, stops over {len(np.unique(res[2]['steps']))} steps, {label}", *res))
    finally:
        _runner.COMPACT_AT = saved


if __name__ == "__main__":
    main()
