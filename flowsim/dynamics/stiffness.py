r"""Hairer's stiffness test for scipy's explicit Runge-Kutta pairs: a stiff flow found in steps, not budgets.

An explicit method on a stiff flow (near a finite minimiser on the ratio plane the Jacobian is
minus the Hessian, which grows like 1/x^2) takes steps held at the edge of its stability
region, whatever the tolerance.  Hairer's DOPRI5 and DOP853 codes detect this from quantities
every step already has (Hairer & Wanner, *Solving ODEs II*, Sec. IV.2): the last stage
Y_s and the new point y_1 are both at t + h, so

    h rho = |h| * ||f(y_1) - f(Y_s)|| / ||y_1 - Y_s||

estimates |h lambda| for the dominant eigenvalue lambda.  A step with h rho beyond the
method's stability boundary on the negative real axis (6.1 for DOP853, 3.25 for DOPRI5, the
codes' constants) is held there by stability; 15 of them without 6 non-stiff steps in a row
in between and the flow is stiff (the codes' counts).  Here that raises :class:`StiffFlow`,
which the driver answers by integrating the flow again with LSODA, as it does when a method
exhausts its budget of evaluations: about 200 evaluations instead of ``max_nfev``.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import DOP853, RK45

#: |h lambda| beyond which a step of the method is held by stability (Hairer's DOPRI5 / DOP853 codes).
BOUNDARY = {"RK45": 3.25, "DOP853": 6.1}
#: Stiff steps (without NONSTIFF non-stiff steps in a row between them) that make a flow stiff.
STIFF_STEPS, NONSTIFF_STEPS = 15, 6


class StiffFlow(Exception):
    """An explicit method's steps were held at its stability boundary (the flow is stiff)."""

    def __init__(self, method: str, t: float) -> None:
        super().__init__(f"{method}'s steps were held at its stability limit (Hairer's test, at tau = {t:.6g})")
        self.method = method


class _Detecting:
    """Mixin for a scipy RungeKutta class whose last stage is at t + h (C[n_stages - 1] = 1)."""

    name: str

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stiff, self._nonstiff = 0, 0
        s = self.n_stages - 1
        assert self.C[s] == 1.0, "the last stage must be at t + h"
        self._a_last = self.A[s, :s]

    def _step_impl(self):
        ok, message = super()._step_impl()
        if ok and self._held_by_stability():
            self._stiff += 1
            self._nonstiff = 0
            if self._stiff >= STIFF_STEPS:
                raise StiffFlow(self.name, float(self.t_old))
        elif ok:
            self._nonstiff += 1
            if self._nonstiff >= NONSTIFF_STEPS:
                self._stiff = 0
        return ok, message

    def _held_by_stability(self) -> bool:
        s, h = self.n_stages - 1, self.h_previous
        y_last = self.y_old + h * (self._a_last @ self.K[:s])  # the last stage's state, at t + h
        den = np.linalg.norm(self.y - y_last)
        return bool(den > 0 and abs(h) * np.linalg.norm(self.K[s + 1] - self.K[s]) > BOUNDARY[self.name] * den)


class DetectingDOP853(_Detecting, DOP853):
    """scipy's DOP853 that raises :class:`StiffFlow` on a stiff flow."""

    name = "DOP853"


class DetectingRK45(_Detecting, RK45):
    """scipy's RK45 (DOPRI5) that raises :class:`StiffFlow` on a stiff flow."""

    name = "RK45"


#: The detecting class for each method that has one (RK23's tableau has no last stage at t + h).
DETECTING = {"DOP853": DetectingDOP853, "RK45": DetectingRK45}

__all__ = ["BOUNDARY", "DETECTING", "StiffFlow"]
