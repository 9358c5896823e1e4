"""Titles, panel titles and file-name tags of the figures of a parameter combination."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Parameters always named in titles and file names; any other only where it varies.
ALWAYS_NAMED = ("beta", "ref_w", "ref_l")


def shown(flows: pd.DataFrame, params: list[str]) -> list[bool]:
    """Which parameter columns titles and tags name: beta and the references, and any that vary."""
    return [p in ALWAYS_NAMED or flows[p].nunique() > 1 for p in params]


def fmt_value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float | int | np.floating | np.integer) and not isinstance(v, bool) else str(v)


#: How each reference mode is named in titles and in file names.
REFERENCE_TEXT = {"initial": ", reference = SFT model", "none": ", no reference (π_ref = 1)", "fixed": ""}


REFERENCE_TAG = {"initial": "_refSFT", "none": "_refnone", "fixed": ""}


def param_text(params: list[str], key: tuple, reference: str, shown: list[bool] | None = None) -> str:
    sym = {"beta": "β"}
    shown = shown or [True] * len(params)
    text = ", ".join(
        f"{sym.get(p, p)} = {fmt_value(v)}"
        for p, v, s in zip(params, key, shown, strict=True)
        if s and p != "reference" and v is not None
    )
    return text + REFERENCE_TEXT.get(reference, f", reference = {reference}")


def tag_of(params: list[str], key: tuple, reference: str, shown: list[bool] | None = None) -> str:
    shown = shown or [True] * len(params)
    tag = "_".join(
        fmt_value(v) if p in ("dynamics", "loss") else f"{p.replace('_', '')}{fmt_value(v)}"
        for p, v, s in zip(params, key, shown, strict=True)
        if s and p != "reference" and v is not None
    )
    return tag + REFERENCE_TAG.get(reference, f"_ref{reference}")


def panel_title(flows: pd.DataFrame, params: list[str], key: tuple, rows: pd.DataFrame) -> str:
    """A facet panel's title: only what varies across the panels (the suptitle says the rest).

    With several losses, a panel names its loss and those of the loss's own parameters that
    vary among its rows' combinations (not the parameters other losses take).
    """
    reference = str(rows["reference"].iloc[0])
    ref = reference if "reference" in params else "fixed"
    if "loss" in params:
        mine = flows[flows["loss"] == rows["loss"].iloc[0]]
        varying = [p == "loss" or (mine[p].notna().any() and mine[p].nunique() > 1) for p in params]
    else:  # a column set for some combinations only (an optimiser's beta1 beside the flow) names none
        varying = [flows[p].nunique() > 1 for p in params]
    text = param_text(params, key, ref, varying)
    return text.removeprefix(", ") or param_text(params, key, reference)


def group_key(key: object) -> tuple:
    """A groupby key as a tuple whose missing values are None (NaN != NaN would defeat dict look-ups)."""
    key = key if isinstance(key, tuple) else (key,)
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in key)
