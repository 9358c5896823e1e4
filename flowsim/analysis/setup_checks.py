"""Settings that cannot show an effect, found in a run's rows: a warning per setting that names it.

Two traps a run can fall into without failing, each checked per parameter combination:

* the SFT stage leaves p_l at or below the stop rule's ``p2_floor`` (a network fine-tuned
  on the chosen responses for long enough): the preference stage starts where it would stop;
* the preference stage ends in fewer than :data:`HANDFUL` steps for most rows (discrete
  dynamics): it stops before anything is learned (typically because of the first trap, or a
  loss target the start already meets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsim.analysis.tables import float_column, parameter_columns

#: A preference stage of fewer steps than this has not learned anything to speak of.
HANDFUL = 5
#: "Most" rows of a setting.
MOST = 0.5


def setup_warnings(flows: pd.DataFrame, p2_floor: float) -> list[str]:
    """One line per parameter combination of ``flows`` that falls into a trap of the module docstring."""
    params = [p for p in parameter_columns(flows) if flows[p].nunique(dropna=False) > 1]
    named = [p for p in params if flows[p].nunique() > 1]  # a column set only for some dynamics names none
    groups = flows.groupby(params, sort=True, dropna=False) if params else [((), flows)]
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        problems = _problems(g, p2_floor)
        if problems:
            kv = {p: v for p, v in zip(params, key, strict=True) if p in named and not pd.isna(v)}
            out.append(f"{_setting(kv)}: {'; '.join(problems)}")
    return out


def _problems(g: pd.DataFrame, p2_floor: float) -> list[str]:
    n, out = len(g), []
    low = int((g["p2_0"].to_numpy(float) <= p2_floor).sum())
    if low:
        sft = " after SFT" if "sft" in g.columns else ""
        out.append(
            f"p_l starts{sft} at or below the stop floor p2_floor = {p2_floor:g} in {low} of {n} rows "
            f"(lowest {g['p2_0'].min():.3g}), so preference training starts where it stops"
        )
    steps = float_column(g, "steps")
    done = np.isfinite(steps)
    short = int((steps[done] < HANDFUL).sum())
    if done.any() and short > MOST * done.sum():
        out.append(
            f"the preference stage ended in fewer than {HANDFUL} steps in {short} of {int(done.sum())} rows "
            f"(median {np.median(steps[done]):g}): little was learned"
        )
    return out


def _setting(kv: dict) -> str:
    return ", ".join(f"{p} = {v}" for p, v in kv.items()) if kv else "the run"


__all__ = ["HANDFUL", "setup_warnings"]
