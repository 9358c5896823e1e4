"""The performance benchmark: flows per second, whole process, at stated accuracy.

    flowsim bench [--quick] [--publish] [--out FILE] [--repeats N] [--budget S] [--backend B] [--no-dask]
    python experiments/benchmark.py [the same options]

Problems (DPO, beta = 0.1, one num x num grid of starts each):

* ``ratio``: the paper's plane, references 1, grid over [0.02, 1]^2; oracle: ``exact_dpo``;
* ``logits``: a tabular softmax over K = 10 responses, reference = the start (DPO as practised),
  grid over [0.005, 0.495]^2 (every point a valid start); oracle: the closed form of
  :mod:`flowsim.dynamics.closed_forms.dpo_logits`.

Contenders (:mod:`.contenders`):

* ``naive`` (ratio only): what a user writes -- per start, ``solve_ivp(method="RK45")`` on
  Theorem 1's field in x with the stop and crossing events, one joblib task per start;
* ``driver``: flowsim's per-start ``solve_ivp`` driver (DOP853 in the registered chart), in
  chunks of at most 256 starts as ``flowsim run`` makes them;
* ``batched``: :func:`flowsim.dynamics.batched.integrate_batch` (DOP853, all the rows of a
  chunk in lockstep), in chunks of at most 5,000 starts;
* ``closed``: the closed form itself (1 worker; no tolerance);
* ``run``: the ``flowsim run`` command itself (its default engine, at the batched engine's
  chosen rtol), timed from outside: start-up, the sweep, writing ``flows.csv`` and
  ``meta.json``; its rows are read back and checked against the oracle;
* ``run-default``: the same with no ``[solver]`` key (rtol 1e-9: what a user gets);
* ``dask``: ``flowsim run --scheduler`` on a dask LocalCluster of 2 single-threaded workers
  (started and warmed before timing, as a long-lived cluster is), beside ``run`` on the fork
  backend on the same 300 x 300 grid;
* the discrete optimisers' start-steps per second per core (logits K = 10, CPU time).

Accuracy is the worst relative error of t_stop against the oracle (statuses must agree).
Each contender is timed (1) at *equal required accuracy*: the loosest rtol of a printed scan
(atol = rtol * 1e-3) whose worst t_stop error on the scan grid (30 x 30) is <= 1e-6, and
(2) at *equal achieved accuracy*: the loosest rtol whose worst error is <= the smallest one
any contender achieved in (1).  Each timed run is a fresh process timed from outside; the
compute alone (first flow to last) is reported beside it, and start-up = whole - compute.
Medians of ``--repeats`` (one run where a run takes over 10 s); a run whose estimated time
(from the scan) exceeds ``--budget`` seconds is skipped with a note.  The per-start
contenders are timed on the grids they finish in seconds (:data:`.report.PLAN`).  The scan
also checks the batched engine against the driver row by row at the driver's default tolerance.

Results go to ``results/benchmark.csv`` only with ``--publish``; otherwise to a scratch
folder (printed).  ``--quick`` is a smoke run of seconds: a 5 x 5 grid, in-process.
Nothing asserts a speed: the machine may be shared; the table says what was measured, with
the load average.
"""

from flowsim.app.bench.contenders import baseline_flow, points, run_child
from flowsim.app.bench.measure import rel_err
from flowsim.app.bench.report import main, run

__all__ = ["baseline_flow", "main", "points", "rel_err", "run", "run_child"]
