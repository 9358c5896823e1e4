"""The report's overview parts: how the results were made, Figure 1, the verdicts in the paper's
setting and as beta and the reference change, and the links to the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from flowsim.app.report.common import read_claims, value_verdict, verdict_pivot


def provenance(root: Path, names: list[str]) -> list[str]:
    """Version and commit of the run, and a row per experiment: rows, engines, statuses (nothing that
    changes from one run to the next: times, hosts and loads are in each folder's run.json)."""
    metas = {n: json.loads((root / n / "meta.json").read_text()) for n in names if (root / n / "meta.json").exists()}
    if not metas:
        return []
    m = next(iter(metas.values()))
    out = [
        f"Produced by `flowsim reproduce` (flowsim {m['versions'].get('flowsim', '?')}, commit "
        f"`{m.get('git_commit') or 'unknown'}`). Every number below is read from the files in these folders; "
        "rerun the command to regenerate them (it writes to a scratch folder and says whether they come out the "
        "same). When and where each run was made, and how long it took, is in each folder's `run.json`, which is "
        "not committed.",
        "",
        "| experiment | rows | computed by (rows) | by status |",
        "|---|---|---|---|",
    ]
    for n, m in metas.items():
        st = ", ".join(f"{k} {v}" for k, v in m["counts_by_status"].items() if v)
        out.append(f"| [{n}]({n}/) | {m['rows']:,} | {engines(m)} | {st} |")
    return [*out, ""]


def engines(meta: dict) -> str:
    """How a run's rows were computed, from meta.json: the engine with its method, and the rows of each."""
    method = meta["experiment"]["solver"]["method"]
    names = {
        "batched": f"batched {method}",
        "driver": f"solve_ivp {method}",
        "exact": "closed form",
        "discrete": "optimiser steps",
        "network": "torch training",
        "torch": "torch training",
    }
    counts = meta.get("counts_by_engine") or {method: meta["rows"]}  # run folders from before engines were recorded
    return ", ".join(f"{names.get(k, k)} {v:,}" for k, v in counts.items() if v)


def figure_one(root: Path, names: list[str]) -> list[str]:
    """The paper's Figure 1, redrawn by `flowsim reproduce` beside the report."""
    return [
        "## The paper's Figure 1, redrawn",
        "",
        "![Figure 1](figure1.png)",
        "",
        "The same field with arrow colour on a log scale of |∇L| (the magnitudes span many orders near x2 → 0): "
        "[figure1_log.png](figure1_log.png).",
        "",
    ]


def paper_verdicts(root: Path, names: list[str]) -> list[str]:
    """Each claim's value and verdict on all and on feasible starts, in the paper's setting."""
    paper = read_claims(root, "paper")
    if paper is None:
        return []
    a, f = (paper[paper["subset"] == k].set_index("claim") for k in ("all", "feasible"))
    table = pd.DataFrame(
        {
            "claim": a.index,
            "statement": a["title"],
            "metric (value on all starts)": a["metric"],
            "all starts": value_verdict(a),
            "feasible starts (p1 + p2 ≤ 1)": value_verdict(f.reindex(a.index)),
        }
    )
    return [
        "## Verdicts in the paper's setting (β = 0.1, no reference model)",
        "",
        table.to_markdown(index=False),
        "",
        "Details, with the paper's words and every number behind each verdict: [paper/claims.md](paper/claims.md)."
        " Region tables: [paper/regions.csv](paper/regions.csv).",
        "",
    ]


def beta_verdicts(root: Path, names: list[str]) -> list[str]:
    beta = read_claims(root, "beta")
    if beta is None:
        return []
    return ["## How the verdicts change with β", "", verdict_pivot(beta, ["beta"]).to_markdown(), ""]


def reference_verdicts(root: Path, names: list[str]) -> list[str]:
    ref = read_claims(root, "reference")
    if ref is None:
        return []
    return [
        "## How the verdicts change with the reference model (columns: ref_w, ref_l; β = 0.1)",
        "",
        verdict_pivot(ref, ["ref_w", "ref_l"]).to_markdown(),
        "",
    ]


#: The figures shown in the report: (experiment, file name prefix, caption).
SHOWN_FIGURES = (
    ("paper", "paths", "Flows from the region centres: arcs of circles x1² + x2² = R²"),
    ("paper", "basin", "Where each start ends (final p1) and how long it takes"),
    ("beta", "facet_t_stop", "Time to stop across β"),
    ("standard", "facet_p1_final", "Standard DPO: final p1 over the SFT model's (p1_0, p2_0)"),
    ("standard", "facet_t_stop", "Standard DPO: time to stop"),
)


def figures(root: Path, names: list[str]) -> list[str]:
    """What each experiment's figures/ holds, links to every experiment's facets, and the figures shown."""
    out = [
        "## Figures",
        "",
        "In each experiment's `figures/` folder: `facet_*`, one panel per parameter combination on a shared "
        "scale, of `t_stop`, `p1_final`, `p2_final`, `t_w`, `t_l`, `t_l_over_t_w`, `status` and more over the "
        "SFT model's (p1_0, p2_0); `paths_all` (the flows from the region centres, a panel per combination); "
        "`loss_comparison` where several losses were run; a network's `starts_*` and `trajectories`. An "
        "experiment of one combination also gets its heatmaps, `basin` (final p1 as colour, t_stop as "
        "contours) and `paths` (over the field); `flowsim plot RUN --all` draws them for the others.",
        "",
    ]
    for n in names:
        folder = root / n / "figures"
        facets = sorted(folder.glob("facet_*.png")) if folder.exists() else []
        if facets:
            links = ", ".join(f"[{f.stem.removeprefix('facet_')}]({n}/figures/{f.name})" for f in facets)
            out += [f"- **{n}** ([all figures]({n}/figures/)): {links}"]
    for n, figure, caption in SHOWN_FIGURES:
        hits = sorted((root / n / "figures").glob(f"{figure}*.png")) if (root / n / "figures").exists() else []
        if hits:
            out += ["", f"**{caption}** ({n})", "", f"![{caption}]({n}/figures/{hits[0].name})"]
    return out
