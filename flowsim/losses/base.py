"""The :class:`Loss` interface: a preference loss as a field over the ratio plane.

A loss here is a function of x = (x1, x2), the policy-to-reference probability ratios of
the preferred and the dispreferred response, x1 = p1 / ref_w and x2 = p2 / ref_l, with
p1 = pi_theta(y_w|x) and p2 = pi_theta(y_l|x) in (0, 1].  Its domain is therefore the box
0 < x1 <= 1/ref_w, 0 < x2 <= 1/ref_l.

All array methods take arrays of shape (..., 2) and broadcast, so the same call serves one
point and a whole mesh.  A new loss is one file: subclass :class:`Loss`, implement
``value``, ``grad`` and ``hessian``, and add it to the registry in ``flowsim.losses``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from flowsim._validation import check_points


class Loss(ABC):
    """A preference loss L(x1, x2) on the box 0 < x1 <= 1/ref_w, 0 < x2 <= 1/ref_l.

    Subclasses are frozen dataclasses with at least the fields ``ref_w`` and ``ref_l``.
    """

    #: Registry name, as written in experiment files (``kind = "dpo"``).
    kind: ClassVar[str]
    ref_w: float
    ref_l: float

    @abstractmethod
    def value(self, x: np.ndarray) -> np.ndarray:
        """Loss values, shape (...)."""

    @abstractmethod
    def grad(self, x: np.ndarray) -> np.ndarray:
        """Gradient (dL/dx1, dL/dx2), shape (..., 2)."""

    @abstractmethod
    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Hessian, shape (..., 2, 2)."""

    def grad_at(self, x1: float, x2: float) -> tuple[float, float]:
        """The gradient at one point, as Python floats.

        The integrator calls this once per right-hand-side evaluation, where numpy's
        per-call overhead on a 2-vector costs more than the arithmetic; a loss may
        override it with scalar ``math`` code.  It must agree with :meth:`grad`.
        """
        g = self.grad(np.array([x1, x2]))
        return float(g[0]), float(g[1])

    def chart_exponents(self) -> tuple[float, float]:
        """Exponents (a1, a2) of the chart z_i = x_i**a_i in which the flow is smooth.

        An exponent of 0 means z_i = log x_i.  The default (1, 1) is the identity; a loss
        whose flow is singular at an edge of the box overrides it (see ``DPO``).
        """
        return (1.0, 1.0)

    def clock_coordinate(self) -> int | None:
        """A chart coordinate that is strictly monotone along every flow, or None (the default).

        When a loss names one (0 or 1), the integrator advances in it rather than in time:
        with the clock tau defined by dtau = |dz_i|, the state is (z1, z2, t) and

            d(z, t)/dtau = (dz/dt, 1) / |dz_i/dt|,

        so z_i runs at unit speed, a stop or crossing on it is reached at a known tau, and
        t is integrated like any other coordinate.  This pays where the flow speeds up
        without bound in t but moves smoothly in z_i (see ``DPO``).  The speed |dz_i/dt|
        must not vanish in the domain.
        """
        return None

    def chart_field_at(self, z1: float, z2: float) -> tuple[float, float, float] | None:
        """(dz1/dtau, dz2/dtau, dt/dtau) at a chart point, as Python floats, in closed form.

        The integrator's right-hand side in the chart of :meth:`chart_exponents` with the
        clock of :meth:`clock_coordinate` (tau = t when that is None).  The default, None,
        means "no closed form": the integrator composes the field from :meth:`grad_at`.  A
        loss may return scalar ``math`` code here that skips the chart maps and the
        cancellations; it must agree with the composed field.
        """
        return None

    # -- coordinates -------------------------------------------------------------------
    @property
    def upper(self) -> np.ndarray:
        """Upper corner of the domain box, (1/ref_w, 1/ref_l)."""
        return np.array([1.0 / self.ref_w, 1.0 / self.ref_l])

    @property
    def refs(self) -> np.ndarray:
        """(ref_w, ref_l) as an array, for broadcasting against (..., 2)."""
        return np.array([self.ref_w, self.ref_l])

    def to_ratio(self, p: np.ndarray) -> np.ndarray:
        """Policy probabilities (p1, p2) to ratios (x1, x2)."""
        return np.asarray(p, dtype=float) / self.refs

    def to_prob(self, x: np.ndarray) -> np.ndarray:
        """Ratios (x1, x2) to policy probabilities (p1, p2)."""
        return np.asarray(x, dtype=float) * self.refs

    def in_domain(self, x: np.ndarray) -> np.ndarray:
        """Whether each point lies in the box 0 < x_i <= upper_i (boolean, shape (...))."""
        x = np.asarray(x, dtype=float)
        return np.all((x > 0) & (x <= self.upper), axis=-1)

    def check_domain(self, name: str, x: object) -> np.ndarray:
        """Return ``x`` as a float array of shape (..., 2), or raise naming the first bad point."""
        x = check_points(name, x)
        ok = self.in_domain(x)
        if not np.all(ok):
            bad = x[~ok][0] if x.ndim > 1 else x
            ub = self.upper
            raise ValueError(
                f"{name} must lie in the domain 0 < x1 <= {ub[0]:g}, 0 < x2 <= {ub[1]:g} "
                f"(probabilities in (0, 1] with ref_w={self.ref_w:g}, ref_l={self.ref_l:g}); "
                f"got {bad.tolist()}"
            )
        return x

    def params(self) -> dict[str, float]:
        """The loss's parameters by name, as they go into a results table."""
        from dataclasses import asdict

        return asdict(self)  # type: ignore[call-overload]
