"""Argument checks that fail early with messages naming the parameter, the rule and the value.

Every public constructor in flowsim validates through these helpers, so a bad value
is reported as ``ParamError: rtol must be in (0, 1); got 2.0`` (a
:class:`~flowsim.errors.UserError`, and so a ValueError) rather than as a traceback from
inside numpy or scipy.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from flowsim.errors import UserError


class ParamError(UserError):
    """A parameter that breaks a rule; carries the key, the rule and the value as data.

    ``str(exc)`` reads "``key`` ``rule``; got ``value!r``", and configuration code prefixes
    the key's location (file, table) without parsing the message.
    """

    def __init__(self, key: str, rule: str, value: object) -> None:
        self.key, self.rule, self.value = key, rule, value
        super().__init__(f"{key} {rule}; got {value!r}")

    def __reduce__(self) -> tuple:
        # rebuilt from its data when pickled (a worker process's error reaches the parent whole)
        return type(self), (self.key, self.rule, self.value)


class ParamTypeError(ParamError, TypeError):
    """A parameter of the wrong type (a TypeError too, as Python code expects)."""


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise ParamTypeError(name, "must be a real number", value)
    value = float(value)
    if not math.isfinite(value):
        raise ParamError(name, "must be a finite number", value)
    return value


def check_positive(name: str, value: object) -> float:
    """A finite real number > 0."""
    value = check_real(name, value)
    if value <= 0:
        raise ParamError(name, "must be a finite number > 0", value)
    return value


#: The betas a loss accepts unless it declares its own ``beta_range``: the range at whose ends
#: every loss's flows were measured to end, from five starts on each model (docs: Accuracy, "The
#: range of β").  Above ~100 several losses are stiff in the logits (the Hessian grows like beta^2)
#: and some flows fail even with LSODA; DPO, checked against its closed forms, declares up to 1e6.
BETA_RANGE = (1e-6, 10.0)


def check_beta(value: object, bounds: tuple[float, float] = BETA_RANGE, name: str = "beta") -> float:
    """A loss's beta: a finite number in ``bounds`` (default :data:`BETA_RANGE`; a loss may declare its own)."""
    value = check_real(name, value)
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ParamError(
            name, f"must be a number in [{lo:g}, {hi:g}] (the range flowsim's results are checked in)", value
        )
    return value


def check_interval(name: str, value: object, low: float, high: float, *, closed: str = "right") -> float:
    """A finite real number in an interval whose ends are open or closed as ``closed`` says.

    ``closed`` is one of ``"right"`` (low, high], ``"left"`` [low, high), ``"both"`` or ``"neither"``.
    """
    value = check_real(name, value)
    lo_ok = value >= low if closed in ("left", "both") else value > low
    hi_ok = value <= high if closed in ("right", "both") else value < high
    if not (lo_ok and hi_ok):
        left = "[" if closed in ("left", "both") else "("
        right = "]" if closed in ("right", "both") else ")"
        raise ParamError(name, f"must be in {left}{low:g}, {high:g}{right}", value)
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        raise ParamError(name, f"must be one of {', '.join(map(repr, choices))}", value)
    return str(value)


def check_points(name: str, x: object) -> np.ndarray:
    """An array of shape (..., 2) of finite floats."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):  # strings, ragged lists: numpy's message names no parameter
        raise ParamTypeError(name, "must be an array of numbers of shape (..., 2)", x) from None
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ParamError(name, "must have shape (..., 2)", arr.shape)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr).all(axis=-1)][0] if arr.ndim > 1 else arr
        raise ParamError(name, "must be finite", bad.tolist())
    return arr


def check_int(name: str, value: object, low: int) -> int:
    """A whole number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParamError(name, "must be a whole number", value)
    if value < low:
        raise ParamError(name, f"must be a whole number >= {low}", value)
    return int(value)
