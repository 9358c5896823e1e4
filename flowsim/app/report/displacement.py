"""The report's section on the displacement study (issue #31): which per-pair quantity, computed at the
DPO start, predicts which pairs lose p(y_w)?

Everything is read from the experiments' claims.csv (the study's rows, ``study = displacement``) and
flows.csv (the per-pair columns), and every sentence is generated from the tables it follows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.studies.displacement.d5_cross import PREDICTORS
from flowsim.app.report.common import kept_rows, read_claims

#: The study's settings: (label, experiment, rows kept).  The seed paper's logits and features experiments
#: carry the per-pair columns too (the study pools their cos_wl and norm_ratio); the rest are its own.
DISPLACEMENT_SETTINGS: tuple[tuple[str, str, dict], ...] = (
    ("logits (one start each)", "logits", {"beta": 0.1, "reference": "initial"}),
    ("features (cos_wl, norm_ratio pooled)", "features", {}),
    ("MLP, one-pair trainings", "displacement_mlp", {"n_pairs": 1}),
    ("MLP, datasets of 8 pairs", "displacement_mlp", {"n_pairs": 8}),
    ("transformer, one-pair trainings (the pool)", "displacement_transformer", {"n_pairs": 1}),
    ("transformer, datasets of 4 pairs", "displacement_transformer", {"n_pairs": 4}),
    ("transformer, datasets selected from a pool", "displacement_quantile", {}),
)
#: The experiments the section runs itself (the others are the main table's).
EXPERIMENTS: tuple[str, ...] = ("displacement_mlp", "displacement_transformer", "displacement_quantile")
#: The quantile protocol done as datasets (:mod:`flowsim.model.network.select`): its experiment.
SELECTED = "displacement_quantile"
#: The quantile protocol's predictors and the end claimed to displace (+1 high, -1 low), as Razin et al. rank.
QUANTILE_PREDICTORS: dict[str, int] = {"ches": 1, "ches_ln": 1, "hidden_ip": 1, "pair_edit_distance": -1}
QUANTILE = 0.25


def _flows(root: Path, name: str, where: dict) -> pd.DataFrame | None:
    path = root / name / "flows.csv"
    if not path.exists():
        return None
    rows = kept_rows(pd.read_csv(path), where)
    return rows if len(rows) else None


def _cell(rho: float, lo: float, hi: float) -> str:
    if not np.isfinite(rho):
        return "n/a"
    ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else " [one training]"
    return f"{rho:.2f}{ci}"


def correlations(root: Path) -> pd.DataFrame:
    """Setting (rows) x predictor: (rho, lo, hi) with dlogpw, and the setting's pairs, trainings, share displaced."""
    from flowsim.analysis.studies.displacement.measures import POOL, Pairs
    from flowsim.analysis.verdicts import NotApplicable

    out = {}
    for label, name, where in DISPLACEMENT_SETTINGS:
        rows = _flows(root, name, where)
        if rows is None or not any(p in rows.columns for p in PREDICTORS):
            continue
        pairs = Pairs(rows, POOL)
        rec: dict[str, object] = {
            "pairs": len(pairs.dlogpw),
            "trainings": pairs.n_trainings,
            "share displaced": float(np.mean(pairs.displaced)),
        }
        for p in PREDICTORS:
            try:
                rec[p] = pairs.correlation(p)
            except NotApplicable:
                rec[p] = (np.nan, np.nan, np.nan)
        rec["_pairs"] = pairs
        out[label] = rec
    return pd.DataFrame(out).T


def _best(rec: pd.Series) -> str:
    """'name (rho [lo, hi])' of the predictor with the largest |rho|, and whether its interval excludes 0."""
    found = {p: rec[p] for p in PREDICTORS if np.isfinite(rec[p][0])}
    if not found:
        return "no predictor varies"
    ranked = sorted(found, key=lambda p: -abs(found[p][0]))
    p, (rho, lo, hi) = ranked[0], found[ranked[0]]
    sure = np.isfinite(lo) and (lo > 0 or hi < 0)
    text = f"{p} ({_cell(rho, lo, hi)}; interval {'excludes' if sure else 'includes'} 0)"
    if len(ranked) > 1:
        q, (r2, lo2, hi2) = ranked[1], found[ranked[1]]
        text += f", then {q} ({_cell(r2, lo2, hi2)})"
    return text


def _cross_share(rows: pd.DataFrame) -> tuple[int, int, int]:
    """(displaced pairs, of them with ent_own > 0 > dlogpw_dt0, with ent_own < 0)."""
    need = {"ent_own", "dlogpw_dt0"}
    if not need <= set(rows.columns):
        return 0, 0, 0
    d = rows[rows["displaced"].astype(str).str.lower() == "true"]
    own, total = d["ent_own"].to_numpy(float), d["dlogpw_dt0"].to_numpy(float)
    ok = np.isfinite(own) & np.isfinite(total)
    return int(ok.sum()), int((ok & (own > 0) & (total < 0)).sum()), int((ok & (own < 0)).sum())


def quantiles(table: pd.DataFrame) -> pd.DataFrame:
    """The quantile protocol (after the fact) on each one-pair setting: per predictor, the claimed-displacing
    quartile against the other."""
    from flowsim.analysis.studies.displacement.measures import quantile_comparison
    from flowsim.analysis.verdicts import NotApplicable

    out = []
    for label, rec in table.iterrows():
        pairs = rec["_pairs"]
        if "n_pairs" in pairs.frame.columns and (pairs.frame["n_pairs"] > 1).any():
            continue
        if "pair" not in pairs.frame.columns:
            continue  # a policy model: its starts are no pool of pairs
        for p, end in QUANTILE_PREDICTORS.items():
            try:
                q = quantile_comparison(pairs, p, QUANTILE, end)
            except NotApplicable:
                continue
            out.append(
                {
                    "setting": label,
                    "ranked by": f"{p} ({'high' if end > 0 else 'low'} end claimed to displace)",
                    "pairs per quartile": f"{q['n_hi']:.0f} / {q['n_lo']:.0f}",
                    "mean dlogpw, claimed / other": f"{q['dlogpw_hi']:.2f} / {q['dlogpw_lo']:.2f}",
                    "difference [95%]": _cell(q["dlogpw_diff"], q["dlogpw_diff_lo"], q["dlogpw_diff_hi"]),
                    "share displaced, claimed / other": f"{q['displaced_hi']:.2f} / {q['displaced_lo']:.2f}",
                    "difference [95%] ": _cell(q["displaced_diff"], q["displaced_diff_lo"], q["displaced_diff_hi"]),
                    "_sure": np.isfinite(q["dlogpw_diff_hi"]) and q["dlogpw_diff_hi"] < 0,
                }
            )
    return pd.DataFrame(out)


def selected(root: Path) -> pd.DataFrame:
    """The quantile protocol as datasets: per predictor, DPO on the claimed-displacing end of the pools
    against DPO on the other end (D6's numbers; :func:`~flowsim.analysis.studies.displacement.d6_quantile.compare`),
    and the random control's mean dlogpw and share displaced."""
    from flowsim.analysis.studies.displacement.d6_quantile import ENDS, compare
    from flowsim.analysis.studies.displacement.measures import POOL, Pairs

    rows = _flows(root, SELECTED, {})
    if rows is None or "select" not in rows.columns:
        return pd.DataFrame()
    pairs = Pairs(rows, POOL)
    chosen = pairs.frame["select"].to_numpy(str)
    control = chosen == "random"
    ctrl = f"{pairs.dlogpw[control].mean():.2f} / {pairs.displaced[control].mean():.2f}" if control.any() else "n/a"
    out = []
    trainings = {name: len(np.unique(pairs.units[chosen == name])) for name in np.unique(chosen)}
    for p, (hi, lo) in ENDS.items():
        c = compare(pairs, p)
        if c is None:
            continue
        out.append(
            {
                "predictor": p,
                "trained on": f"{hi} / {lo}",
                "trainings": f"{trainings[hi]} / {trainings[lo]}",
                "mean dlogpw": f"{c['dlogpw_hi']:.2f} / {c['dlogpw_lo']:.2f}",
                "difference [95%]": _cell(c["dlogpw_diff"], c["dlogpw_diff_lo"], c["dlogpw_diff_hi"]),
                "share displaced": f"{c['displaced_hi']:.2f} / {c['displaced_lo']:.2f}",
                "difference [95%] ": _cell(c["displaced_diff"], c["displaced_diff_lo"], c["displaced_diff_hi"]),
                "random: dlogpw / share": ctrl,
                "_dlogpw": np.isfinite(c["dlogpw_diff_hi"]) and c["dlogpw_diff_hi"] < 0,
                "_share": np.isfinite(c["displaced_diff_lo"]) and c["displaced_diff_lo"] > 0,
            }
        )
    return pd.DataFrame(out)


def _selected_lines(q: pd.DataFrame) -> list[str]:
    def named(flag: str) -> str:
        return ", ".join(q.loc[q[flag], "predictor"]) or "none"

    return [
        "**Razin et al.'s quantile protocol, done as datasets** (`experiments/displacement_quantile.toml`): per "
        "seed a pool of pairs is pretrained and SFT'd on, every pool pair ranked by the predictor at the DPO "
        "start, and DPO trains on a quarter of the pool from one end only (a dataset; the reference the SFT "
        "checkpoint). Each cell: the claimed-displacing end / the other (intervals: resampling the seeds within "
        "each end); the random quarter is the control. The claim D6 reads the CHES row.",
        "",
        q.drop(columns=["_dlogpw", "_share"]).to_markdown(index=False),
        "",
        "*Generated from the table.* Training on the claimed-displacing end gives a lower mean dlogpw with the "
        f"difference's interval below 0 for: {named('_dlogpw')}; a higher share displaced with its interval "
        f"above 0 for: {named('_share')}.",
        "",
    ]


def _matrix(root: Path) -> pd.DataFrame | None:
    """The study's claims (rows) in each of its settings whose claims.csv holds its rows (columns)."""
    from flowsim.analysis.verdicts import verdict_matrix

    tables, select, seen = {}, {}, set()
    for label, name, where in DISPLACEMENT_SETTINGS:
        _add(tables, select, seen, label, name, read_claims(root, name, "displacement"), where)
    return verdict_matrix(tables, subset="all", select=select) if tables else None


def _add(tables: dict, select: dict, seen: set, label: str, name: str, claims, where: dict) -> None:
    """A setting's rows of the study, once: settings that differ only in parameters it pools over are one."""
    if claims is None or not len(claims):
        return
    kept = {k: v for k, v in where.items() if k in claims.columns}
    key = (name, tuple(sorted(kept.items())))
    if key not in seen:
        seen.add(key)
        tables[label], select[label] = claims, kept


def displacement_section(root: Path) -> list[str]:
    """What predicts likelihood displacement: the study's verdicts across settings, the predictors' rank
    correlations with intervals, the cross-pair term and the quantile protocol, each followed by what it says."""
    from flowsim.analysis.verdicts import conclusions

    matrix, table = _matrix(root), correlations(root)
    if matrix is None and table.empty:
        return []
    out = [
        "## What predicts likelihood displacement (the second study)",
        "",
        "flowsim's second study (`flowsim/analysis/studies/displacement/`, issue #31): per pair, at the DPO "
        "start, CHES (Razin et al. 2024), the entanglement term (Yuan et al. 2024), the responses' edit "
        "distance and token overlap (Pal et al. 2024), the squeezing effect and the other pairs' pull "
        "(Ren & Sutherland 2024); each claim's rule fixed in its file before any run. dlogpw = log π(y_w) "
        "at the end minus at the start. Intervals are 95% percentile intervals from resampling whole "
        "trainings (1000 resamples, seed 0), never pairs within one. The quantities' definitions: "
        "docs/explanation/displacement-study.md.",
        "",
    ]
    if matrix is not None:
        out += ["**The study's claims in every setting that records the per-pair quantities**", ""]
        # the study has no regions (its family is the thresholds') and no ratio-plane setting
        said = conclusions(matrix, ratio_settings=[], family="each threshold halved and doubled")
        out += [matrix.to_markdown(), "", said, ""]
    if not table.empty:
        out += _correlation_lines(table)
        q = quantiles(table)
        if not q.empty:
            out += _quantile_lines(q)
    chosen = selected(root)
    if not chosen.empty:
        out += _selected_lines(chosen)
    for name in EXPERIMENTS:
        if (root / name / "figures" / "displacement.png").exists():
            out += [f"![each predictor against dlogpw ({name})]({name}/figures/displacement.png)", ""]
    return out


def _correlation_lines(table: pd.DataFrame) -> list[str]:
    shown = table[["pairs", "trainings", "share displaced"]].copy()
    shown["share displaced"] = shown["share displaced"].map(lambda v: f"{v:.2f}")
    for p in PREDICTORS:
        shown[p] = table[p].map(lambda t: _cell(*t))
    shown = shown.loc[:, [c for c in shown.columns if c not in PREDICTORS or (shown[c] != "n/a").any()]]
    lines = [
        "**Spearman ρ of each predictor with dlogpw** (per setting; [95% interval over trainings]; n/a: the "
        "model has no such quantity, or it is constant over the pairs)",
        "",
        shown.to_markdown(),
        "",
        "*Generated from the table.* The predictor with the largest |ρ| per setting: "
        + "; ".join(f"**{label}**: {_best(rec)}" for label, rec in table.iterrows())
        + ".",
        "",
    ]
    cross = []
    for label, rec in table.iterrows():
        frame = rec["_pairs"].frame
        if "n_pairs" in frame.columns and (frame["n_pairs"] > 1).all():
            n, only, own = _cross_share(frame)
            if n:
                cross.append(
                    f"**{label}**: {only} of {n} displaced pairs ({only / n:.0%}) have a positive own-pair term and "
                    f"a negative total first-order rate (only the other pairs' pull explains them); {own} have a "
                    "negative own term"
                )
    if cross:
        lines += ["*The cross-pair term in datasets, generated from the rows.* " + "; ".join(cross) + ".", ""]
    return lines


def _quantile_lines(q: pd.DataFrame) -> list[str]:
    sure = q[q["_sure"]]
    said = (
        "; ".join(f"{r['ranked by'].split(' ')[0]} in {r['setting']}" for _, r in sure.iterrows())
        if len(sure)
        else "none"
    )
    return [
        f"**Razin et al.'s quantile protocol, read after the fact on the one-pair trainings**: the pool ranked by "
        f"each predictor, its top and bottom quartile ({QUANTILE:g}) compared. Each pair here was trained alone, "
        "so this is the cut over one-pair trainings, not Razin et al.'s training on each quartile as a dataset "
        "(intervals: resampling the trainings within each quartile).",
        "",
        q.drop(columns="_sure").to_markdown(index=False),
        "",
        "*Generated from the table.* The claimed-displacing quartile has a lower mean dlogpw with its interval "
        f"below 0 for: {said}.",
        "",
    ]


__all__ = ["DISPLACEMENT_SETTINGS", "EXPERIMENTS", "correlations", "displacement_section", "quantiles", "selected"]
