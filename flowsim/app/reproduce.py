"""``flowsim reproduce``: every shipped experiment run, analysed and plotted, and the
findings written to ``results/README.md``.

The new results are built in ``results/.staging`` and moved into place only when all of
them are done; the folders they replace are kept in ``results/.previous`` (one
generation, not committed), and the new claim values are compared with the replaced ones.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.analysis.claims.c6b_conservation import standard_dpo_law
from flowsim.app.analyze import analyze
from flowsim.app.plot import plot
from flowsim.app.run import load
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.parallel import backend, default_backend
from flowsim.experiment.store import SweepError, git_commit, read_flows
from flowsim.plotting import plot_field

#: Experiments in the order the report shows them; others found in the folder follow.
ORDER = ("paper", "beta", "reference", "standard", "logits", "features", "optimisers", "losses", "network",
         "network_sft", "network_pairs")  # fmt: skip
SKIP = ("smoke",)
REPORT_FILES = ("README.md", "figure1.png", "figure1_log.png")


def reproduce(
    experiments: Path, results: Path, *, n_jobs: int = -1, progress: bool = True, allow_dirty: bool = False
) -> Path:
    """Run, analyse and plot every experiment in ``experiments``; return results/README.md.

    Published results must come from a commit: with changes to tracked files this refuses
    (a SweepError) unless ``allow_dirty``, since the results would name a commit that did
    not make them.
    """
    commit = git_commit()
    if commit and commit.endswith("-dirty") and not allow_dirty:
        raise SweepError(
            f"the working tree has uncommitted changes (commit {commit}): commit them first, so that the "
            "published results name the code that made them, or pass --allow-dirty"
        )
    files = sorted(p for p in experiments.glob("*.toml") if p.stem not in SKIP)
    if not files:
        raise FileNotFoundError(f"no experiment files in {experiments}")
    exps = [load(p) for p in files]  # validate them all before any work
    exps.sort(key=lambda e: (ORDER.index(e.name) if e.name in ORDER else len(ORDER), e.name))
    staging = results / ".staging"
    if staging.exists():
        shutil.rmtree(staging)  # a reproduction interrupted earlier; nothing of it was published
    staging.mkdir(parents=True)
    t_all = time.perf_counter()
    for exp in exps:  # each sweep uses every worker itself
        meta = run_sweep(exp, staging / exp.name, n_jobs=n_jobs, progress=progress)
        print(f"{exp.name}: {meta['rows']} rows in {meta['wall_time_s']:.1f} s")
    # the analyses and figures (most of the time) are independent: one experiment per worker
    tasks = [("experiment", staging / e.name, progress) for e in exps]
    tasks += [("field", staging / f"figure1{tail}.png", log) for tail, log in (("", False), ("_log", True))]
    with backend(default_backend(), None, n_jobs) as pmap:
        for line in pmap(_report_part, tasks):
            print(line)
    (staging / "README.md").write_text(build_report(staging, [e.name for e in exps]))

    changes = compare_claims(results, staging, [e.name for e in exps])
    previous = results / ".previous"
    if previous.exists():
        shutil.rmtree(previous)
    previous.mkdir()
    for name in [e.name for e in exps] + list(REPORT_FILES):
        if (results / name).exists():
            shutil.move(results / name, previous / name)
        shutil.move(staging / name, results / name)
    shutil.rmtree(staging)
    print(f"reproduced {len(exps)} experiments in {time.perf_counter() - t_all:.0f} s -> {results / 'README.md'}")
    print(changes or "claims: no earlier results to compare with")
    return results / "README.md"


def _report_part(task: tuple[str, Path, bool]) -> str:
    """One experiment analysed and plotted, or Figure 1 drawn (on a worker); a line saying so."""
    kind, path, flag = task
    t0 = time.perf_counter()
    if kind == "field":
        plot_field(beta=0.1, out=path, log_scale=flag)
        return f"{path.name}: {time.perf_counter() - t0:.1f} s"
    analyze(path, progress=flag)
    figs = plot(path, progress=flag)
    return f"{path.name}: analysed, {len(figs)} figures, {time.perf_counter() - t0:.1f} s"


#: claims.csv columns that are a claim's outcome; the others (claim, parameters, subset, model) name its row.
_OUTCOME = frozenset({"title", "paper", "where", "metric", "value", "details", "threshold", "verdict", "robustness",
                      "n_rows", "n_failed", "failed_left_out"})  # fmt: skip


def compare_claims(old_root: Path, new_root: Path, names: list[str]) -> str:
    """A line per experiment: are the claim values and verdicts the same as before, and if not, which?

    Rows are matched on the columns that name them (claim, parameters, subset, model), so a new
    claim or setting is reported as such and the rows both tables have are still compared.
    """
    lines = []
    for name in names:
        old, new = old_root / name / "claims.csv", new_root / name / "claims.csv"
        if old.exists():
            lines.append(f"claims {name}: " + _compare(pd.read_csv(old), pd.read_csv(new)))
    return "\n".join(lines)


def _compare(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """What changed from claims table ``a`` to ``b``, in one line."""
    key = [c for c in b.columns if c in a.columns and c not in _OUTCOME]
    both = pd.merge(a[[*key, "value", "verdict"]].astype({k: str for k in key}),
                    b[[*key, "value", "verdict"]].astype({k: str for k in key}),
                    on=key, how="outer", suffixes=("_a", "_b"), indicator=True)  # fmt: skip
    added = sorted(set(both.loc[both["_merge"] == "right_only", "claim"]))
    gone = sorted(set(both.loc[both["_merge"] == "left_only", "claim"]))
    shared = both[both["_merge"] == "both"]
    flipped = sorted(set(shared.loc[shared["verdict_a"] != shared["verdict_b"], "claim"]))
    va, vb = shared["value_a"].to_numpy(float), shared["value_b"].to_numpy(float)
    same = np.isclose(va, vb, rtol=1e-9, atol=0, equal_nan=True)
    moved = sorted(set(shared.loc[~same, "claim"]))
    parts = [
        f"{len(shared)} rows in both: "
        + ("same verdicts" if not flipped else f"verdicts changed for {', '.join(flipped)}")
    ]
    if moved:
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = np.nanmax(np.abs(vb - va)[~same] / np.abs(va[~same]))
        parts.append(f"values changed for {', '.join(moved)} (largest relative change {worst:.2e})")
    else:
        parts.append("values identical")
    if added:
        parts.append(f"{int((both['_merge'] == 'right_only').sum())} new rows ({', '.join(added)})")
    if gone:
        parts.append(f"{int((both['_merge'] == 'left_only').sum())} rows gone ({', '.join(gone)})")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------
# The report


def _claims(root: Path, name: str) -> pd.DataFrame | None:
    path = root / name / "claims.csv"
    return pd.read_csv(path) if path.exists() else None


def _v(v: object) -> str:
    return f"{v:g}" if isinstance(v, float | int | np.floating | np.integer) and not isinstance(v, bool) else str(v)


def _verdict_pivot(claims: pd.DataFrame, columns: list[str], subset: str = "all") -> pd.DataFrame:
    """Claims (rows) by parameter setting (columns, in numeric order) -> verdict."""
    c = claims[claims["subset"] == subset].dropna(subset=columns).copy()  # claims across settings: no column
    c["label"] = c["claim"] + " " + c["title"]
    settings = c[columns].drop_duplicates().sort_values(columns)
    names = [", ".join(_v(v) for v in row) for row in settings.itertuples(index=False)]
    c["setting"] = c[columns].apply(lambda r: ", ".join(_v(v) for v in r), axis=1)
    table = c.pivot_table(index="label", columns="setting", values="verdict", aggfunc="first", sort=False)
    return table[names].rename_axis(index=None, columns=None)


_SHORT = {"supported": "supported", "partly supported": "partly", "not supported": "not", "not applicable": "n/a"}


def _value_verdict(claims: pd.DataFrame) -> list[str]:
    return [f"{v:.4g}: **{d}**" for v, d in zip(claims["value"], claims["verdict"], strict=True)]


def _region_spread(root: Path, name: str, beta: float) -> dict[str, float] | None:
    path = root / name / "regions.csv"
    if not path.exists():
        return None
    r = pd.read_csv(path)
    r = r[(r["subset"] == "all") & np.isclose(r["beta"], beta)]
    if "ref_w" in r and r["ref_w"].notna().any():
        r = r[np.isclose(r["ref_w"], 1.0) & np.isclose(r["ref_l"], 1.0)]
    if r.empty:
        return None
    return {
        "t_stop_spread": float(r["t_stop_median"].max() / r["t_stop_median"].min()),
        "t_stop_min": float(r["t_stop_median"].min()),
        "t_stop_max": float(r["t_stop_median"].max()),
        "p1_final_min": float(r["p1_final_median"].min()),
        "p1_final_max": float(r["p1_final_median"].max()),
    }


def build_report(root: Path, names: list[str]) -> str:
    """results/README.md from the analysed experiment folders under ``root``."""
    out = ["# flowsim results", ""]
    out += _across_settings(root)
    metas = {n: json.loads((root / n / "meta.json").read_text()) for n in names if (root / n / "meta.json").exists()}
    if metas:
        m = next(iter(metas.values()))
        out += [
            f"Produced by `flowsim reproduce` (flowsim {m['versions'].get('flowsim', '?')}, commit "
            f"`{m.get('git_commit') or 'unknown'}`, {m['finished']}). Every number below is read from the "
            "files in these folders; rerun the command to regenerate them.",
            "",
            "| experiment | flows | method | wall time (s) | by status |",
            "|---|---|---|---|---|",
        ]
        for n, m in metas.items():
            st = ", ".join(f"{k} {v}" for k, v in m["counts_by_status"].items() if v)
            method = m["experiment"]["solver"]["method"]
            out.append(f"| [{n}]({n}/) | {m['rows']:,} | {method} | {m['wall_time_s']:.1f} | {st} |")
        out.append("")
    out += ["## The paper's Figure 1, redrawn", "",
            "![Figure 1](figure1.png)", "",
            "The same field with arrow colour on a log scale of |∇L| (the magnitudes span many orders near x2 → 0): "
            "[figure1_log.png](figure1_log.png).", ""]  # fmt: skip

    paper = _claims(root, "paper")
    if paper is not None:
        out += ["## Verdicts in the paper's setting (β = 0.1, no reference model)", ""]
        a, f = (paper[paper["subset"] == k].set_index("claim") for k in ("all", "feasible"))
        table = pd.DataFrame({
            "claim": a.index, "statement": a["title"], "metric (value on all starts)": a["metric"],
            "all starts": _value_verdict(a),
            "feasible starts (p1 + p2 ≤ 1)": _value_verdict(f.reindex(a.index)),
        })  # fmt: skip
        out += [table.to_markdown(index=False), ""]
        out += [
            "Details, with the paper's words and every number behind each verdict: [paper/claims.md](paper/claims.md)."
            " Region tables: [paper/regions.csv](paper/regions.csv).",
            "",
        ]

    beta = _claims(root, "beta")
    if beta is not None:
        out += ["## How the verdicts change with β", "", _verdict_pivot(beta, ["beta"]).to_markdown(), ""]  # fmt: skip
    ref = _claims(root, "reference")
    if ref is not None:
        out += ["## How the verdicts change with the reference model (columns: ref_w, ref_l; β = 0.1)", "",
                _verdict_pivot(ref, ["ref_w", "ref_l"]).to_markdown(), ""]  # fmt: skip

    std = _claims(root, "standard")
    free = _reference_free(root, names)
    if std is not None and free is not None:
        out += _side_by_side(root, free, std, names)
    out += _beyond_the_ratio_plane(root)
    out += network_section(root)

    out += ["## Figures", "",
            "Per parameter combination, in each experiment's `figures/` folder: heatmaps over the SFT model's "
            "(p1_0, p2_0) of `t_stop`, `p1_final`, `p2_final`, `t_w`, `t_l`, `t_l_over_t_w` and `status`; `basin_*` "
            "(final p1 as colour, t_stop as contours); `paths_*` (flows from the region centres over the field); "
            "and `facet_*`, one panel per combination on a shared scale.", ""]  # fmt: skip
    for n in names:
        folder = root / n / "figures"
        facets = sorted(folder.glob("facet_*.png")) if folder.exists() else []
        if facets:
            links = ", ".join(f"[{f.stem.removeprefix('facet_')}]({n}/figures/{f.name})" for f in facets)
            out += [f"- **{n}** ([all figures]({n}/figures/)): {links}"]
    for n, figure, caption in (
        ("paper", "paths", "Flows from the region centres: arcs of circles x1² + x2² = R²"),
        ("paper", "basin", "Where each start ends (final p1) and how long it takes"),
        ("beta", "facet_t_stop", "Time to stop across β"),
        ("standard", "facet_p1_final", "Standard DPO: final p1 over the SFT model's (p1_0, p2_0)"),
        ("standard", "facet_t_stop", "Standard DPO: time to stop"),
    ):
        hits = sorted((root / n / "figures").glob(f"{figure}*.png")) if (root / n / "figures").exists() else []
        if hits:
            out += ["", f"**{caption}** ({n})", "", f"![{caption}]({n}/figures/{hits[0].name})"]
    return "\n".join(out) + "\n"


#: The parameterisations compared in the report: (label, experiment, the rows' parameters).
MODELS = (
    ("ratio plane (the paper's picture)", "standard", {"beta": 0.1}),
    ("softmax logits, K = 10", "logits", {"beta": 0.1, "reference": "initial"}),
    ("log-linear features, cos 0.9, norm ratio 1.25", "features", {"cos_wl": 0.9, "norm_ratio": 1.25}),
)
#: Region-table columns shown per model, with their headings.
MODEL_COLUMNS = {"p1_final_median": "final p_w", "t_stop_median": "t_stop", "share_displaced": "share displaced",
                 "share_left": "share leaving the simplex"}  # fmt: skip


def _region_rows(root: Path, name: str, where: dict) -> pd.DataFrame | None:
    """The feasible-start rows of an experiment's regions.csv matching ``where``, indexed by region."""
    path = root / name / "regions.csv"
    if not path.exists():
        return None
    r = pd.read_csv(path)
    r = r[r["subset"] == "feasible"]
    for k, v in where.items():
        if k in r:
            r = r[np.isclose(r[k], v)] if isinstance(v, float) else r[r[k] == v]
    if r.empty:
        return None
    r = r.set_index("region")
    r["share_left"] = r["n_left_simplex"] / r["count"]
    return r


def _models_side_by_side(root: Path) -> list[str]:
    """Final p_w, time to stop, share displaced and share leaving the simplex per region, per model."""
    found = [
        (label, name, rows) for label, name, where in MODELS if (rows := _region_rows(root, name, where)) is not None
    ]
    if len(found) < 2:
        return []
    lines = ["## The same starts under three parameterisations (DPO, β = 0.1, reference = SFT model)", "",
             "Flowing the ratios x (the paper) is not what training does: training moves a policy's parameters, "
             "and gradient flow is not invariant under reparameterisation. Per region of feasible SFT models "
             "(p_w0 + p_l0 ≤ 1), medians over the starts; every number is read from the experiments' "
             "`regions.csv`.", ""]  # fmt: skip
    for col, heading in MODEL_COLUMNS.items():
        table = pd.DataFrame({label: rows[col] for label, _, rows in found}).dropna(how="all")
        lines += [f"**{heading}**", "", table.to_markdown(floatfmt=".3g"), ""]
    return lines


#: The settings of the report's first table: (column, experiment, rows kept, split by a column).
SETTINGS = (
    ("ratio, reference-free (paper)", "paper", {}, None),
    ("ratio, standard", "standard", {"beta": 0.1}, None),
    ("ratio, references swept", "reference", {}, None),
    ("logits, standard", "logits", {"beta": 0.1, "reference": "initial"}, None),
    ("features cos 0.9, standard", "features", {"cos_wl": 0.9, "norm_ratio": 1.25}, None),
    ("features, cos swept", "features", {"norm_ratio": 1.25}, None),
    ("logits + Adam", "optimisers", {"dynamics": "adam", "lr": 0.01}, None),
    ("features + Adam", "optimisers_features", {"dynamics": "adam", "lr": 0.01}, None),
    ("network, one pair", "network", {"n_pairs": 1, "dynamics": "gd"}, None),
    ("network, 8 pairs", "network", {"n_pairs": 8, "dynamics": "gd"}, None),
    ("network, 8 pairs + Adam", "network", {"n_pairs": 8, "dynamics": "adam"}, None),
    ("network, edit distance swept", "network_pairs", {"dynamics": "gd", "batch_size": 0, "n_prompts": 0}, None),
    ("ratio, loss", "losses", {}, "loss"),
    ("logits, loss", "losses_logits", {}, "loss"),
)


def _across_settings(root: Path) -> list[str]:
    """The opening tables: every claim in every model setting, then per loss, and the paragraph read from them."""
    from flowsim.analysis.verdicts import conclusions, verdict_matrix

    main, per_loss = _tables(root, by_loss=False), _tables(root, by_loss=True)
    out = []
    if main[0]:
        matrix = verdict_matrix(main[0], subset="all", select=main[1])
        out += [
            "## Which of the paper's conclusions survive", "",
            "Each claim of the paper (rows; C6b and C7–C12 are flowsim's additions, LD is Razin et al. 2024's "
            "likelihood displacement; see the claims files) measured "
            "in every setting (columns): the verdict on all starts, `robust` if it holds under every alternative "
            "region cut and threshold of the fixed sensitivity family (`flowsim/analysis/sensitivity.py`), else "
            "`fragile`. Generated from the `claims.csv` files beside this page; nothing in it is typed by hand.", "",
            matrix.to_markdown(), "", conclusions(matrix), "",
        ]  # fmt: skip
    if per_loss[0]:
        matrix = verdict_matrix(per_loss[0], subset="all", split=per_loss[2])
        table = matrix.drop(columns="statement").T.apply(lambda col: col.map(_short_cell))
        out += [
            "### The same claims per preference loss (rows), DPO as practised (reference = SFT model)", "",
            "S supported, P partly, N not supported, – not applicable; * fragile under the sensitivity family. "
            "Statements as in the table above; the losses' own tables further down.", "",
            table.to_markdown(), "",
        ]  # fmt: skip
    return out


def _tables(root: Path, by_loss: bool):
    """(claims tables, rows kept, splits) of the settings in SETTINGS with or without a per-loss split."""
    tables, select, split = {}, {}, {}
    for label, name, where, by in SETTINGS:
        claims = _claims(root, name)
        if claims is None or bool(by) != by_loss:
            continue
        tables[label], select[label] = claims, where
        if by:
            split[label] = by
    return tables, select, split


_CELL = {"supported": "S", "partly supported": "P", "not supported": "N", "not applicable": "–"}


def _short_cell(cell: object) -> str:
    """'supported, robust' -> 'S'; 'not supported, fragile' -> 'N*'."""
    text = str(cell)
    verdict = text.split(",")[0].split(" (")[0]
    return _CELL.get(verdict, "?") + ("*" if text.endswith("fragile") else "")


def _beyond_the_ratio_plane(root: Path) -> list[str]:
    """The sections on other parameterisations, losses and optimisers (each only if its runs exist)."""
    out = _models_side_by_side(root)
    for name, where in (("losses", "the ratio plane"), ("losses_logits", "softmax logits (K = 10)")):
        out += _losses_section(root, name, where)
    for name, where in (("optimisers", "softmax logits (K = 10)"),
                        ("optimisers_features", "log-linear features (cos 0.9, norm ratio 1.25)")):  # fmt: skip
        out += _dynamics_section(root, name, where)
    return out


#: Per-loss summaries: heading -> function of one loss's feasible rows (a DataFrame) -> value per region.
LOSS_METRICS = {
    "median final p_w": lambda d: d["p1_final"].median(),
    "share displaced (p_w fell below p_w0)": lambda d: d["displaced"].astype(str).str.lower().eq("true").mean(),
    "share stationary (stopped moving before the margin target)": lambda d: d["status"].eq("stationary").mean(),
    "median time to the margin target (rows that reached it)": lambda d: d.loc[
        d["status"] == "reached_margin", "t_stop"
    ].median(),
}


def _losses_section(root: Path, name: str, where: str) -> list[str]:
    """Per loss (rows) and region (columns): final p_w, shares displaced and stationary, time to the margin."""
    csv = root / name / "flows.csv"
    if not csv.exists():
        return []
    flows = read_flows(csv)
    flows = flows[flows["feasible"].astype(str).str.lower().eq("true")]
    meta = json.loads((root / name / "meta.json").read_text())
    target = meta["experiment"]["stop"].get("margin_target")
    lines = [f"## The preference losses on {where} (reference = SFT model, margin target {target})", "",
             f"Feasible starts of [{name}]({name}/); per loss and region. Losses at TRL's defaults; formulas and "
             "sources in `flowsim/model/losses/`. Final p_w across losses on one scale: "
             f"[{name}/figures/facet_p1_final.png]({name}/figures/facet_p1_final.png).", ""]  # fmt: skip
    return lines + _region_tables(dict(list(flows.groupby("loss", sort=True))), LOSS_METRICS)


#: Per-dynamics summaries: heading -> function of one setting's rows -> value per region.
DYNAMICS_METRICS = {
    "median final p_w": lambda d: d["p1_final"].median(),
    "share displaced (p_w fell below p_w0)": lambda d: d["displaced"].astype(str).str.lower().eq("true").mean(),
    "median time to the loss target, t = lr x steps (rows that reached it)": lambda d: d.loc[
        d["status"] == "reached_loss", "t_stop"
    ].median(),
    "median steps to the loss target": lambda d: d.loc[d["status"] == "reached_loss", "steps"].median(),
}


def _setting(row: pd.Series) -> str:
    """A dynamics setting's label: the kind and its learning rate."""
    return "flow" if row["dynamics"] == "flow" else f"{row['dynamics']} lr={row['lr']:g}"


def _dynamics_section(root: Path, name: str, where: str) -> list[str]:
    """Per dynamics setting (rows) and region (columns): final p_w, share displaced, time and steps."""
    csv = root / name / "flows.csv"
    if not csv.exists():
        return []
    flows = read_flows(csv)
    flows = flows.assign(setting=flows.apply(_setting, axis=1))
    meta = json.loads((root / name / "meta.json").read_text())
    target = meta["experiment"]["stop"].get("loss_target")
    lines = [f"## Flow, gradient descent and Adam on {where} (DPO, β = 0.1, reference = SFT model)", "",
             f"Every run of [{name}]({name}/) stops at the loss target L = {target} (or its step budget). For a "
             "discrete run t = lr × steps: for gradient descent that is the flow's time (GD is its Euler scheme), "
             "for Adam it is only a step count in the flow's units — Adam's steps have a length of about lr in "
             "every coordinate, whatever the gradient.", ""]  # fmt: skip
    return lines + _region_tables(dict(list(flows.groupby("setting", sort=False))), DYNAMICS_METRICS)


def _region_tables(groups: dict, metrics: dict) -> list[str]:
    """Per metric, a markdown table: a row per group (loss or setting), a column per region."""
    from flowsim.experiment.regions import REGIONS

    lines = []
    for heading, metric in metrics.items():
        cells = {r: {k: _metric_in(d, r, metric) for k, d in groups.items()} for r in REGIONS}
        table = pd.DataFrame(cells).dropna(axis=1, how="all")
        lines += [f"**{heading}**", "", table.to_markdown(floatfmt=".3g"), ""]
    return lines


def _metric_in(rows: pd.DataFrame, region: str, metric) -> float:
    sel = rows[rows["region"] == region]
    return float(metric(sel)) if len(sel) else float("nan")


#: The network settings of the report's network section: (label, experiment, rows kept).
NETWORK_SETTINGS = (
    ("SFT aimed at a grid, 1 pair, GD", "network", {"n_pairs": 1, "dynamics": "gd"}),
    ("SFT aimed at a grid, 1 pair, Adam", "network", {"n_pairs": 1, "dynamics": "adam"}),
    ("SFT aimed at a grid, 8 pairs, GD", "network", {"n_pairs": 8, "dynamics": "gd"}),
    ("SFT aimed at a grid, 8 pairs, Adam", "network", {"n_pairs": 8, "dynamics": "adam"}),
    ("SFT on chosen, 1 pair, GD", "network_sft", {"n_pairs": 1, "dynamics": "gd"}),
    ("SFT on chosen, 1 pair, Adam", "network_sft", {"n_pairs": 1, "dynamics": "adam"}),
    ("SFT on chosen, 8 pairs, GD", "network_sft", {"n_pairs": 8, "dynamics": "gd"}),
    ("SFT on chosen, 8 pairs, Adam", "network_sft", {"n_pairs": 8, "dynamics": "adam"}),
    ("8 interacting pairs, GD", "network_pairs", {"dynamics": "gd"}),
    ("8 interacting pairs, Adam", "network_pairs", {"dynamics": "adam"}),
)


def _kept(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    for k, v in where.items():
        table = table[(table[k] == v) | table[k].isna()] if k in table else table
    return table


def _weighted(regions: pd.DataFrame, col: str) -> float:
    """The share ``col`` over every start of the rows (region shares weighted by their counts)."""
    r = regions[(regions["count"] > 0) & regions[col].notna()] if col in regions else regions.iloc[:0]
    return float((r[col] * r["count"]).sum() / r["count"].sum()) if len(r) else float("nan")


def _network_row(claims: pd.DataFrame, regions: pd.DataFrame) -> dict:
    """One network setting's verdicts and numbers, read from its claims.csv and regions.csv rows."""
    from flowsim.analysis.verdicts import _cell_of

    c = claims[claims["subset"] == "all"]
    r = regions[regions["subset"] == "all"]
    med = r[r["count"] > 0].groupby("region", sort=False)["p1_final_median"].median()
    return {
        "C4 p_l falls faster": _cell_of(c[c["claim"] == "C4"]),
        "share t_l < t_w (C4 value, median)": c.loc[c["claim"] == "C4", "value"].median(),
        "share |dp_l/dt| > |dp_w/dt| at t = 0": _weighted(r, "share_l_faster_0"),
        "LD displacement": _cell_of(c[c["claim"] == "LD"]),
        "share displaced": _weighted(r, "share_displaced"),
        "C6 start decides": _cell_of(c[c["claim"] == "C6"]),
        "region medians of final p_w": med,
    }


def _network_rows(root: Path) -> dict[str, dict]:
    rows = {}
    for label, name, where in NETWORK_SETTINGS:
        claims, path = _claims(root, name), root / name / "regions.csv"
        if claims is not None and path.exists():
            rows[label] = _network_row(_kept(claims, where), _kept(pd.read_csv(path), where))
    return rows


def network_section(root: Path) -> list[str]:
    """DPO on a small causal LM: does it lower p_l faster than it raises p_w, does the SFT start decide?

    Every verdict and number is read from the network experiments' claims.csv and regions.csv.
    """
    from flowsim.experiment.regions import REGIONS

    rows = _network_rows(root)
    if not rows:
        return []
    faster = pd.DataFrame({k: {c: v for c, v in r.items() if not c.startswith(("C6", "region"))}
                           for k, r in rows.items()}).T  # fmt: skip
    med = pd.DataFrame({k: r["region medians of final p_w"] for k, r in rows.items()}).T
    med = med[[g for g in REGIONS if g in med.columns]]
    med.insert(0, "C6 start decides", [r["C6 start decides"] for r in rows.values()])
    lines = [
        "## DPO on a small network: does it lower p_l faster than it raises p_w, and does the SFT start decide?",
        "",
        "A causal MLP LM (vocab 12, 3-token responses, one hidden layer of 16) trained with DPO (β = 0.5, "
        "reference = the SFT checkpoint) until the mean loss is 0.1 nats, from SFT checkpoints: aimed at a grid of "
        "(p_w0, p_l0) ([network](network/)), fine-tuned on the chosen responses for 5–80 steps, clean or noisy "
        "([network_sft](network_sft/)), or 8 pairs with y_l 1 or 3 tokens from y_w, shared prompts, mini-batches "
        "([network_pairs](network_pairs/)). Per setting (the experiment's combinations pooled; a cell counts "
        "its combinations' verdicts): the claims' verdicts from `claims.csv`, the shares over every pair's start "
        "from `regions.csv`. dp/dt at t = 0 is the gradient flow's, also for Adam and mini-batches.",
        "",
        "**Faster down than up?** (C4: p_l reaches its target before p_w reaches its own, and falls faster at "
        "t = 0; LD: p_w falls below its start)",
        "",
        faster.to_markdown(floatfmt=".3g"),
        "",
        "**Does the SFT start decide?** (C6; then the medians over the setting's combinations of each region's "
        "median final p_w)",
        "",
        med.to_markdown(floatfmt=".3g"),
        "",
    ]
    lines += _network_answer(rows)
    for name in ("network", "network_sft", "network_pairs"):
        fig = root / name / "figures" / "trajectories.png"
        if fig.exists():
            lines += [f"![p_w and p_l over training ({name})]({name}/figures/trajectories.png)", ""]
    return lines


def _tally(rows: dict[str, dict], column: str) -> str:
    """'partly supported in 4, not supported in 2, mixed in 1, not applicable in 3 of the 10 settings'."""
    from flowsim.analysis.verdicts import VERDICTS, _verdict_of

    found = [_verdict_of(r[column]) or "mixed" for r in rows.values()]
    order = [v for v in (*VERDICTS[:-1], "mixed", VERDICTS[-1]) if v in found]
    return ", ".join(f"{v} in {found.count(v)}" for v in order) + f" of the {len(found)} settings"


def _span(values) -> str:
    v = [x for x in values if pd.notna(x)]
    return f"{min(v):.2g}–{max(v):.2g}" if v else "n/a"


def _network_answer(rows: dict[str, dict]) -> list[str]:
    """The two answers in words, generated from the tables' cells (verdicts counted over settings) and numbers."""

    def col(c: str) -> list:
        return [r[c] for r in rows.values()]

    meds = [r["region medians of final p_w"] for r in rows.values()]
    with_bl = [m for m in meds if "bottom-left" in m.index and len(m.dropna()) > 1]
    lowest = sum(m.dropna().idxmin() == "bottom-left" for m in with_bl)
    spread = [m.max() - m.min() for m in meds if len(m.dropna()) > 1]
    return [
        "*The answer, generated from the tables above.* **Faster down than up:** C4 is "
        f"{_tally(rows, 'C4 p_l falls faster')} (not applicable where every start already has p_l at its target at "
        "t = 0); where it applies, p_l reaches its target first in a "
        f"median share {_span(col('share t_l < t_w (C4 value, median)'))} of the starts; over every setting's starts, "
        f"p_l falls faster than p_w rises at t = 0 at a share {_span(col('share |dp_l/dt| > |dp_w/dt| at t = 0'))}. "
        f"Likelihood displacement (LD) is {_tally(rows, 'LD displacement')}; the share of pairs displaced per "
        f"setting spans {_span(col('share displaced'))}.",
        "",
        f"**The SFT start decides:** C6 is {_tally(rows, 'C6 start decides')}. The spread of the region medians "
        f"of the final p_w per setting spans {_span(spread)}, and bottom-left starts end lowest in {lowest} of the "
        f"{len(with_bl)} settings with starts there and elsewhere.",
        "",
    ]


def _reference_free(root: Path, names: list[str]) -> pd.DataFrame | None:
    """Claims of every reference-free run (fixed references equal to 1), one row per (claim, beta, subset)."""
    parts = []
    for n in names:
        c = _claims(root, n)
        if c is not None and "ref_w" in c and (c["reference"] == "fixed").all():
            parts.append(c[np.isclose(c["ref_w"], 1.0) & np.isclose(c["ref_l"], 1.0)])
    if not parts:
        return None
    return pd.concat(parts).drop_duplicates(["claim", "beta", "subset"], keep="first")


def _side_by_side(root: Path, free: pd.DataFrame, std: pd.DataFrame, names: list[str]) -> list[str]:
    lines = ["## Reference-free (the paper's Figure 1) and standard DPO (reference = SFT model), side by side", ""]
    for subset, label in (("all", "all starts"), ("feasible", "feasible starts (p1 + p2 ≤ 1)")):
        a, b = _verdict_pivot(free, ["beta"], subset), _verdict_pivot(std, ["beta"], subset)
        cols = [c for c in b.columns if c in a.columns]
        both = pd.DataFrame({f"β = {c}": [f"{_SHORT.get(x, '—')} → {_SHORT.get(y, '—')}" for x, y in
                             zip(a[c].reindex(b.index), b[c], strict=True)] for c in cols}, index=b.index)  # fmt: skip
        lines += [f"Verdicts on {label}: reference-free → standard DPO.", "", both.to_markdown(), ""]
    std_csv = root / "standard" / "flows.csv"
    if std_csv.exists():
        meta = json.loads((root / "standard" / "meta.json").read_text())
        law = standard_dpo_law(read_flows(std_csv), p2_floor=meta["experiment"]["stop"]["p2_floor"])
        free_runs = [n for n in names if n != "standard"]
        s_free = next((r for n in free_runs if (r := _region_spread(root, n, 0.1))), None)
        s_std = _region_spread(root, "standard", 0.1)
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
