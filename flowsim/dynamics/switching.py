r"""Switching surfaces: where a loss's field is non-smooth, and what a flow does there (Filippov).

A loss declares its switching surfaces (:meth:`~flowsim.model.losses.base.Loss.kinks`): functions
s_k(h) whose zero sets are where its gradient jumps (DPOP: h_w = 0; the hinge: margin = 1).  On
each side of a surface the loss is one smooth piece (``Loss.side_grad``), so a flow is smooth
between surfaces, in a *mode*: a side of every surface, or sliding along one of them.

In theta, with F_-(theta) and F_+(theta) the fields -grad_theta L of the pieces on the sides
s_k < 0 and s_k > 0 and n = grad_theta s_k (the loss's ds_k/dh through the model's VJP), a flow
that reaches s_k = 0 looks at the normal components a_- = n . F_- and a_+ = n . F_+:

* a_-, a_+ > 0 (or both < 0): the flow *crosses* into the side s_k > 0 (s_k < 0);
* a_- >= 0 >= a_+: both sides push into the surface and the flow *slides* along it with
  Filippov's field F = (1 - alpha) F_- + alpha F_+, alpha = a_- / (a_- - a_+), the convex
  combination tangent to the surface; it leaves when alpha would leave [0, 1], i.e. when a_-
  falls through 0 (into s_k < 0) or a_+ rises through 0 (into s_k > 0);
* a_- < 0 < a_+ (both sides push away): the flow keeps the side it came from (at a start on the
  surface, the side whose piece is the loss's own gradient there: its convention at the kink).

An adaptive solver given the raw field instead chatters across a sliding surface (every trial
step that crosses it is rejected) until its budget runs out: issue 28's DPOP on features.
While sliding, the field carries a small restoring term -c s_k n / |n|^2 (rate c = :data:`RESTORE`
in t) against a secular drift off the surface, and every state read off a sliding run (events,
monitors, the end, the path) is first projected onto the surface (:meth:`Surfaces.project`), so
that a flow sliding along DPOP's h_w = 0 records p_w = pi_ref(y_w) to rounding, not to rtol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Mode switches (landings on a surface, exits from a sliding mode) one flow may make: beyond this
#: the flow is recorded ``failed`` (Zeno-like chattering that the events cannot resolve).
MAX_SWITCHES = 200
#: The sliding field's restoring rate (in t): small enough that an explicit method's steps are not
#: held by it (|h lambda| = RESTORE h < 6 up to steps of 6000), large enough to stop a secular drift.
RESTORE = 1e-3


class DoubleSliding(ValueError):
    """A flow would slide along two switching surfaces at once (see :meth:`Surfaces.check_single`)."""


@dataclass(frozen=True)
class Mode:
    """Where a flow is: a side (+1 / -1) of every surface, or sliding along surface ``sliding``."""

    side: tuple[float, ...]
    sliding: int | None = None

    def on(self, k: int, side: float) -> Mode:
        """This mode with surface k's side set to ``side`` (not sliding)."""
        sides = list(self.side)
        sides[k] = side
        return Mode(tuple(sides))

    def describe(self) -> str:
        return f"sliding on surface {self.sliding}" if self.sliding is not None else f"sides {self.side}"


class Surfaces:
    """The switching surfaces of one objective (a loss composed with a policy bound to one start), in theta."""

    def __init__(self, objective, count: int) -> None:
        self.objective, self.loss, self.policy, self.count = objective, objective.loss, objective.policy, count

    @classmethod
    def of(cls, objective, theta0) -> Surfaces | None:
        """The objective's surfaces, or None where the loss declares none."""
        s = objective.loss.kinks(objective.h(np.asarray(theta0, dtype=float)), objective.policy.log_ref)
        return None if s is None else cls(objective, int(np.shape(s)[-1]))

    def values(self, theta: np.ndarray) -> np.ndarray:
        """s_k at theta, shape (k,)."""
        return np.asarray(self.loss.kinks(self.objective.h(theta), self.policy.log_ref), dtype=float)

    def normal(self, theta: np.ndarray, k: int) -> np.ndarray:
        """grad_theta s_k, shape (d,)."""
        n_h = self.loss.kink_normals(self.objective.h(theta), self.policy.log_ref)[..., k, :]
        return np.asarray(self.policy.vjp(theta, n_h), dtype=float)

    def side_field(self, theta: np.ndarray, side) -> np.ndarray:
        """-grad_theta L of the pieces on the given sides (k,), shape (d,)."""
        g = self.loss.side_grad(self.objective.h(theta), np.asarray(side, dtype=float), self.policy.log_ref)
        return -np.asarray(self.policy.vjp(theta, g), dtype=float)

    def normal_components(
        self, theta: np.ndarray, mode: Mode, k: int
    ) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
        """(a_-, a_+, F_-, F_+, n) of surface k at theta, the other surfaces on the mode's sides."""
        f_minus, f_plus = self.side_field(theta, mode.on(k, -1.0).side), self.side_field(theta, mode.on(k, 1.0).side)
        n = self.normal(theta, k)
        return float(n @ f_minus), float(n @ f_plus), f_minus, f_plus, n

    def field(self, theta: np.ndarray, mode: Mode) -> np.ndarray:
        """The mode's field d theta/dt at theta: a side's piece, or Filippov's sliding field."""
        theta = np.asarray(theta, dtype=float)
        if mode.sliding is None:
            return self.side_field(theta, mode.side)
        k = mode.sliding
        a_minus, a_plus, f_minus, f_plus, n = self.normal_components(theta, mode, k)
        den = a_minus - a_plus
        alpha = min(1.0, max(0.0, a_minus / den)) if den != 0 else 0.5
        nn = float(n @ n)
        restore = RESTORE * self.values(theta)[k] / nn * n if nn > 0 else 0.0
        return (1.0 - alpha) * f_minus + alpha * f_plus - restore

    def project(self, theta: np.ndarray, k: int) -> np.ndarray:
        """theta moved along grad s_k onto s_k = 0 (two Newton steps: s_k is smooth and theta is near it)."""
        theta = np.array(theta, dtype=float)
        for _ in range(2):
            n = self.normal(theta, k)
            nn = float(n @ n)
            if nn == 0:
                break
            theta = theta - self.values(theta)[k] / nn * n
        return theta

    def exits(self, theta: np.ndarray, mode: Mode) -> tuple[float, float]:
        """(a_-, a_+) of the sliding surface: the flow leaves where a_- < 0 or a_+ > 0."""
        a_minus, a_plus, *_ = self.normal_components(np.asarray(theta, dtype=float), mode, mode.sliding)
        return a_minus, a_plus

    def start_mode(self, theta: np.ndarray, scale: float = 1e-12) -> Mode:
        """The mode of a start: the side of each surface, and on a surface (|s_k| <= scale) what :meth:`decide` says."""
        s = self.values(theta)
        mode = Mode(tuple(float(np.sign(v)) if abs(v) > scale else self._convention(theta, k) for k, v in enumerate(s)))
        on = [k for k, v in enumerate(s) if abs(v) <= scale]
        for k in on:
            mode = self.decide(theta, mode, k, came_from=None)
            if mode.sliding is not None:
                for j in on:
                    if j != k:
                        self.check_single(theta, mode, k, j)
                return mode
        return mode

    def decide(self, theta: np.ndarray, mode: Mode, k: int, came_from: float | None) -> Mode:
        """The mode after landing on surface k at theta from side ``came_from`` (None: a start on it).

        Raises :class:`DoubleSliding` where the flow, sliding along another surface j, lands on k
        and would slide along both (see :meth:`check_single`).
        """
        a_minus, a_plus, *_ = self.normal_components(np.asarray(theta, dtype=float), mode, k)
        if a_minus > 0 and a_plus > 0:
            return self._still_sliding(theta, mode, mode.on(k, 1.0))
        if a_minus < 0 and a_plus < 0:
            return self._still_sliding(theta, mode, mode.on(k, -1.0))
        if a_minus >= 0 >= a_plus and (a_minus != 0 or a_plus != 0):
            if mode.sliding is not None and mode.sliding != k:
                self.check_single(theta, mode, k, mode.sliding)
            return Mode(mode.side, sliding=k)
        side = came_from if came_from is not None else self._convention(theta, k)
        return self._still_sliding(theta, mode, mode.on(k, side))

    def _still_sliding(self, theta: np.ndarray, old: Mode, new: Mode) -> Mode:
        """``new`` (a side of the surface just landed on), still sliding along ``old``'s surface if it attracts.

        A flow sliding along surface j that crosses another surface k keeps sliding along j when
        both sides of j still push into it with k's new side; else it leaves j to the side both
        push to (or, both pushing away, the side it slid from).
        """
        j = old.sliding
        if j is None:
            return new
        a_minus, a_plus, *_ = self.normal_components(np.asarray(theta, dtype=float), new, j)
        if a_minus >= 0 >= a_plus and (a_minus != 0 or a_plus != 0):
            return Mode(new.side, sliding=j)
        if a_minus > 0 and a_plus > 0:
            return new.on(j, 1.0)
        return new.on(j, -1.0) if a_minus < 0 and a_plus < 0 else new

    def attracts(self, theta: np.ndarray, mode: Mode, k: int) -> bool:
        """Do both sides of surface k push into it at theta (the other surfaces on the mode's sides)?"""
        a_minus, a_plus, *_ = self.normal_components(np.asarray(theta, dtype=float), mode, k)
        return a_minus >= 0 >= a_plus and (a_minus != 0 or a_plus != 0)

    def check_single(self, theta: np.ndarray, mode: Mode, k: int, j: int) -> None:
        """Raise :class:`DoubleSliding` if, on surfaces k and j at once, each attracts whichever side of the other.

        Then the flow would slide along their intersection: a codimension-2 Filippov mode, whose
        field (a convex combination of four pieces, tangent to both surfaces) need not be unique
        and which :meth:`field` does not compute.  Sliding along one of them instead, the flow
        leaves the other, lands on it again and chatters until :data:`MAX_SWITCHES` (seconds of
        tiny pieces, then ``failed``); the refusal says why at once.
        """
        sides = (-1.0, 1.0)
        if all(self.attracts(theta, mode.on(k, a), j) for a in sides) and all(
            self.attracts(theta, mode.on(j, b), k) for b in sides
        ):
            raise DoubleSliding(
                f"the flow reached the intersection of switching surfaces {j} and {k} with both sides of each "
                "pushing into it: it would slide along both at once (a codimension-2 Filippov mode), which "
                "flowsim does not integrate"
            )

    def _convention(self, theta: np.ndarray, k: int) -> float:
        """The side whose piece is the loss's own gradient at theta (its convention on surface k)."""
        h = self.objective.h(np.asarray(theta, dtype=float))
        lr = self.policy.log_ref
        g = self.loss.grad(h, lr)
        side = np.sign(self.loss.kinks(h, lr))
        gaps = []
        for trial in (-1.0, 1.0):
            side[..., k] = trial
            gaps.append(float(np.linalg.norm(self.loss.side_grad(h, side, lr) - g)))
        return 1.0 if gaps[1] <= gaps[0] else -1.0


class ModeObjective:
    """An objective whose gradient is minus one mode's field: what a chart integrates between switches.

    Its value, log-ratios and policy are the objective's; its Hessian (for the implicit methods'
    Jacobian) is the objective's, which the sliding field's differs from only in the direction of
    the surface normal.
    """

    def __init__(self, surfaces: Surfaces, mode: Mode) -> None:
        self.surfaces, self.mode = surfaces, mode
        obj = surfaces.objective
        self.loss, self.policy, self.h, self.value, self.hessian = obj.loss, obj.policy, obj.h, obj.value, obj.hessian

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return -self.surfaces.field(theta, self.mode)


__all__ = ["MAX_SWITCHES", "DoubleSliding", "Mode", "ModeObjective", "Surfaces"]
