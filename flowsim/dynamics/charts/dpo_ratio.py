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

from flowsim.dynamics.charts.ratio import RatioChartSpec


def dpo_chart_field(beta: float):
    """(z1, z2) -> (dz1/dtau, dz2/dtau, dt/dtau) for DPO at ``beta``: three exponentials, no cancellation."""

    def field(z1: float, z2: float) -> tuple[float, float, float]:
        u = math.exp(2.0 * z2)  # x2^2
        return 2.0 * u, -1.0, (u + abs(z1) ** (0.5 * beta) * math.exp((2.0 - beta) * z2)) / beta

    return field


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
