"""The settings a network run's figures are split by: one panel per combination of every swept axis.

A network experiment's combinations differ in the loss, the training (the optimiser, its
learning rate, the number of pairs, the mini-batch size: :data:`SETTING_COLUMNS`) and how the
SFT stage is set up (steps, noise, seeds, targets), which puts its pairs at different starts.
Every axis that varies gets its own panels (the loss first): pooling two losses, or two SFT
setups, in one panel would draw a mixture that answers no question.
"""

from __future__ import annotations

import pandas as pd

from flowsim.plotting.base import Plot
from flowsim.plotting.titles import fmt_value

#: The columns that make a training setting; they come first in a panel's title, after the loss.
SETTING_COLUMNS: tuple[str, ...] = ("dynamics", "lr", "n_pairs", "batch_size")
#: How a column is named in a panel's title (others: "name = value").
LABELS = {"loss": "", "dynamics": "", "lr": "lr = ", "n_pairs": "pairs = ", "batch_size": "batch = ", "beta": "β = "}


def _label(col: str, value: object) -> str:
    if col == "batch_size" and value == 0:
        return "full batch"
    return f"{LABELS.get(col, col + ' = ')}{fmt_value(value)}"


def split_columns(plot: Plot) -> list[str]:
    """The swept columns that split the panels: the loss, the training setting, then every other that varies.

    A column set only for some rows (an optimiser's beta1 beside the flow) splits by its values, not by NaN.
    """
    flows = plot.flows
    rest = [p for p in plot.params if p not in ("loss", *SETTING_COLUMNS, "reference")]
    cols = [c for c in ("loss", *SETTING_COLUMNS, *rest) if c in flows.columns and flows[c].nunique() > 1]
    if "reference" in flows.columns and flows["reference"].nunique() > 1:
        cols.append("reference")
    return cols


def settings(plot: Plot) -> list[tuple[str, pd.DataFrame, object]]:
    """(title, rows, positions) of each setting of the table, in sorted order (one, "all runs", if none varies)."""
    flows = plot.flows
    cols = split_columns(plot)
    if not cols:
        return [("all runs", flows, slice(None))]
    out = []
    for key, pos in flows.groupby(cols, sort=True, dropna=False).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(_label(c, v) for c, v in zip(cols, key, strict=True) if not pd.isna(v))
        out.append((title, flows.iloc[pos], pos))
    return out


#: Model names as a title says them.
MODEL_TEXT = {
    "ratio": "the ratio plane",
    "logits": "softmax logits",
    "features": "shared features",
    "network": "a network",
}


def what_ran(plot: Plot, model: bool = False) -> str:
    """The loss(es) of the table, for a figure's title: "DPO", "DPO and IPO", "16 losses"; with
    ``model``, the model too ("DPO on softmax logits")."""
    flows = plot.flows
    losses = [str(v).upper() for v in sorted(pd.unique(flows["loss"]))] if "loss" in flows.columns else ["DPO"]
    text = (
        losses[0]
        if len(losses) == 1
        else f"{len(losses)} losses"
        if len(losses) > 3
        else ", ".join(losses[:-1]) + f" and {losses[-1]}"
    )
    models = [str(v) for v in pd.unique(flows["model"])] if "model" in flows.columns else ["ratio"]
    return text + (f" on {', '.join(MODEL_TEXT.get(m, m) for m in models)}" if model else "")
