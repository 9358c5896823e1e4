"""log-softmax and softmax over the last axis, in plain numpy.

scipy.special's versions validate and dispatch through the array API on every call, which
costs more than the arithmetic for the short vectors an integrator evaluates one at a time.
These subtract the maximum first, so no exponential overflows.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z - logsumexp(z) over the last axis."""
    z = np.asarray(z, dtype=float)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """exp(z) / sum(exp(z)) over the last axis."""
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
