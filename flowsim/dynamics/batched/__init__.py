r"""Batched integration: every start of a chunk in one vectorised Runge-Kutta run, each with its own steps.

:func:`integrate_batch` ``(loss, policy, stop, options)`` takes a policy bound to n starts and
returns the fields of :data:`~flowsim.dynamics.record.RESULT_FIELDS` and
:data:`~flowsim.dynamics.record.PATH_FIELDS` for every row, with the meaning the per-start
driver (:func:`flowsim.dynamics.driver.integrate`, the reference) gives them.

A sweep uses it by default (``[solver] engine = "auto"``) for the (loss, parameterisation,
stop-rule shape) combinations declared in :mod:`.coverage`, each checked row by row against
the driver; elsewhere the driver integrates, and ``engine = "batched"`` / ``"driver"`` forces one.

Method
------
Row i is the initial-value problem the driver would build for start i -- the same chart and
clock (:mod:`.systems`: DPO on the ratio plane in its (x1^2, log x2) chart clocked by log x2,
its closed-form field vectorised; any other pair in the policy's parameters and t, the field
being the objective's vectorised gradient of the policy restricted to the live rows), the
same per-component tolerances, the same events (thresholds, loss / margin / stationary stops,
the p_w and p_w + p_l monitors), the same stops.  All live rows are advanced in lockstep by
one embedded explicit Runge-Kutta pair (DOP853 by default; RK45, RK23), one numpy operation
per stage over all rows (states stored component-major, (m, k)), with a step size *per row*:

* error control: scipy's, per row -- the row's RMS norm of the error estimate scaled by
  atol + rtol * max(|y_old|, |y_new|) over its own components, scipy's initial step, safety
  factor 0.9, growth <= 10, shrink >= 0.2, no growth after a rejection.  A row therefore takes
  the steps ``solve_ivp`` takes for that start, up to rounding (t_stop agrees with the driver
  to ~1e-14 on the ratio plane, ~1e-11 on logits), and the tolerances mean what they mean
  for the driver (``SolverOptions``);
* events: each accepted step's event residuals are compared, row by row, with the previous
  step's (solve_ivp's rule with directions); a row with a sign change gets scipy's dense
  output for that step and the root is found on it by a vectorised Chandrupatla iteration
  (to 4 eps, as solve_ivp's brentq; monitors to 1e-10, their rates being differences);
  events on the clock are known roots.  Crossings (t_w, t_l) and monitor turns up to the
  earliest terminal event are recorded; the stop is *landed on* as the driver does: one step
  of the method from the last accepted point to the root, then a Newton step on the event's
  residual.  Rows retire as they stop; the arrays shrink with them;
* rows the batch cannot compute (a non-finite field, a step too small, an exception from the
  objective, a start outside the domain) are handed to the driver, whose record they get.

Why this, and not the alternatives (measured on this project's 2-vCPU shared machine, load
average 2-6 during the measurements, DPO beta = 0.1; one core unless stated):

* the per-start driver pays Python's overhead per right-hand-side evaluation (~100 us each,
  ~100-170 per flow): 1.5-6 ms a flow on the ratio plane, 10-28 ms for logits K = 10;
* one ``solve_ivp`` over a stacked chunk (shared steps) reached 18,600 flows/s on the ratio
  plane only in its best case -- 7,702 converging starts, no events, every row's clock
  rescaled to end at 1 (possible only because DPO's chart knows each row's end), and rtol
  1e-10, as its RMS norm over all rows lets one row's error be sqrt(n) times the tolerance
  (rtol 1e-9 gave a worst t_stop error of 2e-6).  For logits, in t: 3,200-3,900 flows/s
  (1,600 starts, no events).  It has no per-row events or stops (each solve_ivp event is one
  scalar function, and a terminal one ends every row), so crossings, caps, timeouts and
  per-row ends would need per-row root finding on a dense output that cannot be evaluated
  per row, and one timed-out row keeps every other row stepping to t_max;
* diffrax (JAX, vmap of ``diffeqsolve`` over rows; it would be an optional extra): importing
  jax and diffrax took 2.2-4.3 s and compiling 7.5-10 s before the first flow, then
  2,600-9,400 flows/s (7,702 starts, Dopri8, rtol 1e-6 to 1e-9, no events) -- and every loss
  and parameterisation, written in numpy, would need a JAX twin (or a host callback per
  stage, which gives the per-call overhead back);
* this engine, with every event and stop, compute only (``flowsim bench``, fresh processes,
  loky workers warm): ratio plane 42,800 flows/s (100 x 100 grid, 1 worker) and 63,600 (300 x
  300); logits K = 10, 12,000 (100 x 100) and 13,800 (300 x 300); whole process including
  start-up, 1 worker: ratio 8,600 (100 x 100) and 36,600 flows/s (300 x 300), logits 4,600
  and 12,000 -- at the loosest tolerance meeting a worst t_stop error <= 1e-6 (rtol 1e-5:
  worst 7.6e-7 ratio, 1.4e-8 logits).  The driver at the same tolerance: 440-870 (ratio), 60-100
  (logits); the hand-written RK45 loop: 80-170 flows/s.  Fastest of the three, general (any
  parameterisation and loss through the objective), and checked row by row against the
  driver and the closed forms (``tests/unit/test_batched.py``).

Chunks should be large: a lockstep iteration has a fixed cost of a few hundred numpy calls
(stages, events, root finding), so throughput grows with the rows per call (ratio plane,
rtol 1e-9, one process, wall time: 250 rows a call 3,500 flows/s, 1,000 10,600/s, 2,500
19,800/s, 5,000 26,500/s, 10,000 32,600/s).  The stage sums use ``numpy.einsum``, not BLAS: a multithreaded OpenBLAS on
the shared cores made the whole engine 2-3 times slower.
"""

from flowsim.dynamics.batched.engine import integrate_batch

__all__ = ["integrate_batch"]
