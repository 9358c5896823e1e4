"""The paper's claims, their thresholds, and the rules that turn measurements into verdicts.

Each claim of the seed paper that flowsim tests has an id, a short quote and a *rule*: a
small pure function ``rule(metrics, thresholds) -> (verdict, threshold_text)`` of numbers
measured by :func:`flowsim.analysis.evaluate_claims` and of a :class:`ClaimThresholds`.
A verdict is one of :data:`VERDICTS`; nothing is typed in by hand.

Velocities are those of the flow dx/dt = -grad L(x) at the initial conditions, read in
probabilities: dp/dt = ref * dx/dt (so in the paper's setting, references 1, p = x).
The rules, with the default thresholds:

* **C1 Theorem 1** and **C2 Corollary 1** (``rule_identity``): the worst relative
  deviation between formula and finite differences is <= ``rtol_supported`` (1e-6):
  supported; <= ``rtol_partly`` (1e-3): partly; else not.
* **C3 Remark 1** (``rule_remark1``): share of initial points with x2/x1 < 1 >=
  ``share_supported`` (0.9): supported; else the share of *final* points >= 0.9: partly
  (true only after the flow); else not.
* **C4 Remark 2** (``rule_faster``): "faster" is read as a larger mean speed over the same
  time, i.e. |Δp2| > |Δp1| between start and stop, and as a larger speed at the start,
  |dp2/dt| > |dp1/dt|.  Both shares >= ``share_supported`` (0.9): supported; either >=
  ``share_partly`` (0.5): partly; else not.
* **C5a top-left** / **C5c bottom** (``rule_corner``): share of the corner's initial
  points where the named probability moves >= ``dominance`` (2) times faster than the
  other >= 0.9 *and* its median speed there >= ``speed_factor`` (2) times the median
  elsewhere ("rapidly"): supported; share >= 0.5: partly; else not.
* **C5b top-right** (``rule_saddle``): the corner's median speed |dp/dt| <= 1/``speed_factor``
  times the median elsewhere (slow) and at least one stationary point (|grad L| <=
  ``stationary_tol`` = 1e-12 on a fine mesh of the domain): supported; one of the two:
  partly; neither: not.
* **C6 Remark 3** (``rule_sensitivity``): three signs that the start decides the outcome:
  region medians of final p1 differ by >= ``p1_gap`` (0.2); bottom-left's median final p1
  is >= 0.2 below the rest's; top-right's median t_stop is >= ``speed_factor`` (2) times
  the rest's.  All three: supported; one or two: partly; none: not.
* **C6b conservation law** (``rule_law``): worst distance of the final points from the
  point predicted by the conserved radius, relative to the radius, <= 1e-6 and every
  status as predicted: supported; <= 1e-3: partly; else not.

A corner with no initial conditions in a subset gives "not supported" (no evidence): with
the default cuts the top-right corner p1, p2 >= 2/3 lies wholly outside p1 + p2 <= 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from flowsim._validation import check_interval, check_positive, check_real

SUPPORTED, PARTLY, NOT = "supported", "partly supported", "not supported"
#: The possible verdicts, best first.
VERDICTS: tuple[str, ...] = (SUPPORTED, PARTLY, NOT)


@dataclass(frozen=True)
class ClaimThresholds:
    """Every threshold the verdict rules use (the ``[claims]`` table of an experiment file).

    Parameters
    ----------
    rtol_supported, rtol_partly : float, default 1e-6 and 1e-3
        Worst relative deviation for an identity (C1, C2, C6b) to be supported / partly.
    share_supported, share_partly : float, default 0.9 and 0.5
        Share of points for a "for all points" statement to be supported / partly.
    dominance : float, default 2.0
        "Minor change" in a corner: the other probability moves at least this many times
        slower than the named one (C5a, C5c).  >= 1.
    speed_factor : float, default 2.0
        "Rapid" / "slow": a region's median speed (or time) differs from the median over
        the other regions by at least this factor (C5a, C5b, C5c, C6).  >= 1.
    p1_gap : float, default 0.2
        A difference in final p1 (probability) large enough to call outcomes different (C6).
    stationary_tol : float, default 1e-12
        |grad L| at or below which a mesh point counts as stationary (C5b).  >= 0.

    Examples
    --------
    >>> ClaimThresholds(share_supported=0.95).share_partly
    0.5
    >>> ClaimThresholds(dominance=0.5)
    Traceback (most recent call last):
    ...
    ValueError: dominance must be a finite number >= 1 (a speed ratio); got 0.5
    """

    rtol_supported: float = 1e-6
    rtol_partly: float = 1e-3
    share_supported: float = 0.9
    share_partly: float = 0.5
    dominance: float = 2.0
    speed_factor: float = 2.0
    p1_gap: float = 0.2
    stationary_tol: float = 1e-12

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rtol_supported", check_positive("rtol_supported", self.rtol_supported))
        set_(self, "rtol_partly", check_positive("rtol_partly", self.rtol_partly))
        set_(self, "share_partly", check_interval("share_partly", self.share_partly, 0.0, 1.0))
        set_(self, "share_supported", check_interval("share_supported", self.share_supported, 0.0, 1.0))
        set_(self, "p1_gap", check_interval("p1_gap", self.p1_gap, 0.0, 1.0))
        for name in ("dominance", "speed_factor"):
            value = check_real(name, getattr(self, name))
            if value < 1:
                raise ValueError(f"{name} must be a finite number >= 1 (a speed ratio); got {value!r}")
            set_(self, name, value)
        tol = check_real("stationary_tol", self.stationary_tol)
        if tol < 0:
            raise ValueError(f"stationary_tol must be a finite number >= 0; got {tol!r}")
        set_(self, "stationary_tol", tol)
        if self.rtol_partly < self.rtol_supported:
            raise ValueError(
                f"rtol_partly must be >= rtol_supported ({self.rtol_supported!r}); got {self.rtol_partly!r}"
            )
        if self.share_supported < self.share_partly:
            raise ValueError(
                f"share_supported must be >= share_partly ({self.share_partly!r}); got {self.share_supported!r}"
            )

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


Metrics = Mapping[str, float]
Rule = Callable[[Metrics, ClaimThresholds], tuple[str, str]]


def _ge(value: float, bound: float) -> bool:
    return not math.isnan(value) and value >= bound


def _le(value: float, bound: float) -> bool:
    return not math.isnan(value) and value <= bound


def rule_identity(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C1, C2: ``m["worst"]``, the worst relative deviation of an identity."""
    text = f"supported if worst <= {th.rtol_supported:g}; partly if <= {th.rtol_partly:g}"
    if _le(m["worst"], th.rtol_supported):
        return SUPPORTED, text
    return (PARTLY if _le(m["worst"], th.rtol_partly) else NOT), text


def rule_remark1(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C3: ``m["share_initial"]`` and ``m["share_final"]``, shares of points with x2/x1 < 1."""
    text = f"supported if initial share >= {th.share_supported:g}; partly if final share >= {th.share_supported:g}"
    if _ge(m["share_initial"], th.share_supported):
        return SUPPORTED, text
    return (PARTLY if _ge(m["share_final"], th.share_supported) else NOT), text


def rule_faster(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C4: ``m["share_net"]`` (|Δp2| > |Δp1|) and ``m["share_initial"]`` (|dp2/dt| > |dp1/dt| at t=0)."""
    hi, lo = th.share_supported, th.share_partly
    text = f"supported if both shares >= {hi:g}; partly if either >= {lo:g}"
    net, init = m["share_net"], m["share_initial"]
    if _ge(net, hi) and _ge(init, hi):
        return SUPPORTED, text
    return (PARTLY if _ge(net, lo) or _ge(init, lo) else NOT), text


def rule_corner(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C5a, C5c: ``m["share_dominant"]`` and ``m["speed_ratio"]`` (corner median / rest median)."""
    text = (
        f"supported if share moving >= {th.dominance:g}x faster >= {th.share_supported:g} and speed ratio "
        f">= {th.speed_factor:g}; partly if share >= {th.share_partly:g}"
    )
    share = m["share_dominant"]
    if _ge(share, th.share_supported) and _ge(m["speed_ratio"], th.speed_factor):
        return SUPPORTED, text
    return (PARTLY if _ge(share, th.share_partly) else NOT), text


def rule_saddle(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C5b: ``m["speed_ratio"]`` (top-right median |dp/dt| / rest) and ``m["n_stationary"]``."""
    text = f"supported if speed ratio <= 1/{th.speed_factor:g} and stationary points > 0; partly if one holds"
    slow = _le(m["speed_ratio"], 1.0 / th.speed_factor)
    saddle = _ge(m["n_stationary"], 1.0)
    return (SUPPORTED if slow and saddle else PARTLY if slow or saddle else NOT), text


def rule_sensitivity(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C6: ``m["p1_spread"]``, ``m["p1_gap_bottom_left"]``, ``m["t_stop_ratio_top_right"]``."""
    text = (
        f"count of: p1_final spread >= {th.p1_gap:g}, bottom-left gap >= {th.p1_gap:g}, "
        f"top-right t_stop ratio >= {th.speed_factor:g}; 3: supported, 1-2: partly"
    )
    n = (
        _ge(m["p1_spread"], th.p1_gap)
        + _ge(m["p1_gap_bottom_left"], th.p1_gap)
        + _ge(m["t_stop_ratio_top_right"], th.speed_factor)
    )
    return (SUPPORTED if n == 3 else PARTLY if n else NOT), text


def rule_law(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C6b: ``m["worst"]`` (distance / radius) and ``m["n_status_mismatch"]``."""
    text = f"supported if worst <= {th.rtol_supported:g} and no status differs; partly if worst <= {th.rtol_partly:g}"
    if _le(m["worst"], th.rtol_supported) and m["n_status_mismatch"] == 0:
        return SUPPORTED, text
    return (PARTLY if _le(m["worst"], th.rtol_partly) else NOT), text


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: what it says, where, what is measured and how it is judged."""

    id: str
    title: str
    paper: str
    where: str
    metric: str
    rule: Rule


#: The claims in report order.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "C1", "Theorem 1: the partial derivatives",
        "dL/dx1 = -b x2^b / (x1 (x1^b + x2^b)),  dL/dx2 = b x2^(b-1) / (x1^b + x2^b)",
        "§3.1, Theorem 1, eq. (2)",
        "worst relative difference, DPO.grad vs central differences of DPO.value, at initial and final points",
        rule_identity,
    ),
    Claim(
        "C2", "Corollary 1: the update rate x2/x1",
        "|dL/dx1 / dL/dx2| = x2/x1",
        "§3.1, Corollary 1, eq. (3)",
        "worst relative deviation of |dL/dx1 / dL/dx2| (central differences) from x2/x1",
        rule_identity,
    ),
    Claim(
        "C3", "Remark 1: the update rate is below 1",
        "For any pairwise preference data, the update rate x2/x1 < 1 holds.",
        "§3.1, Remark 1",
        "share of initial points with x2/x1 < 1 (and of final points, in details)",
        rule_remark1,
    ),
    Claim(
        "C4", "Remark 2: p(y_l) falls faster than p(y_w) rises",
        "the DPO loss function decreases the probability of producing human dispreferred data at a faster "
        "rate than it increases the probability of producing preferred data",
        "Abstract; §3.3.1, Remark 2",
        "share of flows with |Δp2| > |Δp1| from start to stop (equal time, so larger mean speed)",
        rule_faster,
    ),
    Claim(
        "C5a", "Top-left corner: p1 rises fast, p2 barely moves",
        "When x1 is extremely small and x2 is extremely large ... the gradient flow of DPO tends to rapidly "
        "increase x1 while causing only minor changes to x2.",
        "§3.2, top-left of Fig. 1(b)",
        "share of top-left starts with |dp1/dt| >= dominance * |dp2/dt|",
        rule_corner,
    ),
    Claim(
        "C5b", "Top-right corner: small change, saddle points",
        "When both x1 and x2 are extremely large ... the overall change is relatively minor, potentially "
        "resulting in difficulty escaping saddle points.",
        "§3.2, top-right of Fig. 1(b); Remark 3",
        "median |dp/dt| at top-right starts / median at other starts",
        rule_saddle,
    ),
    Claim(
        "C5c", "Bottom: p2 falls fast, p1 barely moves",
        "When x2 is extremely small ... the gradient flow of DPO tends to rapidly decrease x2 while causing "
        "only minor changes to x1.",
        "§3.2, lower part of Fig. 1(b)",
        "share of bottom-row starts with |dp2/dt| >= dominance * |dp1/dt|",
        rule_corner,
    ),
    Claim(
        "C6", "Remark 3: the SFT start decides the outcome",
        "The initial states in the gradient vector field have a significant impact on the final optimization "
        "results. [lower-left: low p1; upper-right: sluggish convergence]",
        "§3.3.2, Remark 3",
        "spread (max - min) of the regions' median final p1",
        rule_sensitivity,
    ),
    Claim(
        "C6b", "Remark 3, exactly: final point from the conserved radius",
        "(derived here, not in the paper) x1^2 + x2^2 = R^2 is conserved, so the start fixes the end: "
        "p1_final = min(ref_w R, 1)",
        "§3.3.2, Remark 3 (law derived in flowsim.exact)",
        "worst |x_final - x_predicted| / R over finished flows",
        rule_law,
    ),
)  # fmt: skip

#: Claims by id.
CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}

__all__ = [
    "CLAIMS", "CLAIMS_BY_ID", "NOT", "PARTLY", "SUPPORTED", "VERDICTS", "Claim", "ClaimThresholds",
    "rule_corner", "rule_faster", "rule_identity", "rule_law", "rule_remark1", "rule_saddle", "rule_sensitivity",
]  # fmt: skip
