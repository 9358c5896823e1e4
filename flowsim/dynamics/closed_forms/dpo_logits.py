r"""The DPO gradient flow of a tabular softmax policy (``logits``), in closed form.

Setting: theta in R^K are the logits of K responses (y_w first, y_l second), log pi =
theta - logsumexp(theta), any fixed reference (log ref_w, log ref_l) -- the start itself
(the standard choice), ref = 1, or anything else -- and the flow d theta/dt = -grad L of

    L = softplus(-m),   m = beta (h_w - h_l),   h = log pi[:2] - log ref.

Derivation
----------
* The normaliser cancels in the margin: h_w - h_l = (theta_w - lse) - (theta_l - lse)
  - log ref_w + log ref_l = theta_w - theta_l - log(ref_w/ref_l).  So m depends on theta
  only through theta_w - theta_l, and

      grad_theta L = -beta sigmoid(-m) (e_w - e_l).

* Hence only theta_w and theta_l move, by equal and opposite amounts:
  theta_w = theta_w0 + a, theta_l = theta_l0 - a, every other logit stays put, and

      da/dt = beta sigmoid(-m),   m = m0 + 2 beta a,   m0 = beta (h_w0 - h_l0)

  (m0 = 0 for the standard reference ref = start; m0 != 0 when ref != start).
* Then dm/dt = 2 beta^2 sigmoid(-m) = 2 beta^2 / (1 + e^m), so dt/dm = (1 + e^m)/(2 beta^2) and

      t(m) = [ (m - m0) + e^m - e^m0 ] / (2 beta^2)                    (time_to_margin)

  or, with u = m - m0 = 2 beta a,  2 beta^2 t = u + e^m0 expm1(u).  For the standard
  reference (m0 = 0): u + e^u - 1 = 2 beta^2 t.  The margin grows like log(2 beta^2 t)
  for large t (m + e^m = m0 + e^m0 + 2 beta^2 t, i.e. e^m is Wright's omega of the right side).
* Inversion (:func:`margin_at_time`): u + c expm1(u) = tau (c = e^m0, tau = 2 beta^2 t >= 0) is
  convex and increasing in u, and at u_hi = log1p(tau/c) its left side is tau + u_hi >= tau;
  Newton's method from u_hi therefore decreases monotonically to the root, quadratically
  once close.  It is run on u itself (never on m = m0 + u, which would lose the digits of
  a small u against a large m0), with the equation divided by c when m0 > 0 so that
  neither e^m0 nor e^-m0 overflows.
* Stops, in terms of x = e^a and the start's probabilities (p_w0, p_l0, r0 = the others'
  total), since p(a) = (p_w0 x, p_l0 / x, r0) / (p_w0 x + p_l0 / x + r0):

  - p_l(a) decreases in a; p_l = f solves p_w0 x^2 + r0 x - p_l0 (1 - f)/f = 0, and
    x - 1 = (p_l0 - f) / (f (p_w0 (x + 1) + r0)) (for a = log1p(x - 1) without cancellation);
  - p_w(a) increases in a; with y = 1/x, p_w = g solves g p_l0 y^2 + g r0 y - p_w0 (1 - g) = 0,
    y - 1 = (p_w0 - g) / (g (p_l0 (y + 1) + r0));
  - L <= L* is m >= m* = -L* - log(-expm1(-L*)), a = (m* - m0)/(2 beta);
  - t = t_max is a = u(2 beta^2 t_max)/(2 beta).

  The flow stops at the smallest of these shifts (``converged``: p_l <= p2_floor;
  ``reached_loss``: L <= loss_target; ``timeout``), and every time is t(m0 + 2 beta a).
  Nothing else can happen: p_w < 1 always, so there is no ``capped``.

:func:`flows` is the ``(loss, policy, stop) -> record fields`` entry point for the
closed-form registry (pair ("dpo", "logits"), plain DPO only).

Examples
--------
The seed paper's example, from (p_w0, p_l0) = (0.3, 0.6) with the standard reference,
stopped at p_l = 0.06: in logits p_w ends near 0.89 (any K, any split of the others' 0.1),
where the ratio plane (x1^2 + x2^2 = 2 conserved) ends at 0.3 sqrt(2 - 0.1^2) = 0.42.

>>> theta0 = np.log([0.3, 0.6, 0.1])
>>> out = exact_dpo_logits(theta0, np.log([0.3, 0.6]), beta=0.1, p2_floor=0.06)
>>> str(out["status"]), round(float(out["p1_final"]), 4), round(float(out["t_stop"]), 2)
('converged', 0.8857, 37.07)
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_softmax, logsumexp, softmax

from flowsim.dynamics.record import PathTrack, StopRule, finish_rows

#: Newton iterations allowed (it converges in a handful from its start, see the module docstring).
_MAX_NEWTON = 100


def _log_abs_expm1(u: np.ndarray) -> np.ndarray:
    """log |e^u - 1|, finite for large |u| (-inf at u = 0)."""
    big = u > 30.0
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(big, u + np.log1p(-np.exp(-np.where(big, u, 30.0))), np.log(np.abs(np.expm1(u))))


def _exp_times_expm1(m0: np.ndarray, u: np.ndarray) -> np.ndarray:
    """e^m0 expm1(u), as the product where that neither overflows nor underflows, else through logs."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        direct = np.exp(m0) * np.expm1(u)
        ok = (np.abs(m0) < 600) & np.isfinite(direct) & (np.abs(direct) > 1e-305)
        if np.all(ok):
            return direct
        logs = np.sign(u) * np.exp(m0 + _log_abs_expm1(u))
    return np.where(ok, direct, logs)


def _scaled_time(u: np.ndarray, m0: np.ndarray) -> np.ndarray:
    """2 beta^2 t = u + e^m0 expm1(u) (both terms have the sign of u: no cancellation)."""
    return u + _exp_times_expm1(m0, u)


def time_to_margin(m: object, m0: object, beta: object) -> np.ndarray:
    """Time the DPO logits flow takes from margin m0 to margin m: ((m - m0) + e^m - e^m0) / (2 beta^2).

    Negative where m < m0 (the margin only grows).  Broadcasts over all arguments.

    >>> round(float(time_to_margin(1.0, 0.0, 0.5)), 12)  # (1 + e - 1) / 0.5
    5.436563656918
    """
    m, m0, beta = (np.asarray(v, dtype=float) for v in (m, m0, beta))
    return _scaled_time(m - m0, m0) / (2.0 * beta * beta)


def _time_from_shift(u: np.ndarray, m0: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return _scaled_time(u, m0) / (2.0 * beta * beta)


def shift_at_scaled_time(tau: object, m0: object) -> np.ndarray:
    """u = m - m0 solving u + e^m0 expm1(u) = tau (tau >= 0), by monotone Newton from above."""
    tau, m0 = np.broadcast_arrays(np.asarray(tau, dtype=float), np.asarray(m0, dtype=float))
    shape = tau.shape
    tau, m0 = tau.ravel(), m0.ravel()
    u = np.zeros_like(tau)
    inf = np.isinf(tau)
    u[inf] = np.inf
    k = np.flatnonzero((tau > 0) & ~inf)
    if k.size:
        t, c0 = tau[k], m0[k]
        pos = c0 > 0
        ec = np.exp(-np.where(pos, c0, 0.0))  # e^-m0 where m0 > 0
        # Upper bounds of the root, where the left side is >= tau: log1p(tau / c) and tau.
        x = np.minimum(np.logaddexp(0.0, np.log(t) - c0), t)
        for _ in range(_MAX_NEWTON):
            with np.errstate(over="ignore", under="ignore"):
                # m0 > 0:  G = (u - tau) e^-m0 + expm1(u),   G' = e^-m0 + e^u
                # m0 <= 0: F = (u - tau) + e^m0 expm1(u),     F' = 1 + e^(m0 + u)
                em1 = np.expm1(np.where(pos, x, 0.0))
                cm1 = _exp_times_expm1(np.where(pos, 0.0, c0), np.where(pos, 1.0, x))
                f = np.where(pos, (x - t) * ec + em1, (x - t) + cm1)
                fp = np.where(pos, ec + em1 + 1.0, 1.0 + np.exp(np.where(pos, 0.0, c0 + x)))
            step = f / fp
            new = x - step
            moving = (new < x) & (step > 4e-16 * np.abs(x))
            x = np.where(new < x, new, x)  # monotone from above: never step back up
            if not np.any(moving):
                break
        u[k] = x
    return u.reshape(shape)[()]


def margin_at_time(t: object, m0: object, beta: object) -> np.ndarray:
    """The DPO margin m(t) of the logits flow from margin m0: the m >= m0 with t(m) = t.

    Solves u + e^m0 (e^u - 1) = 2 beta^2 t for u = m - m0 (see :func:`shift_at_scaled_time`);
    accurate for any t >= 0 (m grows like log(2 beta^2 t)) and any m0.  Broadcasts.

    >>> round(float(margin_at_time(time_to_margin(3.0, -2.0, 0.1), -2.0, 0.1)), 12)
    3.0
    """
    t, m0, beta = (np.asarray(v, dtype=float) for v in (t, m0, beta))
    if np.any(t < 0):
        raise ValueError(f"t must be >= 0; got {t[t < 0].flat[0]!r}")
    return m0 + shift_at_scaled_time(2.0 * beta * beta * t, m0)


def _prepare(theta0: object, log_ref: object, beta: object):
    theta0 = np.asarray(theta0, dtype=float)
    if theta0.ndim == 0 or theta0.shape[-1] < 2:
        raise ValueError(f"theta0 must have shape (..., K) with K >= 2; got shape {theta0.shape}")
    if not np.all(np.isfinite(theta0)):
        raise ValueError("theta0 must be finite")
    log_ref = np.asarray(log_ref, dtype=float)
    if log_ref.ndim == 0 or log_ref.shape[-1] != 2:
        raise ValueError(f"log_ref must have shape (..., 2); got shape {log_ref.shape}")
    if not np.all(np.isfinite(log_ref)):
        raise ValueError("log_ref must be finite")
    shape = np.broadcast_shapes(theta0.shape[:-1], log_ref.shape[:-1], np.shape(beta))
    theta0 = np.broadcast_to(theta0, (*shape, theta0.shape[-1]))
    log_ref = np.broadcast_to(log_ref, (*shape, 2))
    beta = np.broadcast_to(np.asarray(beta, dtype=float), shape)
    if not np.all(np.isfinite(beta) & (beta > 0)):
        raise ValueError(f"beta must be a finite number > 0; got {beta[~(np.isfinite(beta) & (beta > 0))].flat[0]!r}")
    m0 = beta * ((theta0[..., 0] - theta0[..., 1]) - (log_ref[..., 0] - log_ref[..., 1]))
    return theta0, log_ref, beta, m0, shape


def _shifted(theta0: np.ndarray, a: np.ndarray) -> np.ndarray:
    theta = np.array(theta0, dtype=float, copy=True)
    theta[..., 0] += a
    theta[..., 1] -= a
    return theta


def theta_at_time(theta0: object, log_ref: object, beta: object, t: object) -> np.ndarray:
    """theta(t) of the DPO logits flow from theta0 (..., K): theta_w0 + a(t), theta_l0 - a(t), the rest fixed.

    >>> th = theta_at_time(np.log([0.3, 0.6, 0.1]), np.log([0.3, 0.6]), 1.0, 0.0)
    >>> np.exp(th).round(12).tolist()
    [0.3, 0.6, 0.1]
    """
    theta0, log_ref, beta, m0, shape = _prepare(theta0, log_ref, beta)
    t = np.broadcast_to(np.asarray(t, dtype=float), shape)
    if np.any(t < 0):
        raise ValueError(f"t must be >= 0; got {t[t < 0].flat[0]!r}")
    a = shift_at_scaled_time(2.0 * beta * beta * t, m0) / (2.0 * beta)
    return _shifted(theta0, a)


def _check_prob(name: str, value: object, *, open_right: bool) -> float:
    value = float(value)
    ok = 0.0 < value < 1.0 if open_right else 0.0 < value <= 1.0
    if not ok:
        raise ValueError(f"{name} must be in (0, 1{')' if open_right else ']'}; got {value!r}")
    return value


def _function_targets(stop, loss_target, margin_target, stationary_tol) -> dict[str, float]:
    """The function stops that are on, by status: their given or ``stop``'s values, checked."""
    attrs = {"reached_loss": "loss_target", "reached_margin": "margin_target", "stationary": "stationary_tol"}
    given = {"reached_loss": loss_target, "reached_margin": margin_target, "stationary": stationary_tol}
    out = {}
    for name, value in given.items():
        value = getattr(stop, attrs[name], None) if value is None and stop is not None else value
        if value is None or (name == "stationary" and value == 0):
            continue
        value = float(value)
        if not math.isfinite(value) or (name != "reached_margin" and value <= 0):
            rule = "a finite number" + ("" if name == "reached_margin" else " > 0")
            raise ValueError(f"{attrs[name]} must be {rule}; got {value!r}")
        out[name] = value
    return out


def _margin_levels(targets: dict[str, float], beta: np.ndarray) -> dict[str, np.ndarray]:
    """The margin m at which each function stop is met (the flow raises m monotonically)."""
    out = {}
    if "reached_loss" in targets:  # softplus(-m) = L*  <=>  m = -log(e^L* - 1)
        lt = targets["reached_loss"]
        out["reached_loss"] = np.full_like(beta, -lt - math.log(-math.expm1(-lt)))
    if "reached_margin" in targets:  # m = beta (h_w - h_l)
        out["reached_margin"] = beta * targets["reached_margin"]
    if "stationary" in targets:  # sqrt(2) beta sigmoid(-m) = tol  <=>  m = log(sqrt(2) beta / tol - 1)
        r = math.sqrt(2.0) * beta / targets["stationary"]
        with np.errstate(divide="ignore", invalid="ignore"):
            out["stationary"] = np.where(r > 1.0, np.log(r - 1.0), -np.inf)
    return out


def exact_dpo_logits(
    theta0: object,
    log_ref: object,
    beta: object = 0.1,
    *,
    p2_floor: float | None = None,
    p1_target: float | None = None,
    p2_target: float | None = None,
    loss_target: float | None = None,
    margin_target: float | None = None,
    stationary_tol: float | None = None,
    t_max: float | None = None,
    stop: object | None = None,
) -> dict[str, np.ndarray]:
    """Closed-form DPO flows of softmax logits from ``theta0`` (..., K), until a stop.

    Parameters
    ----------
    theta0 : array (..., K)
        Start logits, y_w first and y_l second (any normalisation).
    log_ref : array (..., 2)
        log ref(y_w), log ref(y_l), fixed during the flow.
    beta : float or array broadcastable to the batch shape
        DPO's inverse temperature, > 0.
    p2_floor, p1_target, p2_target, t_max : float, optional
        As in the driver's stop rule (defaults 1e-6, 0.9, 0.1, 1e4): stop ``converged`` at
        p_l <= p2_floor or ``timeout`` at t = t_max (which may be inf); record t_w (first
        p_w >= p1_target) and t_l (first p_l <= p2_target).  Keywords given here win over
        the attributes of ``stop``, an object with those attributes (a ``StopRule``).
    loss_target, margin_target, stationary_tol : float, optional
        Also stop ``reached_loss`` once L <= loss_target (> 0), ``reached_margin`` once
        h_w - h_l = m / beta >= margin_target, ``stationary`` once |grad_theta L| =
        sqrt(2) beta sigmoid(-m) <= stationary_tol (> 0; 0 turns it off), as the driver's
        function stops do (in that order when simultaneous).  None: the attribute of
        ``stop`` (off without one).

    Returns
    -------
    dict of arrays of the batch shape (``theta_final`` and ``p_final`` with a trailing K):
    ``status``, ``t_stop``, ``theta_final``, ``p_final``, ``p1_final``, ``p2_final``,
    ``margin_final``, ``loss_final``, ``t_w``, ``t_l`` (0 where already crossed at the
    start, NaN where not crossed before the stop), ``shift`` (a = theta_w - theta_w0).
    """

    def pick(name: str, given: object, default: float) -> float:
        if given is not None:
            return float(given)  # type: ignore[arg-type]
        return float(getattr(stop, name, default)) if stop is not None else default

    floor = _check_prob("p2_floor", pick("p2_floor", p2_floor, 1e-6), open_right=True)
    g_w = _check_prob("p1_target", pick("p1_target", p1_target, 0.9), open_right=False)
    g_l = _check_prob("p2_target", pick("p2_target", p2_target, 0.1), open_right=True)
    tmax = pick("t_max", t_max, 1e4)
    if math.isnan(tmax) or tmax <= 0:
        raise ValueError(f"t_max must be > 0; got {tmax!r}")
    targets = _function_targets(stop, loss_target, margin_target, stationary_tol)

    theta0, log_ref, beta, m0, shape = _prepare(theta0, log_ref, beta)
    lse = logsumexp(theta0, axis=-1)
    pw0 = np.exp(theta0[..., 0] - lse)
    pl0 = np.exp(theta0[..., 1] - lse)
    if theta0.shape[-1] > 2:
        r0 = np.exp(logsumexp(theta0[..., 2:], axis=-1) - lse)
    else:
        r0 = np.zeros(shape)

    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # p_l = floor: x = e^a, p_w0 x^2 + r0 x - C = 0 with C = p_l0 (1 - f)/f
        c = pl0 * ((1.0 - floor) / floor)
        x = 2.0 * c / (r0 + np.sqrt(r0 * r0 + 4.0 * pw0 * c))
        a_floor = np.log1p((pl0 - floor) / (floor * (pw0 * (x + 1.0) + r0)))
        # p_l = p2_target, the same with f = g_l
        c = pl0 * ((1.0 - g_l) / g_l)
        x = 2.0 * c / (r0 + np.sqrt(r0 * r0 + 4.0 * pw0 * c))
        a_l = np.log1p((pl0 - g_l) / (g_l * (pw0 * (x + 1.0) + r0)))
        # p_w = p1_target: y = e^-a, g p_l0 y^2 + g r0 y - p_w0 (1 - g) = 0
        q = pw0 * (1.0 - g_w)
        y = 2.0 * q / (g_w * r0 + np.sqrt((g_w * r0) ** 2 + 4.0 * g_w * pl0 * q))
        a_w = -np.log1p((pw0 - g_w) / (g_w * (pl0 * (y + 1.0) + r0)))
        a_w = np.where(g_w >= 1.0, np.inf, a_w)
    a_time = shift_at_scaled_time(2.0 * beta * beta * tmax, m0) / (2.0 * beta)
    # every stop but the time out is a level of the margin m = m0 + 2 beta a, met at a shift a;
    # a tie goes by the stop rule's precedence, and the time out only when strictly first
    levels = {"converged": np.maximum(a_floor, 0.0)}
    for name, m_star in _margin_levels(targets, beta).items():
        levels[name] = np.broadcast_to(np.maximum((m_star - m0) / (2.0 * beta), 0.0), shape)
    first, a_stop = StopRule.earliest(levels)
    late = a_time < a_stop
    a_stop = np.where(late, a_time, a_stop)

    with np.errstate(invalid="ignore"):
        t_stop = np.where(late, tmax, _time_from_shift(2.0 * beta * a_stop, m0, beta))

    def crossing(a_x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            t_x = _time_from_shift(2.0 * beta * np.where(np.isfinite(a_x), a_x, 0.0), m0, beta)
        return np.where(a_x <= 0, 0.0, np.where(a_x <= a_stop, np.minimum(t_x, t_stop), np.nan))

    theta_f = _shifted(theta0, a_stop)
    p_f = softmax(theta_f, axis=-1)
    m_f = m0 + 2.0 * beta * a_stop
    status = np.where(late, "timeout", first).astype(object)
    return {
        "status": status,
        "t_stop": t_stop,
        "theta_final": theta_f,
        "p_final": p_f,
        "p1_final": p_f[..., 0],
        "p2_final": p_f[..., 1],
        "margin_final": m_f,
        "loss_final": np.logaddexp(0.0, -m_f),
        "t_w": crossing(a_w),
        "t_l": crossing(a_l),
        "shift": a_stop,
    }


def flows(loss, policy, stop) -> dict[str, np.ndarray]:
    """Entry point for a closed-form registry: DPO ``loss`` from every start of a bound ``logits`` policy.

    Returns the driver's record fields (status, t_stop, x1_final, x2_final, p1_final,
    p2_final, loss_final, t_w, t_l, nfev, message) for the stop rule ``stop``; applies to
    plain DPO (``loss.beta`` only: no label smoothing, reverse-KL divergence).
    """
    out = exact_dpo_logits(policy.theta0, policy.log_ref, loss.beta, stop=stop)
    logp = log_softmax(out["theta_final"], axis=-1)
    x = np.exp(logp[..., :2] - policy.log_ref)
    shape = out["t_stop"].shape
    # Only theta_w (up) and theta_l (down) move: p_w only rises (d log p_w / da = 1 - p_w + p_l > 0),
    # and p_w + p_l = 1 - C / Z(a) with Z convex in a, so its extremes are at the ends: the start
    # and the stop are the whole path.
    track = PathTrack(policy.probs(policy.theta0), stop or StopRule())
    track.t_w, track.t_l = out["t_w"], out["t_l"]
    path = finish_rows(np.exp(logp), logp[..., :2] - policy.log_ref, out["t_stop"], track)
    path["steps"] = np.full(shape, np.nan)
    return path | {
        "status": out["status"],
        "t_stop": out["t_stop"],
        "x1_final": x[..., 0],
        "x2_final": x[..., 1],
        "p1_final": out["p1_final"],
        "p2_final": out["p2_final"],
        "loss_final": out["loss_final"],
        "nfev": np.zeros(shape, dtype=np.int64),
        "message": np.full(shape, "", dtype=object),
    }


__all__ = ["exact_dpo_logits", "flows", "margin_at_time", "shift_at_scaled_time", "theta_at_time", "time_to_margin"]
