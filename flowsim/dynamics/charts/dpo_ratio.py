"""DPO on the ratio plane: the chart (x1^2, log x2), clocked by log x2, in closed form.

In t the flow is singular at its end: for beta < 2 it reaches x2 = 0 in finite time with
speed |dx2/dt| ~ x2^(beta - 1), and no power chart of x2 makes it smooth (the time left
behaves like x2^(2 - beta) plus x2^2 terms).  With z = (x1^2, log x2), the clock
tau = log(x2_0 / x2) and s = x2^b / (x1^b + x2^b),

    dz1/dtau = 2 x2^2,   dz2/dtau = -1,   dt/dtau = x2^2 / (beta s) = (x2^2 + x1^b x2^(2-b)) / beta,

sums of exponentials in tau, smooth all the way to the floor (and for every beta: for
beta >= 2, t grows without bound and the flow times out).  Registered for the exact pair
(``dpo``, ``ratio``) in :data:`flowsim.dynamics.charts.RATIO_CHARTS`.
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.dynamics.charts.ratio import RatioChartSpec

#: The exponent above which dt/dtau is capped (e^690 ~ 1e299, finite after the division by beta >= 1e-6).
EXP_CAP = 690.0


def dpo_chart_field(beta: float):
    """(z1, z2) -> (dz1/dtau, dz2/dtau, dt/dtau) for DPO at ``beta``: three exponentials, no cancellation."""

    def field(z1: float, z2: float) -> tuple[float, float, float]:
        u = math.exp(2.0 * z2)  # x2^2
        return 2.0 * u, -1.0, (u + _power_product(abs(z1), z2, beta)) / beta

    return field


def _power_product(z1: float, z2: float, beta: float) -> float:
    """x1^b x2^(2-b) = z1^(b/2) e^((2-b) z2), overflow-free at any beta.

    For large beta either factor alone can overflow where the product does not; then the
    product is taken as one exponential, capped at e^EXP_CAP: a flow that far has
    dt/dtau > 1e299 and is past any t_max, so only a trial stage of a step that is then
    rejected gets there.  Elsewhere the plain product (the same bits as always).
    """
    a = 0.5 * beta * math.log(z1) if z1 > 0 else -math.inf
    b = (2.0 - beta) * z2
    if abs(a) < EXP_CAP and abs(b) < EXP_CAP and a + b < EXP_CAP:
        return z1 ** (0.5 * beta) * math.exp(b)
    return math.exp(min(a + b, EXP_CAP))


def dpo_vector_field(beta: float):
    """:func:`dpo_chart_field` over rows: (tau, y (3, n), rows) -> dy/dtau (3, n), for the batched engine."""

    def field(tau: np.ndarray, y: np.ndarray, rows: np.ndarray) -> np.ndarray:
        u = np.exp(2.0 * y[1])
        out = np.empty_like(y)
        out[0] = 2.0 * u
        out[1] = -1.0
        out[2] = (u + power_products(np.abs(y[0]), y[1], beta)) / beta
        return out

    return field


def power_products(z1: np.ndarray, z2: np.ndarray, beta: float) -> np.ndarray:
    """:func:`_power_product` elementwise (the same expressions; numpy's and math's exp may differ by an ulp)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        a = 0.5 * beta * np.log(z1)
        b = (2.0 - beta) * z2
        plain = (np.abs(a) < EXP_CAP) & (np.abs(b) < EXP_CAP) & (a + b < EXP_CAP)
        if plain.all():  # the common case: no beta near the ends of its range
            return z1 ** (0.5 * beta) * np.exp(b)
        return np.where(plain, z1 ** (0.5 * beta) * np.exp(b), np.exp(np.minimum(a + b, EXP_CAP)))


#: (2, 0): z1 = x1^2, z2 = log x2; the clock is z2 (log x2 decreases at the rate b s / x2^2 > 0).
#: Derived for DPO's default divergence without label smoothing only (``applies``).  Its
#: gradient never vanishes (|grad L| = b s sqrt(1/x1^2 + 1/x2^2) > 0) and x1 only grows
#: (dx1/dt = b s / x1 > 0), so neither a stationary test nor a p_w minimum is looked for.
SPEC = RatioChartSpec(
    exponents=(2.0, 0.0),
    clock=1,
    field=lambda loss: dpo_chart_field(loss.beta),
    never_stalls=True,
    p_w_rises=True,
    applies=lambda loss: (
        getattr(loss, "f_divergence", "reverse_kl") == "reverse_kl" and getattr(loss, "label_smoothing", 0.0) == 0.0
    ),
)
