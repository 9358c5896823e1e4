"""The settings a network run's figures are split by: one panel per setting, the other parameters pooled.

A network experiment's combinations mostly differ in how the SFT stage is set up (steps,
noise, seeds, targets), which is what puts its pairs at different starts; the figures draw
those starts side by side and give a panel to each *training setting* -- the optimiser, the
number of pairs and the mini-batch size (:data:`SETTING_COLUMNS`, those that vary).
"""

from __future__ import annotations

import pandas as pd

from flowsim.plotting.base import Plot
from flowsim.plotting.titles import fmt_value

#: The columns that make a training setting (those present and varying split the panels).
SETTING_COLUMNS: tuple[str, ...] = ("dynamics", "lr", "n_pairs", "batch_size")
#: How a setting column is named in a panel's title.
LABELS = {"dynamics": "", "lr": "lr = ", "n_pairs": "pairs = ", "batch_size": "batch = "}


def _label(col: str, value: object) -> str:
    if col == "batch_size" and value == 0:
        return "full batch"
    return f"{LABELS[col]}{fmt_value(value)}"


def settings(plot: Plot) -> list[tuple[str, pd.DataFrame, object]]:
    """(title, rows, positions) of each setting of the table, in sorted order (one, "all runs", if none varies)."""
    flows = plot.flows
    cols = [c for c in SETTING_COLUMNS if c in flows.columns and flows[c].nunique() > 1]
    if not cols:
        return [("all runs", flows, slice(None))]
    out = []
    for key, pos in flows.groupby(cols, sort=True, dropna=False).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(_label(c, v) for c, v in zip(cols, key, strict=True))
        out.append((title, flows.iloc[pos], pos))
    return out


def pooled(plot: Plot) -> str:
    """Which parameters each panel pools (those that vary but do not make the setting), for the titles."""
    rest = [p for p in plot.params if p not in SETTING_COLUMNS and p != "reference" and plot.flows[p].nunique() > 1]
    return f"; pooled over {', '.join(rest)}" if rest else ""
