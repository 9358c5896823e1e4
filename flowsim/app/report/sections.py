"""The report's sections on the parameterisations, the losses, the dynamics and the reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.claims.c6b_conservation import standard_dpo_law
from flowsim.app.report.common import (
    SHORT,
    read_claims,
    region_rows,
    region_spread,
    region_tables,
    setting_label,
    verdict_pivot,
)
from flowsim.experiment.store import read_flows

#: The parameterisations compared in the report: (label, experiment, the rows' parameters).
MODELS = (
    ("ratio plane (the paper's picture)", "standard", {"beta": 0.1}),
    ("softmax logits, K = 10", "logits", {"beta": 0.1, "reference": "initial"}),
    ("log-linear features, cos 0.9, norm ratio 1.25", "features", {"cos_wl": 0.9, "norm_ratio": 1.25}),
)


#: Region-table columns shown per model, with their headings.
MODEL_COLUMNS = {
    "p1_final_median": "final p_w",
    "t_stop_median": "t_stop",
    "share_displaced": "share displaced",
    "share_left": "share leaving the simplex",
}


def models_side_by_side(root: Path) -> list[str]:
    """Final p_w, time to stop, share displaced and share leaving the simplex per region, per model."""
    found = [
        (label, name, rows) for label, name, where in MODELS if (rows := region_rows(root, name, where)) is not None
    ]
    if len(found) < 2:
        return []
    lines = [
        "## The same starts under three parameterisations (DPO, β = 0.1, reference = SFT model)",
        "",
        "Flowing the ratios x (the paper) is not what training does: training moves a policy's parameters, "
        "and gradient flow is not invariant under reparameterisation. Per region of feasible SFT models "
        "(p_w0 + p_l0 ≤ 1), medians over the starts; every number is read from the experiments' "
        "`regions.csv`.",
        "",
    ]
    for col, heading in MODEL_COLUMNS.items():
        table = pd.DataFrame({label: rows[col] for label, _, rows in found}).dropna(how="all")
        lines += [f"**{heading}**", "", table.to_markdown(floatfmt=".3g"), ""]
    return lines


#: Per-loss summaries: heading -> function of one loss's feasible rows (a DataFrame) -> value per region.
LOSS_METRICS = {
    "median final p_w": lambda d: d["p1_final"].median(),
    "share displaced (p_w fell below p_w0)": lambda d: d["displaced"].astype(str).str.lower().eq("true").mean(),
    "share stationary (stopped moving before the margin target)": lambda d: d["status"].eq("stationary").mean(),
    "median time to the margin target (rows that reached it)": lambda d: d.loc[
        d["status"] == "reached_margin", "t_stop"
    ].median(),
}


def losses_section(root: Path, name: str, where: str) -> list[str]:
    """Per loss (rows) and region (columns): final p_w, shares displaced and stationary, time to the margin."""
    csv = root / name / "flows.csv"
    if not csv.exists():
        return []
    flows = read_flows(csv)
    flows = flows[flows["feasible"].astype(str).str.lower().eq("true")]
    meta = json.loads((root / name / "meta.json").read_text())
    target = meta["experiment"]["stop"].get("margin_target")
    lines = [
        f"## The preference losses on {where} (reference = SFT model, margin target {target})",
        "",
        f"Feasible starts of [{name}]({name}/); per loss and region. Losses at TRL's defaults; formulas and "
        "sources in `flowsim/model/losses/`. Final p_w across losses on one scale: "
        f"[{name}/figures/facet_p1_final.png]({name}/figures/facet_p1_final.png).",
        "",
    ]
    return lines + region_tables(dict(list(flows.groupby("loss", sort=True))), LOSS_METRICS)


#: Per-dynamics summaries: heading -> function of one setting's rows -> value per region.
DYNAMICS_METRICS = {
    "median final p_w": lambda d: d["p1_final"].median(),
    "share displaced (p_w fell below p_w0)": lambda d: d["displaced"].astype(str).str.lower().eq("true").mean(),
    "median time to the loss target, t = lr x steps (rows that reached it)": lambda d: d.loc[
        d["status"] == "reached_loss", "t_stop"
    ].median(),
    "median steps to the loss target": lambda d: d.loc[d["status"] == "reached_loss", "steps"].median(),
}


def dynamics_section(root: Path, name: str, where: str) -> list[str]:
    """Per dynamics setting (rows) and region (columns): final p_w, share displaced, time and steps."""
    csv = root / name / "flows.csv"
    if not csv.exists():
        return []
    flows = read_flows(csv)
    flows = flows.assign(setting=flows.apply(setting_label, axis=1))
    meta = json.loads((root / name / "meta.json").read_text())
    target = meta["experiment"]["stop"].get("loss_target")
    lines = [
        f"## Flow, gradient descent and Adam on {where} (DPO, β = 0.1, reference = SFT model)",
        "",
        f"Every run of [{name}]({name}/) stops at the loss target L = {target} (or its step budget). For a "
        "discrete run t = lr × steps: for gradient descent that is the flow's time (GD is its Euler scheme), "
        "for Adam it is only a step count in the flow's units — Adam's steps have a length of about lr in "
        "every coordinate, whatever the gradient.",
        "",
    ]
    return lines + region_tables(dict(list(flows.groupby("setting", sort=False))), DYNAMICS_METRICS)


def reference_free(root: Path, names: list[str]) -> pd.DataFrame | None:
    """Claims of every reference-free run (fixed references equal to 1), one row per (claim, beta, subset)."""
    parts = []
    for n in names:
        c = read_claims(root, n)
        if c is not None and "ref_w" in c and (c["reference"] == "fixed").all():
            parts.append(c[np.isclose(c["ref_w"], 1.0) & np.isclose(c["ref_l"], 1.0)])
    if not parts:
        return None
    return pd.concat(parts).drop_duplicates(["claim", "beta", "subset"], keep="first")


def reference_side_by_side(root: Path, names: list[str]) -> list[str]:
    """Reference-free runs and standard DPO side by side (nothing without claims of both)."""
    std, free = read_claims(root, "standard"), reference_free(root, names)
    return [] if std is None or free is None else side_by_side(root, free, std, names)


def side_by_side(root: Path, free: pd.DataFrame, std: pd.DataFrame, names: list[str]) -> list[str]:
    lines = ["## Reference-free (the paper's Figure 1) and standard DPO (reference = SFT model), side by side", ""]
    for subset, label in (("all", "all starts"), ("feasible", "feasible starts (p1 + p2 ≤ 1)")):
        a, b = verdict_pivot(free, ["beta"], subset), verdict_pivot(std, ["beta"], subset)
        cols = [c for c in b.columns if c in a.columns]
        both = pd.DataFrame(
            {
                f"β = {c}": [
                    f"{SHORT.get(x, '—')} → {SHORT.get(y, '—')}"
                    for x, y in zip(a[c].reindex(b.index), b[c], strict=True)
                ]
                for c in cols
            },
            index=b.index,
        )
        lines += [f"Verdicts on {label}: reference-free → standard DPO.", "", both.to_markdown(), ""]
    std_csv = root / "standard" / "flows.csv"
    if std_csv.exists():
        meta = json.loads((root / "standard" / "meta.json").read_text())
        law = standard_dpo_law(read_flows(std_csv), p2_floor=meta["experiment"]["stop"]["p2_floor"])
        free_runs = [n for n in names if n != "standard"]
        s_free = next((r for n in free_runs if (r := region_spread(root, n, 0.1))), None)
        s_std = region_spread(root, "standard", 0.1)
        lines += [
            "**What changes, and why.** Along every flow x1² + x2² is conserved, and a flow stops when x2 reaches "
            "the floor or x1 reaches its cap 1/ref_w. Without a reference (the paper's picture) the start is the "
            "SFT model's own (p1, p2), so the radius R = |(p1_0, p2_0)| — and with it where the flow ends — "
            "changes across the square: a model starting near the lower-left corner ends with p1 = R, small. In "
            "standard DPO every flow starts at x = (1, 1), so R² = 2 for every SFT model. The flow converges iff "
            "p1_0 ≤ 1/√2 and then ends at p1 ≈ √2·p1_0; otherwise it is capped at p1 = 1 with "
            "p2 = p2_0·√(2 − 1/p1_0²). DPO can at most multiply the SFT model's preferred probability by √2 "
            "before the dispreferred one is gone, and how long that takes depends only on β and on where the cap "
            "cuts the same arc.",
            "",
            f"Checked on the {len(read_flows(std_csv)):,} standard-DPO rows: share capped "
            f"{law['share_capped_data']:.4f} (the law says {law['share_capped_law']:.4f}; "
            f"{law['status_mismatches']} status mismatches), worst relative deviation of the final p1 from the law "
            f"{law['max_rel_err_p1']:.1e} and of the final p2 {law['max_rel_err_p2']:.1e}, largest gain "
            f"p1_final/p1_0 = {law['max_gain_p1']:.6f} (√2 = {math.sqrt(2):.6f}).",
        ]
        if s_free and s_std:
            lines += [
                "",
                f"At β = 0.1 the region medians of t_stop span {s_free['t_stop_min']:.3g}–{s_free['t_stop_max']:.3g} "
                f"(×{s_free['t_stop_spread']:.3g}) reference-free and {s_std['t_stop_min']:.3g}–"
                f"{s_std['t_stop_max']:.3g} (×{s_std['t_stop_spread']:.3g}) in standard DPO; the region medians of "
                f"the final p1 span {s_free['p1_final_min']:.3g}–{s_free['p1_final_max']:.3g} and "
                f"{s_std['p1_final_min']:.3g}–{s_std['p1_final_max']:.3g}.",
            ]
        lines.append("")
    return lines
