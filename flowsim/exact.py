r"""The DPO gradient flow in closed form, vectorised over many initial conditions.

Derivation (ratio coordinates x = (x1, x2), s = sigmoid(-margin) = x2^b / (x1^b + x2^b)):

* The flow dx/dt = -grad L is dx1/dt = b s / x1, dx2/dt = -b s / x2 (Theorem 1).
* Hence d(x1^2)/dt = 2 b s = -d(x2^2)/dt: the radius R^2 = x1^2 + x2^2 is conserved and
  every path is an arc of the circle through its initial condition, run towards x2 = 0.
* With S = x1^2 (and U = x2^2 = R^2 - S), s = 1 / (1 + (S/U)^(b/2)), so
  dS/dt = 2b / (1 + (S/(R^2 - S))^(b/2)) and, separating variables, the time from S0 to S1 is

      T(S0, S1) = [ (S1 - S0) + R^2 B(p, q) (I_{S1/R^2}(p, q) - I_{S0/R^2}(p, q)) ] / (2b)

  with p = 1 + b/2, q = 1 - b/2, B the beta function and I the regularised incomplete
  beta function.  This needs q > 0, i.e. b < 2: exactly the betas for which the flow
  reaches x2 = 0 in finite time.  For b >= 2 use the integrator.
* S increases monotonically, so the flow stops at S_stop = min(R^2 - U_floor, S_cap) with
  U_floor = (p2_floor/ref_l)^2 and S_cap = (1/ref_w)^2: ``converged`` if the first is
  reached first, else ``capped``; ``timeout`` if T(S0, S_stop) > t_max, where the end
  point solves T(S0, S) = t_max.  t_w and t_l are T at S = (p1_target/ref_w)^2 and at
  S = R^2 - (p2_target/ref_l)^2.

Near x2 = 0 the difference of two incomplete beta values close to 1 loses digits, so
there it is taken as the difference of the complements, I_{U/R^2}(q, p), computed from U
directly (never from R^2 - S).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import elementwise
from scipy.special import beta as beta_fn
from scipy.special import betainc

from flowsim._validation import check_points
from flowsim.losses import DPO, Loss
from flowsim.records import RESULT_FIELDS, StopRule


def _check_array(name: str, value: object, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), shape)
    bad = ~((arr > low) & (arr <= high))
    if np.any(bad):
        raise ValueError(f"{name} must be in ({low:g}, {high:g}]; got {arr[bad].flat[0]!r}")
    return arr


def flow_time(s0, u0, s1, u1, r2, beta):
    """Time the DPO flow takes from x1^2 = s0 to x1^2 = s1 on the circle x1^2 + x2^2 = r2.

    ``u0`` and ``u1`` are the matching x2^2 = r2 - s, passed separately so that they keep
    their digits when small.  All arguments broadcast; requires 0 < beta < 2.
    """
    p, q = 1.0 + beta / 2.0, 1.0 - beta / 2.0
    w0, w1 = s0 / r2, s1 / r2
    upper = betainc(q, p, u0 / r2) - betainc(q, p, u1 / r2)  # = I_w1(p,q) - I_w0(p,q)
    lower = betainc(p, q, w1) - betainc(p, q, w0)
    diff = np.where(w0 >= 0.5, upper, lower)
    return ((s1 - s0) + r2 * beta_fn(p, q) * diff) / (2.0 * beta)


def exact_dpo(
    x0: object,
    *,
    beta: object = 0.1,
    ref_w: object = 1.0,
    ref_l: object = 1.0,
    stop: StopRule | None = None,
) -> dict[str, np.ndarray]:
    """Closed-form DPO flows from initial conditions ``x0`` (ratios), shape (..., 2).

    ``beta``, ``ref_w`` and ``ref_l`` may be arrays broadcastable to ``x0.shape[:-1]``,
    so every initial condition can have its own parameters.  Returns the fields of
    :data:`flowsim.records.RESULT_FIELDS` as arrays of shape ``x0.shape[:-1]``.

    Examples
    --------
    >>> out = exact_dpo([[0.5, 0.5], [0.9, 0.9]], beta=0.1)
    >>> out["status"].tolist()
    ['converged', 'capped']
    >>> round(float(out["x1_final"][0]), 6)  # sqrt(0.5^2 + 0.5^2 - 1e-12)
    0.707107
    """
    stop = StopRule() if stop is None else stop
    x0 = check_points("x0", x0)
    shape = x0.shape[:-1]
    b = _check_array("beta", beta, 0.0, np.inf, shape)
    if np.any(b >= 2.0):
        raise ValueError(
            f"beta must be < 2 for the closed form (the incomplete beta function needs "
            f"q = 1 - beta/2 > 0); got {b[b >= 2].flat[0]!r}. Use the integrator for beta >= 2."
        )
    rw = _check_array("ref_w", ref_w, 0.0, 1.0, shape)
    rl = _check_array("ref_l", ref_l, 0.0, 1.0, shape)
    x1, x2 = x0[..., 0], x0[..., 1]
    cap, top = 1.0 / rw, 1.0 / rl
    outside = ~((x1 > 0) & (x1 <= cap) & (x2 > 0) & (x2 <= top))
    if np.any(outside):
        i = np.argwhere(outside)[0] if shape else ()
        raise ValueError(
            f"x0 must lie in the domain 0 < x1 <= 1/ref_w, 0 < x2 <= 1/ref_l; got "
            f"{x0[tuple(i)].tolist()} with ref_w={rw[tuple(i)]!r}, ref_l={rl[tuple(i)]!r}"
        )

    s0, u0 = x1 * x1, x2 * x2
    r2 = s0 + u0
    s_cap = cap * cap
    u_floor = (stop.p2_floor / rl) ** 2
    converges = (r2 - u_floor) <= s_cap  # the circle reaches the floor before the cap
    # End point of the flow if it is not timed out, kept as (S, U) with U accurate.
    s_end = np.where(converges, s0 + (u0 - u_floor), s_cap)
    u_end = np.where(converges, u_floor, u0 + (x1 - cap) * (x1 + cap))
    status = np.where(converges, "converged", "capped").astype(object)

    at_floor = u0 <= u_floor
    at_cap = ~at_floor & (x1 >= cap)
    started = ~(at_floor | at_cap)
    status[at_floor] = "converged"
    status[at_cap] = "capped"
    s_end = np.where(started, s_end, s0)
    u_end = np.where(started, u_end, u0)

    with np.errstate(invalid="ignore", divide="ignore"):
        t_stop = np.where(started, flow_time(s0, u0, s_end, u_end, r2, b), 0.0)

    # Timeouts: find S with T(S0, S) = t_max on [S0, S_end].
    late = t_stop > stop.t_max
    if np.any(late):
        s_t = _solve_time(s0[late], u0[late], s_end[late], r2[late], b[late], stop.t_max)
        s_end[late], u_end[late] = s_t, r2[late] - s_t
        t_stop[late] = stop.t_max
        status[late] = "timeout"

    # Crossing times: 0 if already crossed, T at the crossing if reached by the end, else NaN.
    def crossing(s_x: np.ndarray, u_x: np.ndarray, already: np.ndarray, reached: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            t = flow_time(s0, u0, s_x, u_x, r2, b)
        return np.where(already, 0.0, np.where(reached, t, np.nan))

    s_w = (stop.p1_target / rw) ** 2
    t_w = crossing(s_w, r2 - s_w, s0 >= s_w, s_w <= s_end)
    u_l = (stop.p2_target / rl) ** 2
    t_l = crossing(s0 + (u0 - u_l), u_l, u0 <= u_l, u_l >= u_end)

    x1_f, x2_f = np.sqrt(s_end), np.sqrt(u_end)
    x1_f = np.where(status == "capped", cap, x1_f)
    x2_f = np.where(status == "converged", np.where(at_floor, x2, stop.p2_floor / rl), x2_f)
    loss_f = np.logaddexp(0.0, -b * (np.log(x1_f) - np.log(x2_f)))
    out = {
        "status": status,
        "t_stop": t_stop,
        "x1_final": x1_f,
        "x2_final": x2_f,
        "p1_final": x1_f * rw,
        "p2_final": x2_f * rl,
        "loss_final": loss_f,
        "t_w": t_w,
        "t_l": t_l,
        "nfev": np.zeros(shape, dtype=np.int64),
        "message": np.full(shape, "", dtype=object),
    }
    assert tuple(out) == RESULT_FIELDS
    return out


def _solve_time(s0, u0, s_hi, r2, beta, t_max):
    """Solve T(s0, s) = t_max for s in [s0, s_hi], elementwise (Chandrupatla's method)."""

    def residual(s, s0, u0, r2, beta):
        return flow_time(s0, u0, s, r2 - s, r2, beta) - t_max

    res = elementwise.find_root(residual, (s0, s_hi), args=(s0, u0, r2, beta), tolerances={"xrtol": 4e-16})
    return res.x


#: Closed forms by loss kind: each maps (x0, stop=..., **loss parameters) to result columns.
EXACT_FLOWS: dict[str, Callable[..., dict[str, np.ndarray]]] = {"dpo": exact_dpo}


def exact_flow(loss: Loss, x0: object, stop: StopRule | None = None) -> dict[str, np.ndarray]:
    """The closed-form flow of ``loss`` from ``x0`` (ratios, shape (..., 2)).

    Raises ``NotImplementedError`` for a loss with no closed form here.
    """
    if loss.kind not in EXACT_FLOWS:
        raise NotImplementedError(f"no closed-form flow for loss kind {loss.kind!r}; use flowsim.flow.integrate")
    return EXACT_FLOWS[loss.kind](x0, stop=stop, **loss.params())


__all__ = ["EXACT_FLOWS", "exact_dpo", "exact_flow", "flow_time"]
assert isinstance(DPO(), Loss)
