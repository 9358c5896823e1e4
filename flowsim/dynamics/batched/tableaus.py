"""Explicit embedded Runge-Kutta pairs, one step for many rows at once, with scipy's error control.

The coefficients are read from scipy's own solvers (``scipy.integrate.RK23``, ``RK45``,
``DOP853``: public classes whose tableaus are class attributes), and every formula below
is scipy's (``scipy/integrate/_ivp/rk.py``) written for a stack of rows: the state is
``y`` (k, m), each row has its own independent variable ``tau`` (k,) and step ``h`` (k,),
the error norm is scipy's RMS norm taken *per row* (over that row's m components), and the
dense output is scipy's interpolant per row.  A row therefore takes the steps a scalar
``solve_ivp`` run of the same system would take, up to rounding.

Layout: states are stored component-major, ``y`` of shape (m, k) for k rows, so that every
operation runs along the rows (contiguous, long inner loops) and a per-row scalar such as
the step ``h`` (k,) broadcasts without a short inner axis (with (k, m) and m = 3, numpy's
broadcast loops cost 5 times more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import DOP853, RK23, RK45

#: scipy's step-size controller constants (``scipy.integrate._ivp.rk``).
SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0

Field = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tableau:
    """One embedded pair: its stages, weights, error estimator and dense-output coefficients."""

    name: str
    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    error_order: int
    E: np.ndarray  # error weights (RK23, RK45) or E5 (DOP853)
    E3: np.ndarray | None  # DOP853's second error estimator
    P: np.ndarray | None  # dense output (RK23, RK45)
    A_extra: np.ndarray | None  # DOP853's extra stages for its dense output
    C_extra: np.ndarray | None
    D: np.ndarray | None

    @property
    def n_stages(self) -> int:
        return len(self.B)

    @property
    def exponent(self) -> float:
        return -1.0 / (self.error_order + 1)

    @property
    def dense_evals(self) -> int:
        """Extra field evaluations one dense output costs."""
        return 0 if self.A_extra is None else len(self.A_extra)


def _make(cls) -> Tableau:
    dop = cls is DOP853
    return Tableau(
        name=cls.__name__,
        A=np.asarray(cls.A),
        B=np.asarray(cls.B),
        C=np.asarray(cls.C),
        error_order=cls.error_estimator_order,
        E=np.asarray(cls.E5 if dop else cls.E),
        E3=np.asarray(cls.E3) if dop else None,
        P=None if dop else np.asarray(cls.P),
        A_extra=np.asarray(cls.A_EXTRA) if dop else None,
        C_extra=np.asarray(cls.C_EXTRA) if dop else None,
        D=np.asarray(cls.D) if dop else None,
    )


#: The explicit methods the batched engine has, by solve_ivp name.
TABLEAUS: dict[str, Tableau] = {cls.__name__: _make(cls) for cls in (RK23, RK45, DOP853)}


def combine(c: np.ndarray, K: np.ndarray) -> np.ndarray:
    """sum_s c[s] K[s] for stages K (s, m, k), by numpy's own loops.

    Not ``tensordot``: that is a BLAS call, and a multithreaded BLAS on a busy machine made
    the whole engine 2-3 times slower (OpenBLAS with 2 threads on 2 shared cores).
    """
    return np.einsum("s,smk->mk", c, K)


def cols(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The rows ``idx`` of a component-major array (..., k), C-contiguous (``a[..., idx]`` is not)."""
    return np.take(a, idx, axis=-1)


def rms(x: np.ndarray) -> np.ndarray:
    """scipy's norm (RMS) of each row's components, x (m, k) -> (k,)."""
    return np.sqrt(np.einsum("ij,ij->j", x, x) / x.shape[0])


def initial_step(fun: Field, tau, y, f, rows, span, order: int, rtol: float, atol: np.ndarray) -> np.ndarray:
    """scipy's ``select_initial_step`` per row (one more field evaluation per row)."""
    scale = atol + np.abs(y) * rtol
    d0, d1 = rms(y / scale), rms(f / scale)
    h0 = np.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / np.where(d1 > 0, d1, 1.0))
    h0 = np.minimum(h0, span)
    f1 = fun(tau + h0, y + h0 * f, rows)
    d2 = rms((f1 - f) / scale) / h0
    big = np.maximum(d1, d2)
    with np.errstate(divide="ignore"):
        h1 = np.where((d1 <= 1e-15) & (d2 <= 1e-15), np.maximum(1e-6, h0 * 1e-3), (0.01 / big) ** (1.0 / (order + 1)))
    return np.minimum(np.minimum(100 * h0, h1), span)


def step(tab: Tableau, fun: Field, tau, y, f, h, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of every row: (y_new, f_new, K) with the stages K (n_stages + 1, m, k); K[-1] = f_new."""
    s_n = tab.n_stages
    K = np.empty((s_n + 1, *y.shape))
    K[0] = f
    for s in range(1, s_n):
        dy = combine(tab.A[s, :s], K[:s])
        dy *= h
        dy += y
        K[s] = fun(tau + tab.C[s] * h, dy, rows)
    y_new = combine(tab.B, K[:s_n])
    y_new *= h
    y_new += y
    K[s_n] = fun(tau + h, y_new, rows)
    return y_new, K[s_n], K


def error_norm(tab: Tableau, K: np.ndarray, h: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """scipy's error norm of each row's step (``_estimate_error_norm``)."""
    err = combine(tab.E, K) / scale
    if tab.E3 is None:
        return np.abs(h) * rms(err)
    err3 = combine(tab.E3, K) / scale
    e5, e3 = np.einsum("ij,ij->j", err, err), np.einsum("ij,ij->j", err3, err3)
    denom = np.sqrt((e5 + 0.01 * e3) * K.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.abs(h) * e5 / denom
    return np.where((e5 == 0) & (e3 == 0), 0.0, out)


def step_factor(tab: Tableau, err: np.ndarray, accepted: np.ndarray, rejected_before: np.ndarray) -> np.ndarray:
    """scipy's step-size factor per row: growth after an accepted step (capped at 1 after a rejection), else shrink."""
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = SAFETY * err**tab.exponent
    grow = np.where(err == 0, MAX_FACTOR, np.minimum(MAX_FACTOR, raw))
    grow = np.where(rejected_before, np.minimum(1.0, grow), grow)
    shrink = np.maximum(MIN_FACTOR, np.nan_to_num(raw, nan=MIN_FACTOR))
    return np.where(accepted, grow, shrink)


class Dense:
    """scipy's dense output of one accepted step, for a subset of rows (extra stages computed here)."""

    def __init__(self, tab: Tableau, fun: Field, tau_old, y_old, y_new, h, K, rows) -> None:
        self.tau_old, self.h, self.y_old = tau_old, h, y_old
        if tab.P is not None:
            self.Q = np.einsum("smk,sp->pmk", K, tab.P)  # (order + 1, m, k)
            self.F = None
            return
        s0 = len(K)
        Kx = np.empty((s0 + len(tab.A_extra), *y_old.shape))
        Kx[:s0] = K
        for j, (a, c) in enumerate(zip(tab.A_extra, tab.C_extra, strict=True)):
            s = s0 + j
            Kx[s] = fun(tau_old + c * h, y_old + h * combine(a[:s], Kx[:s]), rows)
        delta = y_new - y_old
        f_old, f_new = K[0], K[s0 - 1]
        F = np.empty((3 + len(tab.D), *y_old.shape))
        F[0] = delta
        F[1] = h * f_old - delta
        F[2] = 2 * delta - h * (f_new + f_old)
        F[3:] = h * np.einsum("ds,smk->dmk", tab.D, Kx)
        self.F = F

    def rows(self, which: np.ndarray) -> Dense:
        """The dense output of the rows ``which`` of this subset only."""
        out = object.__new__(Dense)
        out.tau_old, out.h, out.y_old = self.tau_old[which], self.h[which], cols(self.y_old, which)
        out.Q = None if self.F is not None else cols(self.Q, which)
        out.F = None if self.F is None else cols(self.F, which)
        return out

    def __call__(self, tau: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        """States (m, k') at ``tau`` (k',) of the rows ``which`` (indices into this subset; all by default)."""
        if which is not None:
            return self.rows(which)(tau)
        h = self.h
        x = (tau - self.tau_old) / h
        if self.F is None:
            y = np.zeros_like(self.Q[0])
            for q in self.Q[::-1]:  # Horner: sum_p Q_p x^(p + 1)
                y += q
                y *= x
            return self.y_old + h * y
        y = np.zeros_like(self.y_old)
        x1 = 1 - x
        for i, f in enumerate(self.F[::-1]):
            y += f
            y *= x if i % 2 == 0 else x1
        return y + self.y_old


__all__ = [
    "TABLEAUS",
    "Dense",
    "Tableau",
    "cols",
    "combine",
    "error_norm",
    "initial_step",
    "rms",
    "step",
    "step_factor",
]
