"""The :class:`Parameterisation` interface: parameters theta -> the responses' log-probabilities.

A parameterisation is a frozen dataclass of hyperparameters (K, feature geometry, ...).
Bound to starts and references by :meth:`Parameterisation.bind`, it becomes a
:class:`Policy`: per-row data of some batch shape (a single start has shape ()), with

1. ``theta0`` (..., d): the parameters at the start (the SFT model's, p = p0);
2. ``log_probs(theta)`` (..., K): log pi_theta of every modelled response, y_w first and
   y_l second (the ratio plane models only those two, K = 2, and is not normalised);
3. ``log_ratios(theta)`` (..., 2): h = log pi_theta(y_w, y_l) - log_ref;
4. ``vjp(theta, g)`` (..., d): the vector-Jacobian product g . dh/dtheta for a cotangent
   g (..., 2) on h, which is all gradient flow and the optimisers need;
5. ``in_domain(theta)`` (...): where theta is a valid parameter (the ratio plane's box).

theta broadcasts against the batch shape, so one code path serves one flow and a chunk.
Every registered parameterisation passes ``tests/unit/test_conformance.py`` (VJP against
finite differences, the start reproduces p0, finite at the extremes).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import ClassVar

import numpy as np

from flowsim._validation import ParamError


class Policy(ABC):
    """A parameterised policy bound to its starts (per-row data of batch shape ``shape``)."""

    #: The parameterisation's registry name (charts and closed forms are declared per kind).
    kind: str
    #: Whether p_w can reach 1 in finite time (a stop, ``capped``): only an unnormalised model.
    has_cap: bool = False
    #: Parameter dimension d and number of modelled responses K.
    dim: int
    n_responses: int
    #: log pi_ref(y_w), log pi_ref(y_l), shape (..., 2).
    log_ref: np.ndarray
    #: The starts' probabilities (p_w0, p_l0), shape (..., 2).
    p0: np.ndarray

    @property
    @abstractmethod
    def theta0(self) -> np.ndarray:
        """Parameters at the start, shape (..., d)."""

    @abstractmethod
    def log_probs(self, theta: np.ndarray) -> np.ndarray:
        """log pi_theta of every modelled response, shape (..., K); y_w, y_l first."""

    def log_ratios(self, theta: np.ndarray) -> np.ndarray:
        """h = log pi_theta(y_w, y_l) - log_ref, shape (..., 2)."""
        return self.log_probs(theta)[..., :2] - self.log_ref

    def probs(self, theta: np.ndarray) -> np.ndarray:
        """pi_theta of every modelled response, shape (..., K)."""
        return np.exp(self.log_probs(theta))

    def ratios(self, theta: np.ndarray) -> np.ndarray:
        """x = pi_theta / pi_ref of y_w and y_l, shape (..., 2)."""
        return np.exp(self.log_ratios(theta))

    @abstractmethod
    def vjp(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g . dh/dtheta for a cotangent g on h (..., 2): shape (..., d)."""

    def chain_hessian(self, theta: np.ndarray, loss) -> np.ndarray | None:
        """d^2L/dtheta^2 of ``loss`` composed with this policy, analytically, or None.

        A policy whose h(theta) has a cheap second derivative overrides this; otherwise the
        objective differentiates its gradient numerically.
        """
        return None

    def in_domain(self, theta: np.ndarray) -> np.ndarray:
        """Whether theta is a valid parameter (boolean, shape (...)); all finite theta by default."""
        return np.all(np.isfinite(theta), axis=-1)

    def describe_domain(self) -> str:
        """The domain in words, for error messages."""
        return "finite parameters"

    def theta_scale(self, theta: np.ndarray) -> np.ndarray:
        """A typical size of each parameter (..., d), for finite-difference steps: max(|theta|, 1)."""
        return np.maximum(np.abs(theta), 1.0)

    def row(self, i: int | tuple) -> Policy:
        """The policy of one start (batch index ``i``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot select rows")


class Model(ABC):
    """What every model declares, and the rules of a sweep over it: the one protocol of :data:`MODELS`.

    A model is a frozen dataclass of hyperparameters (its fields are the ``[model]`` keys) with

    1. ``kind``: its registry name; ``normalised``: whether starts need p_w0 + p_l0 < 1;
    2. ``policy_of_starts``: whether :meth:`Parameterisation.bind` gives a Policy of independent
       starts (every engine that declares no models runs it), else the engines declaring its kind do;
    3. where its field at the starts lives: ``field_columns`` (None: computed from the bound policy;
       else the rows record it in these columns: dp_w/dt, dp_l/dt at t = 0, |grad_theta L|);
    4. ``rows_per_start()``: rows a start gives (1; a network: a row per pair), and ``extra_columns``
       its rows add after the flows.csv columns; ``probe_columns``: which per-pair predictors of
       :data:`flowsim.model.probes.PROBE_COLUMNS` its rows record (declared, never inferred);
    5. ``check_sweep(params, dynamics, grid_points)``: the rules of an experiment over it, raising
       ParamError keyed by the experiment's key; ``grid_optional``: whether it may have no grid;
       ``prepare_workers()``: what to import before a sweep's workers fork.
    """

    #: Registry name, as written in experiment files (``[model] kind = "logits"``).
    kind: ClassVar[str]
    #: Whether the model is a probability distribution, so starts need p_w0 + p_l0 < 1.
    normalised: ClassVar[bool] = True
    #: Whether :meth:`Parameterisation.bind` gives a Policy of independent starts.
    policy_of_starts: ClassVar[bool] = True
    #: The columns that hold the field at the starts, when the rows record it (None: from the policy).
    field_columns: ClassVar[tuple[str, str, str] | None] = None
    #: Columns the model's rows add after the flows.csv columns (none: the record says it all).
    extra_columns: ClassVar[tuple[str, ...]] = ()
    #: The predictors of displacement its rows record (:mod:`flowsim.model.probes`; none by default).
    probe_columns: ClassVar[tuple[str, ...]] = ()
    #: Whether an experiment over it may leave the grid out (it then gets one point).
    grid_optional: ClassVar[bool] = False

    def rows_per_start(self) -> int:
        """Rows one start gives."""
        return 1

    def check_relations(self) -> Model:
        """The rules between fields, per swept combination (none by default); returns self."""
        return self

    @classmethod
    def check_sweep(cls, params: dict, dynamics: tuple[str, ...], grid_points: int | None) -> None:
        """The rules of an experiment over this model: ``params`` each field's swept values,
        ``dynamics`` the dynamics kinds, ``grid_points`` the grid's size (None: no grid given).

        Raises ParamError keyed by the experiment's own key ("model.K", "grid", ...).
        """
        names = list(params)
        for values in itertools.product(*params.values()):
            try:
                cls(**dict(zip(names, values, strict=True))).check_relations()
            except ParamError as exc:
                raise ParamError(f"model.{exc.key}", exc.rule, exc.value) from None

    @classmethod
    def prepare_workers(cls) -> None:
        """Import what the sweep's workers need before they fork (nothing by default)."""
        return None

    def params(self) -> dict[str, object]:
        """The hyperparameters by name, as they go into a results table."""
        return asdict(self)  # type: ignore[call-overload]

    def impossible(self, outcome: str, loss, p0: np.ndarray, ref: np.ndarray) -> str | None:
        """Why ``outcome`` cannot happen, by construction, for ``loss`` on this model from any of
        the starts ``p0`` with references ``ref`` (both (..., 2)); None where it may.

        Outcomes are named as the flows table's columns: "displaced" (p_w falls below p_w0 at
        some time).  A model that knows of no such limit (the default) says None.
        """
        return None


class Parameterisation(Model):
    """Hyperparameters of a policy family; :meth:`bind` gives a :class:`Policy`."""

    @abstractmethod
    def bind(self, p0: np.ndarray, ref: np.ndarray) -> Policy:
        """A policy starting at probabilities p0 = (p_w0, p_l0) with references ``ref``.

        Both have shape (..., 2); ``ref`` = (pi_ref(y_w), pi_ref(y_l)) in (0, 1].
        """

    def start_columns(self, p0: np.ndarray, ref: np.ndarray, loss) -> dict[str, np.ndarray]:
        """The predictors of :data:`flowsim.model.probes.START_PROBES` at starts p0 (n, 2), by name ((n,) each).

        A model that declares ``probe_columns`` computes them (in closed form) but ``dlogpw_first``,
        which the sweep measures on the dynamics (:func:`flowsim.experiment.sweep.frame`); none by default.
        """
        return {}


def margin_keeps_sign(loss, p0: np.ndarray, ref: np.ndarray, how: str) -> str | None:
    """The reason p_w cannot fall on a model where dL/dh_w keeps its sign along a flow, or None.

    On such a model (``how`` says why: tabular logits, the ratio plane), a loss of the margin
    alone, L = F(h_w - h_l), moves log p_w at a rate -c dL/dh_w with c > 0, and the margin by a
    one-dimensional gradient flow of F, which never crosses a zero of F': so p_w falls at some
    time exactly when dL/dh_w > 0 at the start.  This says so when dL/dh_w <= 0 at every start.
    """
    if not loss.margin_only():
        return None
    log_ref = np.log(np.asarray(ref, dtype=float))
    with np.errstate(divide="ignore"):
        g_w = loss.grad(np.log(np.asarray(p0, dtype=float)) - log_ref, log_ref)[..., 0]
    if not np.all(g_w <= 0):
        return None
    return (
        f"{loss.kind} is a function of the margin h_w - h_l alone; {how}; dL/dh_w <= 0 at every start, "
        "so p_w can only rise"
    )
