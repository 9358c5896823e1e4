"""Tables and claim verdicts from a flows table (the rows of ``flows.csv``), in memory.

No file I/O and no plotting here: functions take a :class:`pandas.DataFrame` of flows and
return DataFrames or text.

* :func:`parameter_columns` -- the columns that identify a parameter combination.
* :func:`region_table` -- per combination, subset ("all" / "feasible") and region: counts
  by status, quartiles of the stop and crossing times and of the final probabilities.
* :func:`evaluate_claims` -- the paper's claims (listed with their rules in
  :mod:`flowsim.claims`), measured per combination and subset, with a verdict each.
* :func:`claims_markdown` -- those verdicts as a markdown report.

A parameter combination is (beta, ref_w, ref_l) for ``reference = "fixed"`` and beta
alone for ``reference = "initial"`` (standard DPO: each row's reference is its own start,
so every row starts at x = (1, 1) with its own ref_w = p1_0, ref_l = p2_0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsim.claims import CLAIMS, VERDICTS, ClaimThresholds
from flowsim.losses import DPO
from flowsim.records import STATUSES, StopRule
from flowsim.regions import REGIONS

#: Columns every analysis needs, besides the parameter columns.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "p1_0", "p2_0", "x1_0", "x2_0", "region", "feasible", "status", "t_stop",
    "p1_final", "p2_final", "x1_final", "x2_final", "t_w", "t_l", "reference",
)  # fmt: skip
#: Columns summarised by median and quartiles in :func:`region_table`.
QUANTILE_COLUMNS: tuple[str, ...] = ("t_stop", "t_w", "t_l", "p1_final", "p2_final")
SUBSETS: tuple[str, ...] = ("all", "feasible")
#: region_table's columns after the parameter columns, subset and region.
COLUMNS_AFTER_COUNT: list[str] = [
    "count", "share_feasible", *(f"n_{s}" for s in STATUSES),
    *(f"{c}_{q}" for c in QUANTILE_COLUMNS for q in ("median", "q25", "q75")),
    "share_p1_target", "share_l_before_w",
]  # fmt: skip
#: At most this many points go into the finite-difference checks of C1 and C2.
MAX_FD_POINTS = 20_000
BOTTOM_ROW: tuple[str, ...] = ("bottom-left", "bottom", "bottom-right")


def parameter_columns(flows: pd.DataFrame) -> list[str]:
    """The columns whose values identify a parameter combination.

    These are the loss's parameter columns, which come first in flows.csv (before
    ``p1_0``): ["beta", "ref_w", "ref_l"] for DPO with ``reference = "fixed"``; with
    ``reference = "initial"`` the references vary row by row, so only ["beta"].

    Examples
    --------
    >>> cols = ["beta", "ref_w", "ref_l", "p1_0", "reference"]
    >>> parameter_columns(pd.DataFrame([[0.1, 1.0, 1.0, 0.5, "fixed"]], columns=cols))
    ['beta', 'ref_w', 'ref_l']
    >>> parameter_columns(pd.DataFrame([[0.1, 0.5, 0.5, 0.5, "initial"]], columns=cols))
    ['beta']
    """
    if not isinstance(flows, pd.DataFrame):
        raise ValueError(f"flows must be a pandas DataFrame; got {type(flows).__name__}")
    missing = [c for c in ("p1_0", "reference") if c not in flows.columns]
    if missing:
        raise ValueError(f"flows is missing the column(s) {missing}")
    if len(flows) == 0:
        raise ValueError("flows has no rows")
    lead = list(flows.columns[: flows.columns.get_loc("p1_0")])
    if not lead:
        raise ValueError("flows must start with the loss's parameter columns (e.g. beta, ref_w, ref_l) before p1_0")
    modes = sorted(map(str, pd.unique(flows["reference"])))
    if len(modes) != 1 or modes[0] not in ("fixed", "initial"):
        raise ValueError(f"flows' reference column must be all 'fixed' or all 'initial'; got {modes}")
    return [c for c in lead if c not in ("ref_w", "ref_l")] if modes[0] == "initial" else lead


def check_flows(flows: pd.DataFrame, needs: tuple[str, ...] = ()) -> list[str]:
    """Validate a flows table; return its parameter columns.

    Raises ValueError naming missing columns, unknown regions or statuses, or an empty table.
    """
    params = parameter_columns(flows)
    missing = [c for c in (*REQUIRED_COLUMNS, *needs) if c not in flows.columns]
    if missing:
        raise ValueError(f"flows is missing the column(s) {missing}")
    for col, allowed in (("region", REGIONS), ("status", STATUSES)):
        bad = sorted(set(map(str, pd.unique(flows[col]))) - set(allowed))
        if bad:
            raise ValueError(f"flows' {col} column must hold only {list(allowed)}; got {bad}")
    return params


def _as_bool(col: pd.Series) -> np.ndarray:
    """A bool column, also when read back from CSV as strings."""
    if col.dtype == bool:
        return col.to_numpy()
    return col.astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def _combos(flows: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    return flows[params].drop_duplicates().sort_values(params).reset_index(drop=True)


# -- region table --------------------------------------------------------------------------------


def region_table(flows: pd.DataFrame) -> pd.DataFrame:
    """Per parameter combination, subset and region: counts, statuses and quartiles.

    Returns one row per (combination, subset, region), subsets "all" and "feasible"
    (p1_0 + p2_0 <= 1), regions in :data:`flowsim.regions.REGIONS` order; a region with
    no rows in a subset has count 0 and NaN statistics.  Columns: the parameter
    columns, ``subset``, ``region``, ``count``, ``share_feasible``, ``n_converged``,
    ``n_capped``, ``n_timeout``, ``n_failed``, ``<q>_median``, ``<q>_q25``, ``<q>_q75``
    for q in t_stop, t_w, t_l, p1_final, p2_final (times over the flows that reach
    the target; NaN is "never" and is skipped), ``share_p1_target`` (share with t_w
    not NaN) and ``share_l_before_w`` (share with t_l < t_w, NaN counting as +inf, so
    both never is False).
    """
    params = check_flows(flows)
    df = flows[[*params, "region", *QUANTILE_COLUMNS]].copy()
    df["feasible"] = _as_bool(flows["feasible"])
    for s in STATUSES:
        df[f"n_{s}"] = (flows["status"] == s).to_numpy()
    df["share_p1_target"] = flows["t_w"].notna().to_numpy()
    df["share_l_before_w"] = (flows["t_l"].fillna(np.inf) < flows["t_w"].fillna(np.inf)).to_numpy()
    keys = [*params, "region"]
    combos = _combos(flows, params)
    full = pd.MultiIndex.from_tuples(
        [(*row, r) for row in combos.itertuples(index=False, name=None) for r in REGIONS], names=keys
    )
    names = {0.5: "median", 0.25: "q25", 0.75: "q75"}
    pieces = []
    for subset in SUBSETS:
        d = df if subset == "all" else df[df["feasible"]]
        g = d.groupby(keys, sort=False, observed=True)
        agg = g.agg(
            count=("region", "size"),
            share_feasible=("feasible", "mean"),
            **{f"n_{s}": (f"n_{s}", "sum") for s in STATUSES},
            share_p1_target=("share_p1_target", "mean"),
            share_l_before_w=("share_l_before_w", "mean"),
        )
        q = g[list(QUANTILE_COLUMNS)].quantile(list(names)).unstack(-1)
        q.columns = [f"{c}_{names[k]}" for c, k in q.columns]
        t = agg.join(q)[COLUMNS_AFTER_COUNT].reindex(full)
        for c in ["count", *(f"n_{s}" for s in STATUSES)]:
            t[c] = t[c].fillna(0).astype(np.int64)
        t.insert(0, "subset", subset)
        pieces.append(t.reset_index())
    out = pd.concat(pieces, ignore_index=True)
    out["_s"] = out["subset"].map(SUBSETS.index)
    out["_r"] = out["region"].map(REGIONS.index)
    out = out.sort_values([*params, "_s", "_r"], kind="stable")
    return out[[*params, "subset", "region", *COLUMNS_AFTER_COUNT]].reset_index(drop=True)


# -- claims --------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


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
    norm = np.hypot(*np.moveaxis(DPO(beta).grad(np.stack([g1, g2], -1)), -1, 0))
    return float(norm.min()), int((norm <= tol).sum())


class _Group:
    """The arrays of one (combination, subset) that the claim metrics read."""

    def __init__(self, g: pd.DataFrame) -> None:
        self.beta = float(g["beta"].iloc[0])
        self.loss = DPO(self.beta)  # in ratio coordinates the loss does not depend on the references
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
        raise ValueError(f"stop must be a flowsim.records.StopRule; got {type(stop).__name__}")
    th = ClaimThresholds() if thresholds is None else thresholds
    if not isinstance(th, ClaimThresholds):
        raise ValueError(f"thresholds must be a ClaimThresholds; got {type(th).__name__}")
    reference = str(flows["reference"].iloc[0])
    work = flows.assign(_feasible=_as_bool(flows["feasible"]))
    rows = []
    for key, g in work.groupby(params, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        for subset in SUBSETS:
            sub = g if subset == "all" else g[g["_feasible"].to_numpy()]
            found = _measure(_Group(sub), th, stop) if len(sub) else {}
            for c in CLAIMS:
                value, metrics, details = found.get(c.id, (np.nan, _NanMetrics(), "no initial conditions here"))
                verdict, text = c.rule(metrics, th)
                rows.append(
                    {"claim": c.id, **dict(zip(params, key, strict=True)), "reference": reference, "subset": subset,
                     "title": c.title, "paper": c.paper, "where": c.where, "metric": c.metric, "value": value,
                     "details": details, "threshold": text, "verdict": verdict}
                )  # fmt: skip
    out = pd.DataFrame(rows)
    out["_c"] = out["claim"].map([c.id for c in CLAIMS].index)
    return out.sort_values(["_c", *params], kind="stable").drop(columns="_c").reset_index(drop=True)


class _NanMetrics(dict):
    """Metrics for an empty subset: every key reads as NaN."""

    def __missing__(self, key: str) -> float:
        return float("nan")


def _cell(v: object) -> str:
    """A value as a markdown table cell."""
    if isinstance(v, float | np.floating):
        return _fmt(float(v))
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def claims_markdown(claims: pd.DataFrame, title: str = "DPO gradient flow: the paper's claims, tested") -> str:
    """A markdown report of :func:`evaluate_claims`' table.

    A summary (claims by subset, verdicts counted over the parameter combinations), then
    a section per claim: the paper's statement, where it is, the metric, the rule, and a
    table of value, verdict and details per combination and subset.
    """
    need = ["claim", "reference", "subset", "title", "paper", "where", "metric", "value", "details", "threshold",
            "verdict"]  # fmt: skip
    if not isinstance(claims, pd.DataFrame):
        raise ValueError(f"claims must be a DataFrame from evaluate_claims; got {type(claims).__name__}")
    missing = [c for c in need if c not in claims.columns]
    if missing:
        raise ValueError(f"claims is missing the column(s) {missing} (expected the output of evaluate_claims)")
    cols = list(claims.columns)
    params = cols[cols.index("claim") + 1 : cols.index("reference")]
    ref = ", ".join(sorted(map(str, pd.unique(claims["reference"]))))
    ref_text = "reference = SFT model (each start is its own reference)" if ref == "initial" else f"reference: {ref}"
    ids = list(dict.fromkeys(claims["claim"]))
    subsets = [s for s in SUBSETS if s in set(claims["subset"])]
    out = [f"# {title}", ""]
    out += [
        f"{len(claims.groupby(params)) if params else 1} parameter combination(s); {ref_text}. "
        "Subsets: all initial conditions, and the feasible ones (p1 + p2 <= 1). Rules and thresholds: "
        "`flowsim.claims`.",
        "",
    ]
    summary = []
    for cid in ids:
        c = claims[claims["claim"] == cid]
        row: list[object] = [cid, c["title"].iloc[0]]
        for s in subsets:
            counts = c.loc[c["subset"] == s, "verdict"].value_counts()
            v = [f"{k}" if counts[k] == counts.sum() else f"{k} ({counts[k]})" for k in VERDICTS if k in counts]
            row.append(", ".join(v))
        summary.append(row)
    out += [*_table(["claim", "statement", *subsets], summary), ""]
    for cid in ids:
        c = claims[claims["claim"] == cid]
        first = c.iloc[0]
        out += [f"## {cid}. {first['title']}", "", f"> {first['paper']}", ""]
        out += [f"*Where:* {first['where']}. *Metric:* {first['metric']}. *Rule:* {first['threshold']}.", ""]
        rows = [[*(r[p] for p in params), r["subset"], r["value"], f"**{r['verdict']}**", r["details"]]
                for _, r in c.iterrows()]  # fmt: skip
        out += [*_table([*params, "subset", "value", "verdict", "details"], rows), ""]
    return "\n".join(out)
