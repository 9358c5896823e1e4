"""The paper's claims, their thresholds, and the rules that turn measurements into verdicts.

Each claim of the seed paper that flowsim tests is a :class:`~flowsim.analysis.verdicts.Claim`:
an id, the paper's words and section, the models and losses it speaks of, a *measurement*
of one group of flows (one parameter combination and subset; its docstring says what
outcome would make the claim fail) and a *rule*, a small pure function
``rule(metrics, thresholds) -> (verdict, threshold_text)`` fixed in code before any data is
read.  A verdict is one of :data:`~flowsim.analysis.verdicts.VERDICTS`:

* ``not applicable`` -- no evidence: an empty region or subset, a model or loss the claim
  does not speak of, or more than 1% of the group's rows ``failed`` (the details say how
  many; below that, failed rows are left out and counted in the details);
* otherwise the rule's ``supported``, ``partly supported`` or ``not supported``.

Every verdict is then re-evaluated under the fixed family of alternatives of
:mod:`flowsim.analysis.sensitivity` (region cuts 0.2, 0.25, 1/3; each threshold halved and
doubled) and marked ``robust`` or ``fragile (flips under ...)`` in the ``robustness`` column.

Velocities are those of the flow d(theta)/dt = -grad L(theta) at the initial conditions,
read in probabilities (dp/dt).  For DPO on the ratio plane they are computed without help
(dp/dt = ref * dx/dt); for any other model or loss :func:`evaluate_claims` needs the
experiment (``experiment=``), which gives each row's loss and parameterisation
(``Experiment.split(combo_of(row))``), and without it the claims that read the field are
not applicable.

The claims, their rules (default thresholds) and where they apply:

* **C1 Theorem 1**, **C2 Corollary 1** (DPO, ratio plane; ``rule_identity``): worst
  relative deviation <= 1e-6 supported, <= 1e-3 partly.
* **C3 Remark 1's argument** (all): share of moving flows that end with x1 > 1 and x2 < 1
  (the remark's reason for x2/x1 < 1) >= 0.9 supported, >= 0.5 partly (``rule_share``).
* **C4 Remark 2** (all): among starts where neither target is met at t = 0, share where p_l
  reaches its target before p_w reaches its own; and share of starts where |dp_l/dt| >
  |dp_w/dt| (both rates at the same loss: the start's).  Both >= 0.9 supported; either >=
  0.5 partly (``rule_faster``).
* **C5a top-left** (all): share of top-left flows whose p_l changes at most 1/``dominance``
  as much as p_w over the whole flow, >= 0.9, and the region's median |dp_w/dt| >=
  ``speed_factor`` times elsewhere: supported; share >= 0.5 partly (``rule_corner``).
* **C5b top-right** (all): median |dp/dt| there <= 1/``speed_factor`` of elsewhere and a
  stationary point on a mesh (DPO ratio plane): supported; one: partly (``rule_saddle``).
* **C5c bottom row** (all): share of starts where |dp_l/dt| >= ``dominance`` |dp_w/dt|, and
  the speed ratio, as C5a (``rule_corner``).
* **C6 Remark 3** (all): three signs the start decides the outcome (``rule_sensitivity``).
* **C6b the ratio plane's conservation law** (DPO, ratio plane; integrated rows only, nfev >
  0): worst |x_final - x_law| / R <= 1e-6 and no status mismatch supported (``rule_law``);
  on closed-form rows "not applicable: by construction".
* **C7 field vanishes at low x** (all; §3.2): median |grad_theta L| at bottom-left starts /
  elsewhere <= 1/``speed_factor`` supported, < 1 partly (``rule_vanish``).
* **C8 left side favours x2** (all; §3.3.2): share of left-column starts with |dp_l/dt| >
  |dp_w/dt| (``rule_share``).
* **C9 similar responses hinder** (features; §3.3.1; across cos_wl): drop of median final p_w
  and rise of the share displaced from the lowest to the highest cos_wl, each >= ``p1_gap``:
  both supported, one partly (``rule_similar``).
* **C10 the reference only stretches the figure** (all; footnote 4; across ref_w, ref_l):
  share of the other claims whose verdict is the same under every reference >= 0.9 and
  dp/dt at the same starts a per-axis rescaling of the first reference's (within
  ``rtol_partly``): supported; one of them, or the share >= 0.5: partly (``rule_stretch``).
* **C11 stationary points hinder** (all; Remark 3, §3.2): flows ending ``stationary`` >=
  1 - share_supported of the group, or a stationary point on the DPO ratio-plane mesh:
  supported; any flow stationary: partly (``rule_stuck``).
* **C12 the flow stays on the simplex** (all; implicit): share of feasible starts whose path
  reaches p_w + p_l > 1: 0 supported, <= 1 - share_supported partly (``rule_simplex``).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowsim.analysis.sensitivity import Variant, family, robustness
from flowsim.analysis.studies.thresholds import ClaimThresholds
from flowsim.analysis.tables import _as_bool, _column, check_flows
from flowsim.analysis.verdicts import (
    MAX_FAILED_SHARE,
    NA,
    NOT,
    PARTLY,
    SUBSETS,
    SUPPORTED,
    Claim,
    Metrics,
    NotApplicable,
    _fmt,
    _ge,
    _le,
)
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import REGIONS, region_labels
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations.ratio import RatioPolicy

__all__ = ["CLAIMS", "CLAIMS_BY_ID", "NA", "NOT", "PARTLY", "SUPPORTED", "ClaimThresholds", "central_difference",
           "evaluate_claims", "predicted_final", "ratio_objective", "standard_dpo_law"]  # fmt: skip


# -- rules ---------------------------------------------------------------------------------------------


def rule_identity(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C1, C2: ``m["worst"]``, the worst relative deviation of an identity."""
    text = f"supported if worst <= {th.rtol_supported:g}; partly if <= {th.rtol_partly:g}"
    if _le(m["worst"], th.rtol_supported):
        return SUPPORTED, text
    return (PARTLY if _le(m["worst"], th.rtol_partly) else NOT), text


def rule_share(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C3, C8: ``m["share"]``, the share of cases where the claim's statement holds."""
    text = f"supported if share >= {th.share_supported:g}; partly if >= {th.share_partly:g}"
    if _ge(m["share"], th.share_supported):
        return SUPPORTED, text
    return (PARTLY if _ge(m["share"], th.share_partly) else NOT), text


def rule_faster(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C4: ``m["share_first"]`` (t_l < t_w) and ``m["share_initial"]`` (|dp_l/dt| > |dp_w/dt|).

    A NaN share (no field without the experiment) is left out: the other decides alone.
    """
    hi, lo = th.share_supported, th.share_partly
    text = f"supported if both shares >= {hi:g}; partly if either >= {lo:g}"
    vals = [v for v in (m["share_first"], m["share_initial"]) if not np.isnan(v)]
    if vals and all(_ge(v, hi) for v in vals):
        return SUPPORTED, text
    return (PARTLY if any(_ge(v, lo) for v in vals) else NOT), text


def rule_corner(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C5a, C5c: ``m["share_dominant"]`` and ``m["speed_ratio"]`` (corner median / rest median)."""
    text = (
        f"supported if share with the other moving <= 1/{th.dominance:g} as much >= {th.share_supported:g} and "
        f"speed ratio >= {th.speed_factor:g}; partly if share >= {th.share_partly:g}"
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


def rule_vanish(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C7: ``m["grad_ratio"]``, median |grad L| in the low corner / elsewhere."""
    text = f"supported if ratio <= 1/{th.speed_factor:g}; partly if < 1"
    if m["grad_ratio"] < 1.0 / th.speed_factor:  # NaN compares False
        return SUPPORTED, text
    r = m["grad_ratio"]
    return (PARTLY if not np.isnan(r) and r < 1 else NOT), text


def rule_similar(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C9: ``m["p1_drop"]`` and ``m["displaced_rise"]`` from the lowest to the highest cos_wl."""
    text = f"count of: final p_w median drop >= {th.p1_gap:g}, displaced share rise >= {th.p1_gap:g}; 2: supported"
    n = _ge(m["p1_drop"], th.p1_gap) + _ge(m["displaced_rise"], th.p1_gap)
    return (SUPPORTED if n == 2 else PARTLY if n else NOT), text


def rule_stretch(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C10: ``m["share"]`` (claims with one verdict under every reference) and ``m["stretch_dev"]``.

    ``stretch_dev`` is how far the field in probabilities at the same starts is from a
    rescaling of one reference's field by a constant factor per axis (0: a pure stretch).
    """
    text = (
        f"supported if share of claims unchanged >= {th.share_supported:g} and the field is a per-axis "
        f"rescaling within {th.rtol_partly:g}; partly if one holds or the share >= {th.share_partly:g}"
    )
    same, stretch = _ge(m["share"], th.share_supported), _le(m["stretch_dev"], th.rtol_partly)
    if same and stretch:
        return SUPPORTED, text
    return (PARTLY if same or stretch or _ge(m["share"], th.share_partly) else NOT), text


def rule_stuck(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C11: ``m["share_stationary"]`` (flows ending stationary) and ``m["n_mesh"]`` (mesh points)."""
    lo = 1.0 - th.share_supported
    text = f"supported if share ending stationary >= {lo:.3g} or mesh stationary points > 0; partly if any ends so"
    if _ge(m["share_stationary"], lo) or _ge(m["n_mesh"], 1.0):
        return SUPPORTED, text
    s = m["share_stationary"]
    return (PARTLY if not np.isnan(s) and s > 0 else NOT), text


def rule_simplex(m: Metrics, th: ClaimThresholds) -> tuple[str, str]:
    """C12: ``m["share_left"]``, the share of feasible starts whose path has p_w + p_l > 1."""
    hi = 1.0 - th.share_supported
    text = f"supported if no path leaves the simplex; partly if share leaving <= {hi:.3g}"
    s = m["share_left"]
    if _le(s, 0.0):
        return SUPPORTED, text
    return (PARTLY if _le(s, hi) else NOT), text


# -- helpers -------------------------------------------------------------------------------------------


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


@functools.lru_cache(maxsize=8)
def _mesh_norms(beta: float, upper: tuple[float, float], n: int) -> np.ndarray:
    """|grad L| of DPO on a log-spaced n x n mesh of (0, upper[0]] x (0, upper[1]], sorted."""
    g1, g2 = np.meshgrid(np.geomspace(upper[0] * 1e-6, upper[0], n), np.geomspace(upper[1] * 1e-6, upper[1], n))
    norm = np.hypot(*np.moveaxis(ratio_objective(beta).grad(np.stack([g1, g2], -1)), -1, 0))
    out = np.sort(norm.ravel())
    out.flags.writeable = False
    return out


def _stationary(beta: float, upper: np.ndarray, tol: float, n: int = 400) -> tuple[float, int]:
    """(min |grad L|, number of points with |grad L| <= tol) on a log-spaced n x n mesh of the box."""
    norm = _mesh_norms(float(beta), (float(upper[0]), float(upper[1])), n)
    return float(norm[0]), int(np.searchsorted(norm, tol, side="right"))


#: At most this many points go into the finite-difference checks of C1 and C2.
MAX_FD_POINTS = 20_000
BOTTOM_ROW: tuple[str, ...] = ("bottom-left", "bottom", "bottom-right")


def ratio_objective(beta: float) -> Objective:
    """DPO on the ratio plane as a function of x (the references only bound the domain)."""
    return Objective(DPO(beta), RatioPolicy(np.ones(2), np.ones(2)))


# -- one group of flows ---------------------------------------------------------------------------------

BOTTOM_ROW: tuple[str, ...] = ("bottom-left", "bottom", "bottom-right")
LEFT_COLUMN: tuple[str, ...] = ("top-left", "left", "bottom-left")
#: Paths whose p_w + p_l exceeds 1 by more than this have left the simplex (C12).
MASS_TOL = 1e-12


@dataclass(frozen=True)
class _Context:
    stop: StopRule
    experiment: Any = None


class _Group:
    """The arrays of one (combination, subset) that the claim metrics read."""

    def __init__(self, g: pd.DataFrame, ctx: _Context) -> None:
        self.frame, self.ctx = g, ctx
        self.model_kind, self.loss_kind = _kinds(g)
        beta = g["beta"].iloc[0] if "beta" in g.columns and len(g) else np.nan
        self.beta = float(beta) if pd.notna(beta) else float("nan")
        self.x0 = g[["x1_0", "x2_0"]].to_numpy(float)
        self.xf = g[["x1_final", "x2_final"]].to_numpy(float)
        self.p0 = g[["p1_0", "p2_0"]].to_numpy(float)
        self.pf = g[["p1_final", "p2_final"]].to_numpy(float)
        self.refs = g[["ref_w", "ref_l"]].to_numpy(float)
        self.status = g["status"].to_numpy(str)
        self.region = g["region"].to_numpy(str)
        self.t_stop = g["t_stop"].to_numpy(float)
        self.t_w, self.t_l = g["t_w"].to_numpy(float), g["t_l"].to_numpy(float)
        self.nfev = _column(g, "nfev")
        self.max_mass = _column(g, "max_mass")
        self.displaced = _as_bool(g["displaced"]) if "displaced" in g.columns else np.zeros(len(g), bool)
        self.feasible = _as_bool(g["feasible"])
        self.ok = self.status != "failed"
        self.moving = self.ok & (self.t_stop > 0)
        self.n = len(g)
        self.n_failed = int((~self.ok).sum())
        self._cache: dict[str, Any] = {}  # shared with relabelled copies

    @property
    def dpo_ratio(self) -> bool:
        return self.model_kind == "ratio" and self.loss_kind == "dpo" and np.isfinite(self.beta)

    def relabelled(self, cuts: tuple[float, float]) -> _Group:
        """The same group with its regions relabelled by cuts (c, 1 - c) on both axes."""
        out = copy.copy(self)
        out.region = region_labels(self.p0, cuts, cuts).astype(str)
        return out

    def field(self) -> tuple[np.ndarray, np.ndarray]:
        """(dp/dt (n, 2) of (p_w, p_l), |grad_theta L| (n,)) at the starts; NotApplicable without a field."""
        if "field" not in self._cache:
            self._cache["field"] = self._field()
        return self._cache["field"]

    def _field(self) -> tuple[np.ndarray, np.ndarray]:
        exp = self.ctx.experiment
        if exp is not None:
            loss, par = exp.split(exp.combo_of(self.frame.iloc[0].to_dict()))
            policy = par.bind(self.p0, self.refs)
            theta = policy.theta0
            g = Objective(loss, policy).grad(theta)
            gnorm = np.linalg.norm(g, axis=-1)
            if policy.kind == "ratio":
                return -g * self.refs, gnorm
            eps = (1e-6 / np.maximum(1.0, gnorm))[:, None]  # central difference along the flow
            with np.errstate(all="ignore"):
                up, down = policy.probs(theta - eps * g)[..., :2], policy.probs(theta + eps * g)[..., :2]
            return (up - down) / (2 * eps), gnorm
        if self.dpo_ratio:
            g = ratio_objective(self.beta).grad(self.x0)
            return -g * self.refs, np.hypot(g[:, 0], g[:, 1])
        raise NotApplicable(
            f"the field of {self.loss_kind} on {self.model_kind} needs the experiment "
            "(evaluate_claims(..., experiment=exp))"
        )

    def dpo_loss(self) -> Objective:
        if not self.dpo_ratio:
            raise NotApplicable("needs DPO on the ratio plane with a beta column")
        return ratio_objective(self.beta)

    def mesh(self, tol: float) -> tuple[float, int]:
        """(min |grad L|, stationary points) on the DPO ratio-plane mesh of the group's box."""
        key = f"mesh {tol!r}"
        if key not in self._cache:
            upper = (1.0 / self.refs).max(axis=0)
            self._cache[key] = _stationary(self.beta, upper, tol)
        return self._cache[key]


# -- measurements: each returns (value, metrics, details) or raises NotApplicable -----------------------


def _fd_step(beta: float) -> float:
    """The relative step of the finite differences: about eps^(1/3), shrunk by beta > 1, since
    L varies on the scale of 1/beta in log x."""
    return 2.0**-17 / max(1.0, beta)


def _representable(loss: Objective, pts: np.ndarray) -> tuple[np.ndarray, int]:
    """At most MAX_FD_POINTS of ``pts`` where both components of grad L are finite and nonzero
    (elsewhere, e.g. at beta = 1e6, the gradient under- or overflows and no identity can be
    checked), and how many were left out; NotApplicable if none is left."""
    with np.errstate(all="ignore"):
        g = loss.grad(pts)
    keep = np.all(np.isfinite(g) & (g != 0), axis=1)
    if not keep.any():
        raise NotApplicable(f"the gradient under- or overflows at all {len(pts)} points: nothing to check")
    return _subsample(pts[keep], MAX_FD_POINTS), int((~keep).sum())


def _checkable(loss: Objective, pts: np.ndarray, beta: float, n_under: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(points, central differences there, points left out): the points where the finite
    differences of L are finite and nonzero (where L itself underflows they are 0)."""
    with np.errstate(all="ignore"):
        fd = central_difference(loss.value, pts, _fd_step(beta))
    keep = np.all(np.isfinite(fd) & (fd != 0), axis=1)
    if not keep.any():
        raise NotApplicable(f"L under- or overflows at all {len(pts)} points: nothing to check")
    return pts[keep], fd[keep], n_under + int((~keep).sum())


def _theorem1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Fails if DPO.grad (eq. (2) in a stable form) differs from finite differences of L."""
    loss = d.dpo_loss()
    pts = np.concatenate([d.x0, d.xf[d.ok]])
    pts, n_under = _representable(loss, pts[np.all(np.isfinite(pts) & (pts > 0), axis=1)])
    pts, fd, n_under = _checkable(loss, pts, d.beta, n_under)
    worst = float(_rel(loss.grad(pts), fd).max())
    eq2 = _paper_grad(pts, d.beta)
    fin = np.all(np.isfinite(eq2), axis=1)
    eq2_dev = float(_rel(eq2[fin], loss.grad(pts[fin])).max()) if fin.any() else float("nan")
    details = (
        f"{len(pts)} points ({n_under} left out where the gradient under- or overflows); eq. (2) as printed vs "
        f"DPO.grad: worst {_fmt(eq2_dev)} ({int(fin.sum())} points where x^b is finite)"
    )
    return worst, {"worst": worst}, details


def _corollary1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Fails if |dL/dx1 / dL/dx2| (finite differences) differs from x2/x1."""
    loss = d.dpo_loss()
    pts, n_under = _representable(loss, d.x0)
    pts, fd, n_under = _checkable(loss, pts, d.beta, n_under)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.abs(np.abs(fd[:, 0] / fd[:, 1]) / (pts[:, 1] / pts[:, 0]) - 1.0)
    worst = float(np.nanmax(np.where(np.isnan(dev), np.inf, dev)))
    g = loss.grad(pts)
    exact = float(np.max(np.abs(np.abs(g[:, 0] / g[:, 1]) * pts[:, 0] / pts[:, 1] - 1.0)))
    v, _ = d.field()
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.abs(v[:, 0] / v[:, 1])
    details = (
        f"{len(pts)} initial points ({n_under} left out where the gradient under- or overflows); with DPO.grad: "
        f"worst {_fmt(exact)}; in probabilities the rate "
        f"|dp1/dt|/|dp2/dt| = (ref_w/ref_l) x2/x1 has median {_fmt(_median(pr))}"
    )
    return worst, {"worst": worst}, details


def _remark1(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Remark 1's argument: the flow ends with x1 > 1 and x2 < 1 (so x2/x1 < 1).

    Fails if flows end with x1 <= 1 (p_w not above its reference: a reference of 1, a
    capped ratio plane, or p_w displaced) or x2 >= 1.  (The share of starts with x2/x1 < 1
    is the grid's symmetry and the share at the stop the stop rule: both are in details,
    neither is judged.)
    """
    mv = d.moving
    if not mv.any():
        raise NotApplicable("no moving flows")
    share = _share((d.xf[:, 0] > 1) & (d.xf[:, 1] < 1), mv)
    init = _share(d.x0[:, 1] < d.x0[:, 0])
    fin = _share(d.xf[:, 1] < d.xf[:, 0], d.ok)
    details = (
        f"{int(mv.sum())} moving flows; ending with x1 > 1: {_fmt(_share(d.xf[:, 0] > 1, mv))}, with x2 < 1: "
        f"{_fmt(_share(d.xf[:, 1] < 1, mv))}; (not judged: x2/x1 < 1 at the start {_fmt(init)}, at the stop "
        f"{_fmt(fin)})"
    )
    return share, {"share": share}, details


def _remark2(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """Remark 2: p_l reaches its target (t_l) before p_w reaches its own (t_w), and falls faster at the start.

    Among starts where neither target is met at t = 0; a target never reached counts as
    t = +inf (both never: not l-first).  Fails if p_w reaches its target first, or if
    |dp_w/dt| >= |dp_l/dt| at the start (the same loss for both rates).
    """
    contested = d.ok & (d.t_w != 0) & (d.t_l != 0)
    if not contested.any():
        raise NotApplicable("no start where neither target is met at t = 0")
    tl, tw = np.nan_to_num(d.t_l, nan=np.inf), np.nan_to_num(d.t_w, nan=np.inf)
    first = _share(tl < tw, contested)
    both = _share(np.isfinite(tl) & np.isfinite(tw), contested)
    try:
        v, _ = d.field()
        init = _share(np.abs(v[:, 1]) > np.abs(v[:, 0]), d.ok)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = _median(np.abs(v[d.ok, 1] / v[d.ok, 0]))
    except NotApplicable:
        init = rate = float("nan")
    details = (
        f"{int(contested.sum())} contested starts; t_l < t_w: {_fmt(first)} (both reached: {_fmt(both)}); "
        f"|dp_l/dt| > |dp_w/dt| at t = 0: {_fmt(init)} (median |dp_l/dt|/|dp_w/dt| {_fmt(rate)})"
    )
    return first, {"share_first": first, "share_initial": init}, details


def _corner_path(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5a: in the top-left, p_w rises fast while p_l changes little over the whole flow.

    Fails if p_l changes by more than 1/dominance of p_w's change from start to stop (not
    only at the start, where on the ratio plane dominance is forced by the cuts), or if the
    region's median |dp_w/dt| is below speed_factor times the median elsewhere.
    """
    sel = d.region == "top-left"
    if not sel.any():
        raise NotApplicable("0 starts in top-left")
    mv = sel & d.moving
    dp = np.abs(d.pf - d.p0)
    share = _share(dp[:, 1] * th.dominance <= dp[:, 0], mv)
    try:
        v, _ = d.field()
        ratio = _ratio(_median(np.abs(v[sel, 0])), _median(np.abs(v[~sel, 0])))
    except NotApplicable:
        ratio = float("nan")
    details = (
        f"{int(sel.sum())} starts in top-left ({int(mv.sum())} moving); median |Δp_l|/|Δp_w| there "
        f"{_fmt(_median(dp[mv, 1] / np.maximum(dp[mv, 0], 1e-300)))}; median |dp_w/dt| there / elsewhere {_fmt(ratio)}"
    )
    return share, {"share_dominant": share, "speed_ratio": ratio}, details


def _corner_bottom(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5c: on the bottom row, |dp_l/dt| >= dominance |dp_w/dt| at the start, and fast.

    Fails if at bottom-row starts p_w moves at more than 1/dominance of p_l's speed, or if
    their median |dp_l/dt| is below speed_factor times the median elsewhere.
    """
    sel = np.isin(d.region, BOTTOM_ROW)
    if not sel.any():
        raise NotApplicable("0 starts in the bottom row")
    v, _ = d.field()
    s_fast, s_slow = np.abs(v[:, 1]), np.abs(v[:, 0])
    share = _share(s_fast >= th.dominance * s_slow, sel)
    ratio = _ratio(_median(s_fast[sel]), _median(s_fast[~sel]))
    dp = np.abs(d.pf - d.p0)
    path = _share(dp[:, 1] > dp[:, 0], sel & d.moving)
    details = (
        f"{int(sel.sum())} starts in {'/'.join(BOTTOM_ROW)}; median |dp_l/dt| there / elsewhere {_fmt(ratio)}; "
        f"share whose whole path moves p_l more {_fmt(path)}"
    )
    return share, {"share_dominant": share, "speed_ratio": ratio}, details


def _saddle(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C5b: top-right starts move slowly, and there are stationary points.

    Fails if the top-right median |dp/dt| exceeds 1/speed_factor of the median elsewhere
    and no mesh point (DPO on the ratio plane) is stationary.  No top-right start (e.g.
    among feasible starts with the default cuts): not applicable.
    """
    sel = d.region == "top-right"
    if not sel.any():
        raise NotApplicable("0 starts in top-right")
    v, _ = d.field()
    speed = np.hypot(v[:, 0], v[:, 1])
    ratio = _ratio(_median(speed[sel]), _median(speed[~sel]))
    n_stat, mesh = float("nan"), "no mesh check (not DPO on the ratio plane)"
    if d.dpo_ratio:
        gmin, n = d.mesh(th.stationary_tol)
        n_stat = float(n)
        mesh = f"|grad L| on a 400x400 log mesh: min {_fmt(gmin)}, {n} stationary points"
    t_ratio = _ratio(_median(d.t_stop[sel & d.ok]), _median(d.t_stop[~sel & d.ok]))
    details = f"{int(sel.sum())} starts in top-right; {mesh}; median t_stop there / elsewhere {_fmt(t_ratio)}"
    return ratio, {"speed_ratio": ratio, "n_stationary": n_stat}, details


def _remark3(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C6: the start decides the outcome.

    Fails if the regions' median final p_w are within p1_gap of each other, bottom-left
    ends no lower than the rest, and top-right takes no longer than speed_factor times the rest.
    """
    ok = d.ok
    if not ok.any():
        raise NotApplicable("no finished flows")
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


def _law(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C6b: integrated flows end where the conserved radius x1^2 + x2^2 = R^2 puts them.

    Fails if an integrated flow (nfev > 0) ends off the predicted point or with another
    status.  Closed-form rows (nfev = 0) are built on the law: "by construction", not applicable.
    """
    stop = d.ctx.stop
    d.dpo_loss()
    integrated = d.nfev > 0
    if not integrated.any():
        raise NotApplicable("by construction: every row is from the closed form (nfev = 0), which is built on this law")
    fin = np.isin(d.status, ("converged", "capped")) & integrated
    x0, cap, floor = d.x0, 1.0 / d.refs[:, 0], stop.p2_floor / d.refs[:, 1]
    r2 = x0[:, 0] ** 2 + x0[:, 1] ** 2
    # A circle that meets the cap and the floor together (within 1e-9 R^2) ends at an
    # ill-conditioned corner where either status is right: such starts are left out.
    tie = np.abs(r2 - floor**2 - cap**2) <= 1e-9 * r2
    n_tie = int((fin & tie).sum())
    fin &= ~tie
    if not fin.any():
        raise NotApplicable("no finished integrated flows")
    xf, status = predicted_final(d.x0[fin], d.refs[fin], stop)
    r = np.hypot(d.x0[fin, 0], d.x0[fin, 1])
    dev = np.hypot(*(d.xf[fin] - xf).T) / r
    worst = float(dev.max())
    mismatch = int((status != d.status[fin]).sum())
    p1_law = np.minimum(d.refs[fin, 0] * r, 1.0)
    p1_dev = float(np.abs(d.pf[fin, 0] - p1_law).max())
    details = (
        f"{int(fin.sum())} finished integrated flows ({int((~integrated).sum())} closed-form rows and "
        f"{int((d.status == 'timeout').sum())} timeouts left out, and {n_tie} "
        "starts on the circle through the corner (cap, floor), where either status is right); "
        f"{mismatch} with another status than predicted; max |p1_final - min(ref_w R, 1)| {_fmt(p1_dev)}"
    )
    return worst, {"worst": worst, "n_status_mismatch": float(mismatch)}, details


def _vanish(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C7 (§3.2): the field vanishes at low x1 and low x2.

    Fails if the median |grad_theta L| at bottom-left starts (low p_w and p_l) is not below
    the median elsewhere (on the ratio plane it grows there, as 1/x).
    """
    sel = d.region == "bottom-left"
    if not sel.any() or sel.all():
        raise NotApplicable(f"{int(sel.sum())} of {d.n} starts in bottom-left: nothing to compare")
    _, gnorm = d.field()
    ratio = _ratio(_median(gnorm[sel]), _median(gnorm[~sel]))
    details = (
        f"{int(sel.sum())} starts in bottom-left; median |grad L| there {_fmt(_median(gnorm[sel]))}, elsewhere "
        f"{_fmt(_median(gnorm[~sel]))} (in the model's own parameters, {d.model_kind})"
    )
    return ratio, {"grad_ratio": ratio}, details


def _left(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C8 (§3.3.2): on the left side the gradient favours x2: |dp_l/dt| > |dp_w/dt| there.

    Fails if at left-column starts p_w moves faster than p_l (Corollary 1 on the ratio plane:
    |dp_w/dt| / |dp_l/dt| = (ref_w / ref_l) x2 / x1, above 1 wherever p_l > p_w there).
    """
    sel = np.isin(d.region, LEFT_COLUMN)
    if not sel.any():
        raise NotApplicable("0 starts in the left column")
    v, _ = d.field()
    share = _share(np.abs(v[:, 1]) > np.abs(v[:, 0]), sel)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = _median(np.abs(v[sel, 0] / v[sel, 1]))
        cor = _median((d.refs[sel, 0] / d.refs[sel, 1]) * d.x0[sel, 1] / d.x0[sel, 0])
    details = (
        f"{int(sel.sum())} starts in {'/'.join(LEFT_COLUMN)}; median |dp_w/dt|/|dp_l/dt| there {_fmt(rate)} "
        f"(Corollary 1's (ref_w/ref_l) x2/x1: {_fmt(cor)})"
    )
    return share, {"share": share}, details


def _stuck(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C11 (Remark 3, §3.2): local minima or saddles stop flows.

    Fails if no flow ends ``stationary`` and (DPO on the ratio plane) no mesh point is.
    """
    if not d.ok.any():
        raise NotApplicable("no finished flows")
    share = _share(d.status == "stationary", d.ok)
    n_mesh, mesh = float("nan"), "no mesh check (not DPO on the ratio plane)"
    if d.dpo_ratio:
        gmin, n = d.mesh(th.stationary_tol)
        n_mesh = float(n)
        mesh = f"DPO ratio-plane mesh: min |grad L| {_fmt(gmin)}, {n} stationary points"
    details = f"{int((d.status == 'stationary').sum())} of {int(d.ok.sum())} flows end stationary; {mesh}"
    return share, {"share_stationary": share, "n_mesh": n_mesh}, details


def _simplex(d: _Group, th: ClaimThresholds) -> tuple[float, dict, str]:
    """C12 (implicit): a flow from a feasible start keeps p_w + p_l <= 1.

    Fails if any path from a feasible start reaches p_w + p_l > 1 (the unnormalised ratio plane can).
    """
    sel = d.feasible & d.ok & np.isfinite(d.max_mass)
    if not sel.any():
        raise NotApplicable("no feasible start with a recorded path (max_mass)")
    left = d.max_mass > 1.0 + MASS_TOL
    share = _share(left, sel)
    details = (
        f"{int((left & sel).sum())} of {int(sel.sum())} feasible starts reach p_w + p_l > 1 "
        f"(largest {_fmt(float(np.max(d.max_mass[sel])))})"
    )
    return share, {"share_left": share}, details


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


RATIO, DPO_ONLY = ("ratio",), ("dpo",)

#: The claims in report order.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "C1", "Theorem 1: the partial derivatives",
        "dL/dx1 = -b x2^b / (x1 (x1^b + x2^b)),  dL/dx2 = b x2^(b-1) / (x1^b + x2^b)",
        "§3.1, Theorem 1, eq. (2)",
        "worst relative difference, DPO.grad vs central differences of DPO.value, at initial and final points",
        rule_identity, _theorem1, models=RATIO, losses=DPO_ONLY, uses_flows=False,
    ),
    Claim(
        "C2", "Corollary 1: the update rate x2/x1",
        "|dL/dx1 / dL/dx2| = x2/x1",
        "§3.1, Corollary 1, eq. (3)",
        "worst relative deviation of |dL/dx1 / dL/dx2| (central differences) from x2/x1",
        rule_identity, _corollary1, models=RATIO, losses=DPO_ONLY, uses_flows=False,
    ),
    Claim(
        "C3", "Remark 1: the update rate falls below 1 (x1 > 1, x2 < 1)",
        "For any pairwise preference data, the update rate x2/x1 < 1 holds. [...] x1 is greater than 1, x2 is "
        "less than 1, and therefore x2 < x1.",
        "§3.1, Remark 1",
        "share of moving flows ending with x1 > 1 and x2 < 1 (the remark's argument)",
        rule_share, _remark1,
    ),
    Claim(
        "C4", "Remark 2: p(y_l) falls faster than p(y_w) rises",
        "the DPO loss function decreases the probability of producing human dispreferred data at a faster "
        "rate than it increases the probability of producing preferred data",
        "Abstract; §3.3.1, Remark 2",
        "share of starts (neither target met at t = 0) where p_l reaches its target before p_w reaches its own",
        rule_faster, _remark2,
    ),
    Claim(
        "C5a", "Top-left corner: p1 rises fast, p2 barely moves",
        "When x1 is extremely small and x2 is extremely large ... the gradient flow of DPO tends to rapidly "
        "increase x1 while causing only minor changes to x2.",
        "§3.2, top-left of Fig. 1(b)",
        "share of top-left flows with |Δp_l| <= |Δp_w| / dominance from start to stop",
        rule_corner, _corner_path, reads=("dominance",), regional=True,
    ),
    Claim(
        "C5b", "Top-right corner: small change, saddle points",
        "When both x1 and x2 are extremely large ... the overall change is relatively minor, potentially "
        "resulting in difficulty escaping saddle points.",
        "§3.2, top-right of Fig. 1(b); Remark 3",
        "median |dp/dt| at top-right starts / median at other starts",
        rule_saddle, _saddle, reads=("stationary_tol",), regional=True,
    ),
    Claim(
        "C5c", "Bottom: p2 falls fast, p1 barely moves",
        "When x2 is extremely small ... the gradient flow of DPO tends to rapidly decrease x2 while causing "
        "only minor changes to x1.",
        "§3.2, lower part of Fig. 1(b)",
        "share of bottom-row starts with |dp_l/dt| >= dominance * |dp_w/dt|",
        rule_corner, _corner_bottom, reads=("dominance",), regional=True,
    ),
    Claim(
        "C6", "Remark 3: the SFT start decides the outcome",
        "The initial states in the gradient vector field have a significant impact on the final optimization "
        "results. [lower-left: low p1; upper-right: sluggish convergence]",
        "§3.3.2, Remark 3",
        "spread (max - min) of the regions' median final p1",
        rule_sensitivity, _remark3, regional=True,
    ),
    Claim(
        "C6b", "Conservation law of the ratio plane (derived in flowsim, not in the paper)",
        "(derived in flowsim.dynamics.closed_forms.dpo_ratio, not in the paper; it makes Remark 3 exact) "
        "x1^2 + x2^2 = R^2 is conserved, so the start fixes the end: p1_final = min(ref_w R, 1)",
        "flowsim's own law, bearing on §3.3.2, Remark 3",
        "worst |x_final - x_predicted| / R over finished integrated flows (nfev > 0)",
        rule_law, _law, models=RATIO, losses=DPO_ONLY,
    ),
    Claim(
        "C7", "The field vanishes at low x1 and low x2",
        "the gradient vector field vanishes in the area of low x1 and then moves away, but it converges towards "
        "the region of low x2 to vanish there",
        "§3.2, reading of Fig. 1(b)",
        "median |grad_theta L| at bottom-left starts / median elsewhere, in the model's own parameters",
        rule_vanish, _vanish, regional=True,
    ),
    Claim(
        "C8", "Left side: the gradient favours x2",
        "When the initial position of LLMs is situated at the left side of Figure 1(b) [...] DPO may not be able "
        "to swiftly increase this probability, as the gradient direction favors optimizing x2.",
        "§3.3.2, second bullet",
        "share of left-column starts with |dp_l/dt| > |dp_w/dt|",
        rule_share, _left, regional=True,
    ),
    Claim(
        "C9", "Similar responses hinder learning y_w",
        "if the human-preferred response yw and the dispreferred response yl are literally similar, the gradient "
        "with respect to x2 would counteract the gradient of x1 to some extent, thereby weakening the "
        "optimization toward x1",
        "§3.3.1, after Remark 2",
        "drop of median final p_w and rise of the share displaced, lowest to highest cos_wl (across combinations)",
        rule_similar, models=("features",), across=("cos_wl",),
    ),
    Claim(
        "C10", "The reference only stretches the figure",
        "Since πref(yw|x) and πref(yl|x) are constants determined by the initial reference model, which may cause "
        "stretching or compression of the figure, rather than causing formal changes, we omit the denominators",
        "§3.2 and footnote 4",
        "share of the other claims whose verdict is the same under every fixed reference (across combinations); "
        "distance of dp/dt at the same starts from a per-axis rescaling",
        rule_stretch, across=("ref_w", "ref_l"),
    ),
    Claim(
        "C11", "Local minima and saddle points hinder escape",
        "the presence of very small gradients in the upper-right corner can lead to sluggish convergence and "
        "challenges in escaping local minima",
        "§3.3.2, Remark 3; §3.2 (saddle points)",
        "share of flows ending stationary; for DPO on the ratio plane, stationary points on a mesh",
        rule_stuck, _stuck, reads=("stationary_tol",),
    ),
    Claim(
        "C12", "The flow stays a probability distribution",
        "(implicit throughout: x1, x2 are ratios of probabilities of two responses to one prompt)",
        "§3 (implicit)",
        "share of feasible starts whose path reaches p_w + p_l > 1",
        rule_simplex, _simplex,
    ),
)  # fmt: skip

#: Claims by id.
CLAIMS_BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


# -- evaluation ------------------------------------------------------------------------------------------


class _NanMetrics(dict):
    """Metrics for an empty subset: every key reads as NaN."""

    def __missing__(self, key: str) -> float:
        return float("nan")


class _Judge:
    """Measures and judges the claims on one group, under the base setting and each variant.

    Measurements are cached by (claim, cuts if the claim reads regions, the thresholds it
    reads), so a variant re-measures only what it can change.
    """

    def __init__(self, d: _Group) -> None:
        self.d = d
        self.groups: dict[tuple[float, float], _Group] = {}
        self.cache: dict[tuple, Any] = {}

    def _group(self, cuts: tuple[float, float] | None) -> _Group:
        if cuts is None:
            return self.d
        if cuts not in self.groups:
            self.groups[cuts] = self.d.relabelled(cuts)
        return self.groups[cuts]

    def judge(self, c: Claim, cuts: tuple[float, float] | None, th: ClaimThresholds) -> tuple[float, str, str, str]:
        """(value, details, verdict, rule text) of claim ``c``."""
        cuts = cuts if c.regional else None
        key = (c.id, cuts, tuple(getattr(th, r) for r in c.reads))
        if key not in self.cache:
            try:
                self.cache[key] = c.measure(self._group(cuts), th)
            except NotApplicable as exc:
                self.cache[key] = exc
        found = self.cache[key]
        if isinstance(found, NotApplicable):
            return float("nan"), f"not applicable: {found}", NA, c.rule(_NanMetrics(), th)[1]
        value, metrics, details = found
        verdict, text = c.rule(metrics, th)
        return value, details, verdict, text


def _na(c: Claim, reason: str, th: ClaimThresholds) -> tuple[float, str, str, str]:
    return float("nan"), f"not applicable: {reason}", NA, c.rule(_NanMetrics(), th)[1]


def _precheck(c: Claim, model: str, loss: str, n: int, n_failed: int) -> str | None:
    """Why claim ``c`` is not applicable to a group before anything is measured, or None."""
    reason = c.not_applicable(model, loss)
    if reason:
        return reason
    if n == 0:
        return "no initial conditions here"
    if c.uses_flows and n_failed > MAX_FAILED_SHARE * n:
        return f"{n_failed} of {n} rows failed ({100 * n_failed / n:.3g}% > {100 * MAX_FAILED_SHARE:g}%)"
    return None


def _kinds(g: pd.DataFrame) -> tuple[str, str]:
    model = str(g["model"].iloc[0]) if "model" in g.columns and len(g) else "ratio"
    loss = str(g["loss"].iloc[0]) if "loss" in g.columns and len(g) else "dpo"
    return model, loss


def _similar(g: pd.DataFrame, col: str) -> tuple[float, dict, str]:
    """C9 (§3.3.1): as y_w and y_l grow alike (cos_wl up), p_w ends lower and is displaced more often.

    Fails if the median final p_w at the highest cos_wl is not at least p1_gap below that
    at the lowest, and the share of flows displaced (p_w fell below its start) does not rise
    by at least p1_gap.
    """
    ok = g[g["status"] != "failed"]
    disp = pd.Series(_as_bool(ok["displaced"]) if "displaced" in ok else np.zeros(len(ok), bool), index=ok.index)
    by = ok.groupby(col)
    med, share = by["p1_final"].median(), disp.groupby(ok[col]).mean()
    lo, hi = med.index.min(), med.index.max()
    drop, rise = float(med[lo] - med[hi]), float(share[hi] - share[lo])
    t_w = by["t_w"].median()
    details = "; ".join(
        f"{col} = {k:g}: median p_w final {_fmt(med[k])}, displaced {_fmt(share[k])}, median t_w {_fmt(t_w[k])}"
        for k in med.index
    )
    return drop, {"p1_drop": drop, "displaced_rise": rise}, details


def _same_under_references(recs: pd.DataFrame, alt: str | None) -> tuple[float, str]:
    """C10: share of claims with one verdict (not applicable aside) across the references."""
    same, changed = 0, []
    for cid, r in recs.groupby("claim", sort=False):
        v = r["verdict"] if alt is None else r["_alts"].map(lambda a: a.get(alt))
        v = set(v) - {NA, None}
        if not v:
            continue
        if len(v) == 1:
            same += 1
        else:
            changed.append(str(cid))
    n = same + len(changed)
    return (same / n if n else float("nan")), ", ".join(changed) or "none"


def evaluate_claims(
    flows: pd.DataFrame,
    stop: StopRule,
    thresholds: ClaimThresholds | None = None,
    *,
    experiment: Any = None,
    sensitivity: bool = True,
) -> pd.DataFrame:
    """Measure each claim of the paper per parameter combination and subset, and judge it.

    Parameters
    ----------
    flows : DataFrame
        Rows of flows.csv (see :func:`check_flows`), with columns ref_w, ref_l (and beta for
        DPO on the ratio plane without ``experiment``).
    stop : StopRule
        The stop rule the flows were computed with (C6b needs its floor).
    thresholds : ClaimThresholds, optional
        The rules' thresholds (defaults: ``ClaimThresholds()``).
    experiment : flowsim.experiment.config.Experiment, optional
        The experiment the flows come from: each row's loss and parameterisation
        (``experiment.split(experiment.combo_of(row))``) give the field at the starts for any
        model and loss.  Without it only DPO on the ratio plane has a field, and claims that
        read it are not applicable elsewhere.
    sensitivity : bool, default True
        Re-evaluate every verdict under :func:`flowsim.analysis.sensitivity.family`.

    Returns
    -------
    DataFrame
        One row per (claim, combination, subset "all"/"feasible"), claims in the order of
        :data:`CLAIMS`, with columns claim, the parameter columns, reference, subset, title,
        paper, where, metric, value, details, threshold, verdict, robustness, n_rows,
        n_failed, model (and loss, when it is not a parameter column).  A claim across
        combinations (C9 across cos_wl, C10 across ref_w and ref_l) has one row per
        combination of the other parameters, its own columns NaN.
        ``n_failed`` / ``n_rows`` count the group's failed rows (:func:`failed_rows` sums them).
    """
    params = check_flows(flows, needs=("ref_w", "ref_l"))
    if not isinstance(stop, StopRule):
        raise ValueError(f"stop must be a flowsim.dynamics.record.StopRule; got {type(stop).__name__}")
    th = ClaimThresholds() if thresholds is None else thresholds
    if not isinstance(th, ClaimThresholds):
        raise ValueError(f"thresholds must be a ClaimThresholds; got {type(th).__name__}")
    ctx = _Context(stop, experiment)
    variants, skipped = family(th) if sensitivity else ([], [])
    work = flows.assign(_feasible=_as_bool(flows["feasible"]))
    keys = [p for p in params if p != "reference"]
    local = [c for c in CLAIMS if not c.across]
    records: list[dict] = []
    fields_: dict[tuple, Any] = {}  # the field at each group's starts, for C10
    for key, g in work.groupby([*keys, "reference"], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        kv = dict(zip([*keys, "reference"], key, strict=True))
        model, loss = _kinds(g)
        for subset in SUBSETS:
            sub = g if subset == "all" else g[g["_feasible"].to_numpy()]
            d = _Group(sub, ctx)
            judge = _Judge(d)
            try:
                fields_[(tuple(kv.items()), subset)] = (d.p0, d.field()[0]) if d.n else None
            except NotApplicable:
                pass
            for c in local:
                reason = _precheck(c, model, loss, d.n, d.n_failed)
                alts: dict[str, str] = {}
                if reason:
                    value, details, verdict, text = _na(c, reason, th)
                else:
                    value, details, verdict, text = judge.judge(c, None, th)
                    alts = {v.name: judge.judge(c, v.cuts, v.thresholds)[2] for v in variants}
                    if d.n_failed and c.uses_flows:
                        details = f"{d.n_failed} failed rows left out; {details}"
                records.append({"claim": c.id, **kv, "subset": subset, "value": value, "details": details,
                                "threshold": text, "verdict": verdict, "_alts": alts, "n_rows": d.n,
                                "n_failed": d.n_failed, "_model": model, "_loss": loss})  # fmt: skip
    records += _across(work, records, fields_, keys, th, variants)
    rows = []
    for r in records:
        c = CLAIMS_BY_ID[r["claim"]]
        rob = robustness(r["verdict"], r.pop("_alts"))
        if skipped and rob == "robust":
            rob += f" (alternatives left out as invalid: {', '.join(skipped)})"
        rows.append({"claim": c.id, **{k: r.get(k, np.nan) for k in keys}, "reference": r["reference"],
                     "subset": r["subset"], "title": c.title, "paper": c.paper, "where": c.where, "metric": c.metric,
                     "value": r["value"], "details": r["details"], "threshold": r["threshold"],
                     "verdict": r["verdict"], "robustness": rob, "n_rows": r["n_rows"],
                     "n_failed": r["n_failed"], "model": r["_model"],
                     **({} if "loss" in keys else {"loss": r["_loss"]})})  # fmt: skip
    out = pd.DataFrame(rows)
    out["_c"] = out["claim"].map([c.id for c in CLAIMS].index)
    out["_s"] = out["subset"].map(SUBSETS.index)
    out = out.sort_values(["_c", *keys, "reference", "_s"], kind="stable", na_position="last")
    return out.drop(columns=["_c", "_s"]).reset_index(drop=True)


def _stretch(entries: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """How far fields (p0, dp/dt) under several references are from per-axis rescalings of the first.

    Per axis, over the starts the groups share, max / min of |v_ref / v_first| minus 1,
    the worst over references and axes (0: every field a constant stretch of the first).
    """
    base_p, base_v = entries[0]
    index = {tuple(np.round(p, 12)): i for i, p in enumerate(base_p)}
    worst = float("nan")
    for p, v in entries[1:]:
        pairs = [(i, index.get(tuple(np.round(q, 12)))) for i, q in enumerate(p)]
        pairs = [(i, j) for i, j in pairs if j is not None]
        if not pairs:
            continue
        mine, first = zip(*pairs, strict=True)
        with np.errstate(all="ignore"):
            r = np.abs(v[list(mine)] / base_v[list(first)])
        r = r[np.all(np.isfinite(r) & (r > 0), axis=1)]
        if len(r):
            dev = float((r.max(axis=0) / r.min(axis=0) - 1.0).max())
            worst = dev if np.isnan(worst) else max(worst, dev)
    return worst


def _across(
    work: pd.DataFrame,
    records: list[dict],
    fields_: dict[tuple, Any],
    keys: list[str],
    th: ClaimThresholds,
    variants: list[Variant],
) -> list[dict]:
    """The records of the claims across combinations (C9, C10)."""
    out: list[dict] = []
    recs = pd.DataFrame(records)
    for c in (c for c in CLAIMS if c.across):
        cols = list(c.across)
        varied = all(k in keys for k in cols)
        others = [k for k in keys if k not in cols] if varied else keys
        for key, g in work.groupby([*others, "reference"], sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            kv = dict(zip([*others, "reference"], key, strict=True))
            model, loss = _kinds(g)
            for subset in SUBSETS:
                sub = g if subset == "all" else g[g["_feasible"].to_numpy()]
                n, n_failed = len(sub), int((sub["status"] == "failed").sum())
                n_values = len(sub[cols].drop_duplicates()) if varied and n else (1 if n else 0)
                reason = _precheck(c, model, loss, n, n_failed)
                if not reason and n_values < 2:
                    reason = f"one value of {', '.join(cols)} here: the claim compares several"
                alts: dict[str, str] = {}
                if reason:
                    value, details, verdict, text = _na(c, reason, th)
                elif c.id == "C9":
                    value, metrics, details = _similar(sub, cols[0])
                    verdict, text = c.rule(metrics, th)
                    alts = {v.name: c.rule(metrics, v.thresholds)[0] for v in variants}
                else:
                    mine = recs[(recs["subset"] == subset) & (recs["claim"] != c.id)]
                    for k, v in kv.items():
                        mine = mine[(mine[k] == v) | (mine[k].isna() & pd.isna(v))]
                    value, changed = _same_under_references(mine, None)
                    entries = [f for (fk, fs), f in fields_.items() if fs == subset and f is not None
                               and all(dict(fk).get(k) == v or (pd.isna(v) and pd.isna(dict(fk).get(k)))
                                       for k, v in kv.items())]  # fmt: skip
                    dev = _stretch(entries) if len(entries) > 1 else float("nan")
                    verdict, text = c.rule({"share": value, "stretch_dev": dev}, th)
                    details = (f"{n_values} references; claims whose verdict changes with the reference: {changed}; "
                               f"dp/dt at the same starts is a per-axis rescaling within {_fmt(dev)} "
                               f"(max/min of the per-axis ratio - 1; n/a without a field)")  # fmt: skip
                    for v in variants:
                        share, _ = _same_under_references(mine, v.name)
                        alts[v.name] = c.rule({"share": share, "stretch_dev": dev}, v.thresholds)[0]
                out.append({"claim": c.id, **kv, "subset": subset, "value": value, "details": details,
                            "threshold": text, "verdict": verdict, "_alts": alts, "n_rows": n, "n_failed": n_failed,
                            "_model": model, "_loss": loss})  # fmt: skip
    return out
