"""The numbers the displacement study's claims share: the outcome, the trainings, rank correlations
with their bootstrap interval over trainings, and the quantile comparison.

Pairs of one training share its parameters and its noise, so they are not independent: the
interval of a rank correlation resamples whole *trainings* (a cluster bootstrap), never pairs
within one.  A training is the set of rows sharing the study's pooled columns (its seeds and
similarity settings) and the SFT target (:func:`training_ids`); a row of a policy model (logits,
features: each start its own flow) is a training of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from flowsim.analysis.tables import as_bool
from flowsim.analysis.verdicts import NotApplicable, fmt

#: Resamples of the cluster bootstrap, its seed (fixed: the interval is part of a verdict), its level.
N_BOOT, BOOT_SEED, LEVEL = 1000, 0, 0.95
#: At most this many (resample x row) cells per interval: a large table (a policy model's grid of
#: thousands of starts, each its own training) gets fewer resamples, never fewer than :data:`MIN_BOOT`.
MAX_CELLS, MIN_BOOT = 500_000, 200
#: The parameter columns the study pools its groups over: replicate seeds and the pairs' similarity
#: settings (a rank correlation over pairs needs many trainings and pairs that differ).
POOL: tuple[str, ...] = (
    "init_seed",
    "data_seed",
    "batch_seed",
    "language_seed",
    "edit_distance",
    "shared_prefix",
    "same_class",
    "cos_wl",
    "norm_ratio",
    "select",
)
#: The columns that tell a network's trainings apart within a group, besides the study's pooled ones.
TRAINING_COLUMNS = ("n_pairs", "target_w", "target_l")
#: A network training's own numbers, the same on each of its rows (its dataset's means): they tell
#: apart trainings whose recorded keys are all equal (e.g. a setting that is not a column).
TRAINING_MEANS = ("p1_0_mean", "p2_0_mean", "loss_final_mean")


def outcome(frame: pd.DataFrame) -> np.ndarray:
    """dlogpw: log pi(y_w) at the end minus at the start, per row.

    A network row records log pi(y_w) (``logp_w_final - logp_w0``); elsewhere log(p1_final / p1_0).
    NaN where a row failed.
    """
    if {"logp_w0", "logp_w_final"} <= set(frame.columns):
        d = frame["logp_w_final"].to_numpy(float) - frame["logp_w0"].to_numpy(float)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(frame["p1_final"].to_numpy(float) / frame["p1_0"].to_numpy(float))
    return np.where(frame["status"].to_numpy(str) == "failed", np.nan, d)


def canonical(frame: pd.DataFrame, pooled: tuple[str, ...]) -> pd.DataFrame:
    """The rows in an order that does not depend on the table's (the bootstrap draws trainings by position)."""
    keys = [c for c in (*pooled, *TRAINING_COLUMNS, "pair", "p1_0", "p2_0") if c in frame.columns]
    return frame.sort_values(keys, kind="stable", na_position="last") if keys else frame


def training_ids(frame: pd.DataFrame, pooled: tuple[str, ...]) -> np.ndarray:
    """An integer per row naming its training (see the module docstring), in sorted order of the keys."""
    if "pair" not in frame.columns:  # a policy model: every start is its own flow
        return np.arange(len(frame))
    keys = [c for c in (*pooled, *TRAINING_COLUMNS, *TRAINING_MEANS) if c in frame.columns]
    ids = frame.groupby(keys, sort=True, dropna=False).ngroup().to_numpy() if keys else np.zeros(len(frame), int)
    return ids


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with < 3 points or a constant side."""
    if len(x) < 3:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mid-ranks of ``x`` (n,) in each resample of it that holds element i ``w[b, i]`` times, shape (B, n).

    The w copies of an element tie with each other (and with equal values), so its rank in the
    resample is the mid-rank of its tie group: the weight below the group plus (the group's weight + 1) / 2.
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1  # the tie group of each sorted element
    weight = np.add.reduceat(w[:, order], starts, axis=1)  # (B, groups)
    mid = np.cumsum(weight, axis=1) - weight + (weight + 1) / 2
    out = np.empty_like(w, dtype=float)
    out[:, order] = mid[:, group]
    return out


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson's r of (a, b) per row under weights w, all (B, n); NaN where a side is constant."""
    tot = w.sum(axis=1, keepdims=True)
    da = a - (w * a).sum(axis=1, keepdims=True) / tot
    db = b - (w * b).sum(axis=1, keepdims=True) / tot
    cov, va, vb = ((w * u * v).sum(axis=1) for u, v in ((da, db), (da, da), (db, db)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(va * vb)
    return np.where((va > 1e-12 * tot[:, 0] ** 3) & (vb > 1e-12 * tot[:, 0] ** 3), r, np.nan)


def resampled_spearman(x: np.ndarray, y: np.ndarray, units: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """:func:`spearman` of (x, y) in ``n_boot`` resamples of whole units drawn with replacement, shape (n_boot,).

    A resample is a weight per row (how many times its unit was drawn): the same numbers as
    concatenating the drawn units' rows, computed at once for every resample.
    """
    codes = np.unique(units, return_inverse=True)[1]
    k = int(codes.max()) + 1
    draws = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    counts = np.stack([np.bincount(d, minlength=k) for d in draws])  # (B, k): times each unit was drawn
    w = counts[:, codes].astype(float)
    return _weighted_pearson(_weighted_ranks(x, w), _weighted_ranks(y, w), w)


def cluster_interval(
    x: np.ndarray, y: np.ndarray, units: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED, level: float = LEVEL
) -> tuple[float, float]:
    """The percentile interval of :func:`spearman` under resampling whole units (trainings) with replacement.

    (NaN, NaN) with fewer than 2 units or when most resamples have no correlation (a constant side).
    Over more than MAX_CELLS / n_boot rows, MAX_CELLS / rows resamples (at least MIN_BOOT).
    """
    if len(np.unique(units)) < 2 or len(x) < 3:
        return float("nan"), float("nan")
    n_boot = max(MIN_BOOT, min(n_boot, MAX_CELLS // len(x)))
    stats = resampled_spearman(np.asarray(x, float), np.asarray(y, float), units, n_boot, seed)
    if np.isnan(stats).mean() > 0.5:
        return float("nan"), float("nan")
    lo, hi = np.nanquantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


class Pairs:
    """The pairs of one group as the study reads them: outcome, displaced, trainings, in canonical order."""

    def __init__(self, frame: pd.DataFrame, pooled: tuple[str, ...]) -> None:
        f = canonical(frame[frame["status"].to_numpy(str) != "failed"], pooled)
        self.frame = f
        self.dlogpw = outcome(f)
        self.displaced = as_bool(f["displaced"]) if "displaced" in f.columns else self.dlogpw < 0
        self.units = training_ids(f, pooled)
        self.n_trainings = len(np.unique(self.units))
        self._rho: dict[str, tuple[float, float, float]] = {}

    def column(self, name: str) -> np.ndarray:
        """A predictor column as floats; NotApplicable when missing, all NaN or constant (no ranking)."""
        if name not in self.frame.columns:
            raise NotApplicable(f"the rows lack the column {name}")
        v = self.frame[name].to_numpy(float)
        ok = np.isfinite(v) & np.isfinite(self.dlogpw)
        if not ok.any():
            raise NotApplicable(f"{name} is NaN on every pair: the model has no such quantity")
        if np.ptp(v[ok]) == 0:
            raise NotApplicable(f"{name} is constant ({fmt(v[ok][0])}) over the pairs here: it ranks nothing")
        return v

    def correlation(self, name: str, other: np.ndarray | None = None) -> tuple[float, float, float]:
        """(rho, lo, hi): Spearman of column ``name`` with dlogpw (or ``other``) and its interval over trainings."""
        v, y = self.column(name), self.dlogpw if other is None else other
        if other is not None or name not in self._rho:
            ok = np.isfinite(v) & np.isfinite(y)
            found = (spearman(v[ok], y[ok]), *cluster_interval(v[ok], y[ok], self.units[ok]))
            if other is not None:
                return found
            self._rho[name] = found
        return self._rho[name]

    def quantile_gap(self, name: str, q: float) -> tuple[float, float, float]:
        """(share displaced in the top ``q`` quantile of ``name``, in the bottom one, top minus bottom)."""
        v = self.column(name)
        ok = np.isfinite(v)
        lo, hi = np.quantile(v[ok], [q, 1 - q])
        top, bottom = ok & (v >= hi), ok & (v <= lo)
        a, b = float(self.displaced[top].mean()), float(self.displaced[bottom].mean())
        return a, b, a - b


def quantile_comparison(
    pairs: Pairs, name: str, q: float, end: int = 1, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> dict[str, float]:
    """Razin et al.'s quantile protocol, read after the fact: the pairs ranked by ``name``, its
    top and bottom ``q`` quantiles compared.

    ``end`` = +1 when the high end of the predictor is the one claimed to displace (CHES,
    hidden_ip), -1 when the low end is (edit distance).  Returns the mean dlogpw and the share
    displaced in the claimed-displacing quantile ("hi") and the other ("lo"), their differences
    hi - lo, and the 95% interval of each difference from resampling the trainings within each
    quantile (the ranking fixed); NaN intervals with fewer than 2 trainings in a quantile.
    """
    v = pairs.column(name) * end
    ok = np.isfinite(v) & np.isfinite(pairs.dlogpw)
    lo_cut, hi_cut = np.quantile(v[ok], [q, 1 - q])
    return compare_sides(pairs, ok & (v >= hi_cut), ok & (v <= lo_cut), n_boot, seed)


def compare_sides(
    pairs: Pairs, hi: np.ndarray, lo: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> dict[str, float]:
    """Mean dlogpw and share displaced of the pairs ``hi`` and ``lo`` (boolean masks), their differences
    hi - lo, and the 95% interval of each difference from resampling the trainings within each side.

    Keys ``n_hi``, ``n_lo``, ``dlogpw_hi``, ``displaced_hi``, ... , ``dlogpw_diff`` with
    ``dlogpw_diff_lo``, ``dlogpw_diff_hi`` (and the same for ``displaced``); NaN intervals with fewer
    than 2 trainings on a side.
    """
    sides = {"hi": hi & np.isfinite(pairs.dlogpw), "lo": lo & np.isfinite(pairs.dlogpw)}
    out: dict[str, float] = {"n_hi": float(sides["hi"].sum()), "n_lo": float(sides["lo"].sum())}
    rng = np.random.default_rng(seed)
    boot = {}
    for side, sel in sides.items():
        d, disp, units = pairs.dlogpw[sel], pairs.displaced[sel].astype(float), pairs.units[sel]
        out[f"dlogpw_{side}"], out[f"displaced_{side}"] = float(d.mean()), float(disp.mean())
        codes = np.unique(units, return_inverse=True)[1]
        k = int(codes.max()) + 1
        if k < 2:
            boot[side] = None
            continue
        w = np.stack([np.bincount(r, minlength=k) for r in rng.integers(0, k, size=(n_boot, k))])[:, codes]
        boot[side] = ((w * d).sum(1) / w.sum(1), (w * disp).sum(1) / w.sum(1))
    for i, what in enumerate(("dlogpw", "displaced")):
        out[f"{what}_diff"] = out[f"{what}_hi"] - out[f"{what}_lo"]
        if boot["hi"] is None or boot["lo"] is None:
            out[f"{what}_diff_lo"] = out[f"{what}_diff_hi"] = float("nan")
        else:
            diff = boot["hi"][i] - boot["lo"][i]
            out[f"{what}_diff_lo"], out[f"{what}_diff_hi"] = (float(x) for x in np.quantile(diff, [0.025, 0.975]))
    return out


def rho_text(name: str, rho: float, lo: float, hi: float) -> str:
    """'name: rho = r [lo, hi]' (the interval 'n/a' with one training)."""
    ci = f"[{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) else "[n/a: one training]"
    return f"{name}: rho = {fmt(rho)} {ci}"


__all__ = [
    "BOOT_SEED",
    "LEVEL",
    "N_BOOT",
    "POOL",
    "TRAINING_MEANS",
    "Pairs",
    "canonical",
    "cluster_interval",
    "compare_sides",
    "outcome",
    "quantile_comparison",
    "resampled_spearman",
    "rho_text",
    "spearman",
    "training_ids",
]
