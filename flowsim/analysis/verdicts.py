"""Verdict machinery, generic: claims as objects, rules as pure functions, a markdown report.

A :class:`Claim` carries the paper's words, where they are, what is measured (a function
of one group of flows) and the *rule* that turns the measurement into a verdict, fixed in
code before any data is read.  :func:`claims_markdown` renders any table of verdicts; a
study (:mod:`flowsim.analysis.studies`) supplies the claims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SUBSETS: tuple[str, ...] = ("all", "feasible")
SUPPORTED, PARTLY, NOT = "supported", "partly supported", "not supported"
#: The possible verdicts, best first.
VERDICTS: tuple[str, ...] = (SUPPORTED, PARTLY, NOT)


Metrics = Mapping[str, float]


def _ge(value: float, bound: float) -> bool:
    return not math.isnan(value) and value >= bound


def _le(value: float, bound: float) -> bool:
    return not math.isnan(value) and value <= bound


@dataclass(frozen=True)
class Claim:
    """A claim of a paper: what it says, where, what is measured and how it is judged."""

    id: str
    title: str
    paper: str
    where: str
    metric: str
    rule: Callable


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


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
    if claims["reference"].nunique() > 1:  # several reference modes: name each row's
        params = [*params, "reference"]
    ref = ", ".join(sorted(map(str, pd.unique(claims["reference"]))))
    ref_text = "reference = SFT model (each start is its own reference)" if ref == "initial" else f"reference: {ref}"
    ids = list(dict.fromkeys(claims["claim"]))
    subsets = [s for s in SUBSETS if s in set(claims["subset"])]
    out = [f"# {title}", ""]
    out += [
        f"{len(claims.groupby(params, dropna=False)) if params else 1} parameter combination(s); {ref_text}. "
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
