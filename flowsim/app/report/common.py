"""The report's shared readers: claims and region tables of a run folder, cells, spans and counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_claims(root: Path, name: str, study: str = "dpo_field") -> pd.DataFrame | None:
    """An experiment's claims.csv rows of one study (the seed paper's by default; a table written before
    claims.csv named its studies is all the seed paper's), None if absent."""
    path = root / name / "claims.csv"
    if not path.exists():
        return None
    t = pd.read_csv(path)
    if "study" not in t.columns:
        return t if study == "dpo_field" else t.iloc[:0]
    mine = t[t["study"] == study].drop(columns="study").reset_index(drop=True)
    return mine if study == "dpo_field" else mine.dropna(axis=1, how="all")  # its pooled parameters: NaN


def _v(v: object) -> str:
    return f"{v:g}" if isinstance(v, float | int | np.floating | np.integer) and not isinstance(v, bool) else str(v)


def verdict_pivot(claims: pd.DataFrame, columns: list[str], subset: str = "all") -> pd.DataFrame:
    """Claims (rows) by parameter setting (columns, in numeric order) -> verdict."""
    c = claims[claims["subset"] == subset].dropna(subset=columns).copy()  # claims across settings: no column
    c["label"] = c["claim"] + " " + c["title"]
    settings = c[columns].drop_duplicates().sort_values(columns)
    names = [", ".join(_v(v) for v in row) for row in settings.itertuples(index=False)]
    c["setting"] = c[columns].apply(lambda r: ", ".join(_v(v) for v in r), axis=1)
    table = c.pivot_table(index="label", columns="setting", values="verdict", aggfunc="first", sort=False)
    return table[names].rename_axis(index=None, columns=None)


SHORT = {"supported": "supported", "partly supported": "partly", "not supported": "not", "not applicable": "n/a"}


def value_verdict(claims: pd.DataFrame) -> list[str]:
    return [f"{v:.4g}: **{d}**" for v, d in zip(claims["value"], claims["verdict"], strict=True)]


def region_spread(root: Path, name: str, beta: float) -> dict[str, float] | None:
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


def region_rows(root: Path, name: str, where: dict) -> pd.DataFrame | None:
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


def kept_rows(table: pd.DataFrame, where: dict) -> pd.DataFrame:
    for k, v in where.items():
        table = table[(table[k] == v) | table[k].isna()] if k in table else table
    return table


def weighted_share(regions: pd.DataFrame, col: str) -> float:
    """The share ``col`` over every start of the rows (region shares weighted by their counts)."""
    r = regions[(regions["count"] > 0) & regions[col].notna()] if col in regions else regions.iloc[:0]
    return float((r[col] * r["count"]).sum() / r["count"].sum()) if len(r) else float("nan")


def tally(rows: dict[str, dict], column: str) -> str:
    """'partly supported in 4, not supported in 2, mixed in 1, not applicable in 3 of the 10 settings'."""
    from flowsim.analysis.verdicts import VERDICTS, verdict_of

    found = [verdict_of(r[column]) or "mixed" for r in rows.values()]
    order = [v for v in (*VERDICTS[:-1], "mixed", VERDICTS[-1]) if v in found]
    return ", ".join(f"{v} in {found.count(v)}" for v in order) + f" of the {len(found)} settings"


def span(values) -> str:
    v = [x for x in values if pd.notna(x)]
    return f"{min(v):.2g}–{max(v):.2g}" if v else "n/a"


def setting_label(row: pd.Series) -> str:
    """A dynamics setting's label: the kind and its learning rate."""
    return "flow" if row["dynamics"] == "flow" else f"{row['dynamics']} lr={row['lr']:g}"


def _metric_in(rows: pd.DataFrame, region: str, metric) -> float:
    sel = rows[rows["region"] == region]
    return float(metric(sel)) if len(sel) else float("nan")


def region_tables(groups: dict, metrics: dict) -> list[str]:
    """Per metric, a markdown table: a row per group (loss or setting), a column per region."""
    from flowsim.experiment.regions import REGIONS

    lines = []
    for heading, metric in metrics.items():
        cells = {r: {k: _metric_in(d, r, metric) for k, d in groups.items()} for r in REGIONS}
        table = pd.DataFrame(cells).dropna(axis=1, how="all")
        lines += [f"**{heading}**", "", table.to_markdown(floatfmt=".3g"), ""]
    return lines
