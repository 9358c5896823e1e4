"""Argument checks that fail early with messages naming the parameter, the rule and the value.

Every public constructor in flowsim validates through these helpers, so a bad value
is reported as ``ValueError: beta must be a finite number > 0; got -1.0`` rather than
as a traceback from inside numpy or scipy.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise TypeError(f"{name} must be a real number; got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return value


def check_positive(name: str, value: object) -> float:
    """A finite real number > 0."""
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
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
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}; got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


def check_points(name: str, x: object) -> np.ndarray:
    """An array of shape (..., 2) of finite floats."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., 2); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr).all(axis=-1)][0] if arr.ndim > 1 else arr
        raise ValueError(f"{name} must be finite; got {bad.tolist()}")
    return arr
