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

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from flowsim._validation import ParamError, check_interval, check_positive, check_real
from flowsim.analysis.tables import _as_bool, check_flows
from flowsim.analysis.verdicts import NOT, PARTLY, SUBSETS, SUPPORTED, Claim, Metrics, _fmt, _ge, _le
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import REGIONS
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.ratio import RatioPolicy


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
    flowsim._validation.ParamError: dominance must be a finite number >= 1 (a speed ratio); got 0.5
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
                raise ParamError(name, "must be a finite number >= 1 (a speed ratio)", value)
            set_(self, name, value)
        tol = check_real("stationary_tol", self.stationary_tol)
        if tol < 0:
            raise ParamError("stationary_tol", "must be a finite number >= 0", tol)
        set_(self, "stationary_tol", tol)
        if self.rtol_partly < self.rtol_supported:
            raise ParamError("rtol_partly", f"must be >= rtol_supported ({self.rtol_supported!r})", self.rtol_partly)
        if self.share_supported < self.share_partly:
            raise ParamError(
                "share_supported", f"must be >= share_partly ({self.share_partly!r})", self.share_supported
            )

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
        "§3.3.2, Remark 3 (law derived in flowsim.dynamics.closed_forms.dpo_ratio)",
        "worst |x_final - x_predicted| / R over finished flows",
        rule_law,
    ),
)  # fmt: skip

#: Claims by id.
CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


# -- measurements --------------------------------------------------------------------------------------


def _share(mask: np.ndarray, sel: np.ndarray | None = None) -> float:
    m = mask if sel is None else mask[sel]
    return float(m.mean()) if m.size else float("nan")


def _median(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b != 0 else float("nan")


def _span(med: dict[str, float]) -> str:
    """'from a (region) to b (region)' for a dict of region medians."""
    if not med:
        return "n/a (no finished flows)"
    lo, hi = min(med, key=med.__getitem__), max(med, key=med.__getitem__)
    return f"from {_fmt(med[lo])} ({lo}) to {_fmt(med[hi])} ({hi})"


def _subsample(pts: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows of ``pts``, evenly spaced (deterministic)."""
    return pts if len(pts) <= n else pts[np.linspace(0, len(pts) - 1, n).astype(np.int64)]


def central_difference(f, x: np.ndarray, rel_step: float = 2.0**-17) -> np.ndarray:
    """Gradient of a scalar field ``f`` at points ``x`` (n, 2) by central differences.

    The step is ``rel_step`` times each coordinate (about eps^(1/3)), and the difference
    quotient uses the step as actually represented, (x + h) - (x - h).
    """
    out = np.empty_like(x)
    for i in range(2):
        xp, xm = x.copy(), x.copy()
        xp[:, i] += rel_step * x[:, i]
        xm[:, i] -= rel_step * x[:, i]
        out[:, i] = (f(xp) - f(xm)) / (xp[:, i] - xm[:, i])
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / |b|, 0 where both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(a - b) / np.abs(b)
    return np.where(a == b, 0.0, r)


def _paper_grad(x: np.ndarray, b: float) -> np.ndarray:
    """Theorem 1, eq. (2), as printed (powers x^b, not the stable form of DPO.grad)."""
    x1, x2 = x[:, 0], x[:, 1]
    with np.errstate(all="ignore"):
        den = x1**b + x2**b
        return np.stack([-b * x2**b / (x1 * den), b * x2 ** (b - 1) / den], -1)


def _stationary(beta: float, upper: np.ndarray, tol: float, n: int = 400) -> tuple[float, int]:
    """(min |grad L|, number of points with |grad L| <= tol) on a log-spaced n x n mesh of the box."""
    g1, g2 = np.meshgrid(np.geomspace(upper[0] * 1e-6, upper[0], n), np.geomspace(upper[1] * 1e-6, upper[1], n))
    norm = np.hypot(*np.moveaxis(ratio_objective(beta).grad(np.stack([g1, g2], -1)), -1, 0))
    return float(norm.min()), int((norm <= tol).sum())


#: At most this many points go into the finite-difference checks of C1 and C2.
MAX_FD_POINTS = 20_000
BOTTOM_ROW: tuple[str, ...] = ("bottom-left", "bottom", "bottom-right")


def ratio_objective(beta: float) -> Objective:
    """DPO on the ratio plane as a function of x (the references only bound the domain)."""
    return Objective(DPO(beta), RatioPolicy(np.ones(2), np.ones(2)))


class _Group:
    """The arrays of one (combination, subset) that the claim metrics read."""

    def __init__(self, g: pd.DataFrame) -> None:
        self.beta = float(g["beta"].iloc[0])
        self.loss = ratio_objective(self.beta)  # in ratio coordinates the loss does not depend on the references
        self.x0 = g[["x1_0", "x2_0"]].to_numpy(float)
        self.xf = g[["x1_final", "x2_final"]].to_numpy(float)
        self.p0 = g[["p1_0", "p2_0"]].to_numpy(float)
        self.pf = g[["p1_final", "p2_final"]].to_numpy(float)
        self.refs = g[["ref_w", "ref_l"]].to_numpy(float)
        self.status = g["status"].to_numpy(str)
        self.region = g["region"].to_numpy(str)
        self.t_stop = g["t_stop"].to_numpy(float)
        self.t_w, self.t_l = g["t_w"].to_numpy(float), g["t_l"].to_numpy(float)
        self.ok = self.status != "failed"
        self.moving = self.ok & (self.t_stop > 0)
        self.v = -self.loss.grad(self.x0) * self.refs  # dp/dt at the start
        self.n = len(g)


def _theorem1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    pts = np.concatenate([d.x0, d.xf[d.ok]])
    pts = _subsample(pts[np.all(np.isfinite(pts) & (pts > 0), axis=1)], MAX_FD_POINTS)
    fd = central_difference(d.loss.value, pts)
    worst = float(_rel(d.loss.grad(pts), fd).max())
    eq2 = _paper_grad(pts, d.beta)
    fin = np.all(np.isfinite(eq2), axis=1)
    eq2_dev = float(_rel(eq2[fin], d.loss.grad(pts[fin])).max()) if fin.any() else float("nan")
    details = (
        f"{len(pts)} points; eq. (2) as printed vs DPO.grad: worst {_fmt(eq2_dev)} "
        f"({int(fin.sum())} points where x^b is finite)"
    )
    return worst, {"worst": worst}, details


def _corollary1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    pts = _subsample(d.x0, MAX_FD_POINTS)
    fd = central_difference(d.loss.value, pts)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(np.abs(fd[:, 0] / fd[:, 1]) / (pts[:, 1] / pts[:, 0]) - 1.0)
    worst = float(np.nanmax(np.where(np.isnan(dev), np.inf, dev)))
    g = d.loss.grad(pts)
    exact = float(np.max(np.abs(np.abs(g[:, 0] / g[:, 1]) * pts[:, 0] / pts[:, 1] - 1.0)))
    pr = np.abs(d.v[:, 0] / d.v[:, 1])
    details = (
        f"{len(pts)} initial points; with DPO.grad: worst {_fmt(exact)}; in probabilities the rate "
        f"|dp1/dt|/|dp2/dt| = (ref_w/ref_l) x2/x1 has median {_fmt(_median(pr))}"
    )
    return worst, {"worst": worst}, details


def _remark1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    init = _share(d.x0[:, 1] < d.x0[:, 0])
    fin = _share(d.xf[:, 1] < d.xf[:, 0], d.ok)
    above = _share((d.xf[:, 0] > 1) & (d.xf[:, 1] < 1), d.ok)
    details = (
        f"share x2/x1 < 1 at the start {_fmt(init)}, at the stop {_fmt(fin)}; "
        f"share ending with x1 > 1 and x2 < 1 (the remark's argument) {_fmt(above)}"
    )
    return init, {"share_initial": init, "share_final": fin}, details


def _remark2(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    mv = d.moving
    dp = np.abs(d.pf - d.p0)[mv]
    dx = np.abs(d.xf - d.x0)[mv]
    net = _share(dp[:, 1] > dp[:, 0])
    init = _share(np.abs(d.v[:, 1]) > np.abs(d.v[:, 0]), mv)
    init_x = _share(d.x0[:, 0] > d.x0[:, 1], mv)
    with np.errstate(divide="ignore", invalid="ignore"):
        rp, rx = _median(dp[:, 1] / dp[:, 0]), _median(dx[:, 1] / dx[:, 0])
    contested = d.ok & (d.t_w != 0) & (d.t_l != 0)
    l_first = _share(np.nan_to_num(d.t_l, nan=np.inf) < np.nan_to_num(d.t_w, nan=np.inf), contested)
    details = (
        f"{int(mv.sum())} moving flows; |Δp2| > |Δp1|: {_fmt(net)} (median |Δp2|/|Δp1| {_fmt(rp)}); "
        f"|dp2/dt| > |dp1/dt| at t=0: {_fmt(init)}; in ratios: |dx2/dt| > |dx1/dt| at t=0: {_fmt(init_x)}, "
        f"median |Δx2|/|Δx1| {_fmt(rx)}; t_l < t_w where neither target is met at t=0: {_fmt(l_first)}"
    )
    return net, {"share_net": net, "share_initial": init}, details


def _corner(d: _Group, th: ClaimThresholds, cells: tuple[str, ...], fast: int) -> tuple[float, dict, str]:
    """C5a (fast = 0: p1 moves) and C5c (fast = 1: p2 moves) in the region ``cells``."""
    sel = np.isin(d.region, cells)
    s_fast, s_slow = np.abs(d.v[:, fast]), np.abs(d.v[:, 1 - fast])
    share = _share(s_fast >= th.dominance * s_slow, sel)
    ratio = _ratio(_median(s_fast[sel]), _median(s_fast[~sel]))
    x_fast, x_slow = d.x0[:, 1 - fast], d.x0[:, fast]  # |dx_fast/dt| / |dx_slow/dt| = x_slow' / x_fast'
    share_x = _share(x_fast >= th.dominance * x_slow, sel)
    dp = np.abs(d.pf - d.p0)
    path = _share(dp[:, fast] > dp[:, 1 - fast], sel & d.moving)
    p = ("p1", "p2")[fast]
    details = (
        f"{int(sel.sum())} starts in {'/'.join(cells)}; median |d{p}/dt| there / elsewhere {_fmt(ratio)}; "
        f"same share in ratios x {_fmt(share_x)}; share whose whole path moves {p} more {_fmt(path)}"
    )
    return share, {"share_dominant": share, "speed_ratio": ratio}, details


def _saddle(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    sel = d.region == "top-right"
    speed = np.hypot(d.v[:, 0], d.v[:, 1])
    ratio = _ratio(_median(speed[sel]), _median(speed[~sel]))
    upper = (1.0 / d.refs).max(axis=0)
    gmin, n_stat = _stationary(d.beta, upper, th.stationary_tol)
    t_ratio = _ratio(_median(d.t_stop[sel & d.ok]), _median(d.t_stop[~sel & d.ok]))
    details = (
        f"{int(sel.sum())} starts in top-right; |grad L| = b s sqrt(1/x1^2 + 1/x2^2) > 0 for all x > 0: "
        f"min {_fmt(gmin)} on a 400x400 log mesh of (0, {upper[0]:g}] x (0, {upper[1]:g}], {n_stat} stationary "
        f"points; median t_stop there / elsewhere {_fmt(t_ratio)}"
    )
    return ratio, {"speed_ratio": ratio, "n_stationary": float(n_stat)}, details


def _remark3(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    ok = d.ok
    p1f = d.pf[:, 0]
    med = {r: _median(p1f[ok & (d.region == r)]) for r in REGIONS}
    med = {r: v for r, v in med.items() if np.isfinite(v)}
    spread = max(med.values()) - min(med.values()) if med else float("nan")
    bl, tr = d.region == "bottom-left", d.region == "top-right"
    gap = _median(p1f[ok & ~bl]) - _median(p1f[ok & bl])
    t_ratio = _ratio(_median(d.t_stop[ok & tr]), _median(d.t_stop[ok & ~tr]))
    tmed = {r: _median(d.t_stop[ok & (d.region == r)]) for r in REGIONS}
    tmed = {r: v for r, v in tmed.items() if np.isfinite(v)}
    details = (
        f"region medians of p1_final {_span(med)}; bottom-left {_fmt(_median(p1f[ok & bl]))} vs rest "
        f"{_fmt(_median(p1f[ok & ~bl]))}; top-right median t_stop / rest {_fmt(t_ratio)}; "
        f"region medians of t_stop {_span(tmed)}"
    )
    metrics = {"p1_spread": spread, "p1_gap_bottom_left": gap, "t_stop_ratio_top_right": t_ratio}
    return spread, metrics, details


def predicted_final(x0: np.ndarray, refs: np.ndarray, stop: StopRule) -> tuple[np.ndarray, np.ndarray]:
    """The DPO flow's end point from the conserved radius R^2 = x1^2 + x2^2, ignoring t_max.

    Returns (x_final (n, 2), status (n,)): ``converged`` at (sqrt(R^2 - f^2), f) with the
    floor f = p2_floor / ref_l when that is inside the cap 1/ref_w, else ``capped`` at
    (1/ref_w, sqrt(R^2 - 1/ref_w^2)); a start already past the floor or cap stays put.
    """
    x1, x2 = x0[:, 0], x0[:, 1]
    cap, floor = 1.0 / refs[:, 0], stop.p2_floor / refs[:, 1]
    r2 = x1 * x1 + x2 * x2
    conv = r2 - floor * floor <= cap * cap
    with np.errstate(invalid="ignore"):
        xf = np.where(
            conv[:, None],
            np.stack([np.sqrt(x1 * x1 + (x2 - floor) * (x2 + floor)), floor], -1),
            np.stack([cap, np.sqrt(x2 * x2 + (x1 - cap) * (x1 + cap))], -1),
        )
    status = np.where(conv, "converged", "capped").astype(object)
    at_floor, at_cap = x2 <= floor, x1 >= cap
    still = at_floor | at_cap
    xf[still] = x0[still]
    status[at_floor] = "converged"
    status[~at_floor & at_cap] = "capped"
    return xf, status


def standard_dpo_law(flows: pd.DataFrame, p2_floor: float = 1e-6) -> dict[str, float]:
    """Check the standard-DPO consequences of the conservation law against a sweep's rows.

    With the reference at the SFT model every flow starts at x = (1, 1), so R^2 = 2: by
    :func:`predicted_final` it converges (x2 reaches the floor) iff
    2 - (p2_floor/p2_0)^2 <= 1/p1_0^2, ending at p1 = p1_0 sqrt(2 - (p2_floor/p2_0)^2) ~ sqrt(2) p1_0;
    otherwise it is capped at p1 = 1 with p2 = p2_0 sqrt(2 - 1/p1_0^2).
    """
    p0 = flows[["p1_0", "p2_0"]].to_numpy(float)
    xf, status = predicted_final(np.ones_like(p0), p0, StopRule(p2_floor=p2_floor))
    p_law = xf * p0
    conv = status == "converged"
    done = flows["status"].isin(["converged", "capped"]).to_numpy()
    pf = flows[["p1_final", "p2_final"]].to_numpy(float)
    return {
        "share_capped_law": float(np.mean(~conv)),
        "share_capped_data": float(np.mean(flows["status"] == "capped")),
        "status_mismatches": int(np.sum(done & ((flows["status"] == "capped").to_numpy() != ~conv))),
        "max_rel_err_p1": float(np.max(np.abs(pf[done, 0] / p_law[done, 0] - 1))),
        "max_rel_err_p2": float(np.max(np.abs(pf[done, 1] / p_law[done, 1] - 1))),
        "max_gain_p1": float(np.max(flows["p1_final"] / flows["p1_0"])),
    }


def _law(d: _Group, th: ClaimThresholds, stop: StopRule) -> tuple[float, dict, str]:
    fin = np.isin(d.status, ("converged", "capped"))
    # A circle that meets the cap and the floor together (within 1e-9 R^2) ends at an
    # ill-conditioned corner where either status is right: such starts are left out.
    x0, cap, floor = d.x0, 1.0 / d.refs[:, 0], stop.p2_floor / d.refs[:, 1]
    r2 = x0[:, 0] ** 2 + x0[:, 1] ** 2
    tie = np.abs(r2 - floor**2 - cap**2) <= 1e-9 * r2
    n_tie = int((fin & tie).sum())
    fin &= ~tie
    xf, status = predicted_final(d.x0[fin], d.refs[fin], stop)
    r = np.hypot(d.x0[fin, 0], d.x0[fin, 1])
    dev = np.hypot(*(d.xf[fin] - xf).T) / r
    worst = float(dev.max()) if dev.size else float("nan")
    mismatch = int((status != d.status[fin]).sum())
    p1_law = np.minimum(d.refs[fin, 0] * r, 1.0)
    p1_dev = float(np.abs(d.pf[fin, 0] - p1_law).max()) if dev.size else float("nan")
    details = (
        f"{int(fin.sum())} finished flows ({int((d.status == 'timeout').sum())} timeouts left out, and {n_tie} "
        "starts on the circle through the corner (cap, floor), where either status is right); "
        f"{mismatch} with another status than predicted; max |p1_final - min(ref_w R, 1)| {_fmt(p1_dev)}"
    )
    return worst, {"worst": worst, "n_status_mismatch": float(mismatch)}, details


def _measure(d: _Group, th: ClaimThresholds, stop: StopRule) -> dict[str, tuple[float, dict, str]]:
    return {
        "C1": _theorem1(d, th),
        "C2": _corollary1(d, th),
        "C3": _remark1(d, th),
        "C4": _remark2(d, th),
        "C5a": _corner(d, th, ("top-left",), 0),
        "C5b": _saddle(d, th),
        "C5c": _corner(d, th, BOTTOM_ROW, 1),
        "C6": _remark3(d, th),
        "C6b": _law(d, th, stop),
    }


def evaluate_claims(flows: pd.DataFrame, stop: StopRule, thresholds: ClaimThresholds | None = None) -> pd.DataFrame:
    """Measure each claim of the paper per parameter combination and subset, and judge it.

    Parameters
    ----------
    flows : DataFrame
        Rows of flows.csv (see :func:`check_flows`), DPO with columns beta, ref_w, ref_l.
    stop : StopRule
        The stop rule the flows were computed with (C6b needs its floor).
    thresholds : ClaimThresholds, optional
        The rules' thresholds (defaults: ``ClaimThresholds()``).

    Returns
    -------
    DataFrame
        One row per (claim, combination, subset "all"/"feasible"), claims in the order of
        :data:`flowsim.claims.CLAIMS`, with columns claim, the parameter columns,
        reference, subset, title, paper, where, metric, value, details, threshold, verdict.
        The rules are in :mod:`flowsim.claims`.
    """
    params = check_flows(flows, needs=("beta", "ref_w", "ref_l"))
    if not isinstance(stop, StopRule):
        raise ValueError(f"stop must be a flowsim.dynamics.record.StopRule; got {type(stop).__name__}")
    th = ClaimThresholds() if thresholds is None else thresholds
    if not isinstance(th, ClaimThresholds):
        raise ValueError(f"thresholds must be a ClaimThresholds; got {type(th).__name__}")
    work = flows.assign(_feasible=_as_bool(flows["feasible"]))
    rows = []
    keys = [p for p in params if p != "reference"]
    for key, g in work.groupby([*keys, "reference"], sort=True, dropna=False):
        key, reference = (key[:-1], key[-1]) if isinstance(key, tuple) else ((), key)
        for subset in SUBSETS:
            sub = g if subset == "all" else g[g["_feasible"].to_numpy()]
            found = _measure(_Group(sub), th, stop) if len(sub) else {}
            for c in CLAIMS:
                value, metrics, details = found.get(c.id, (np.nan, _NanMetrics(), "no initial conditions here"))
                verdict, text = c.rule(metrics, th)
                rows.append(
                    {"claim": c.id, **dict(zip(keys, key, strict=True)), "reference": reference, "subset": subset,
                     "title": c.title, "paper": c.paper, "where": c.where, "metric": c.metric, "value": value,
                     "details": details, "threshold": text, "verdict": verdict}
                )  # fmt: skip
    out = pd.DataFrame(rows)
    out["_c"] = out["claim"].map([c.id for c in CLAIMS].index)
    return out.sort_values(["_c", *keys, "reference"], kind="stable").drop(columns="_c").reset_index(drop=True)


class _NanMetrics(dict):
    """Metrics for an empty subset: every key reads as NaN."""

    def __missing__(self, key: str) -> float:
        return float("nan")
