"""Region tables from a flows table (the rows of ``flows.csv``), in memory.

No file I/O and no plotting here: functions take a :class:`pandas.DataFrame` of flows and
return DataFrames or text.

* :func:`parameter_columns` -- the columns that identify a parameter combination.
* :func:`region_table` -- per combination, subset ("all" / "feasible") and region: counts
  by status, quartiles of the stop and crossing times and of the final probabilities.

A parameter combination is (beta, ref_w, ref_l) for ``reference = "fixed"`` and beta
alone for ``reference = "initial"`` (standard DPO: each row's reference is its own start,
so every row starts at x = (1, 1) with its own ref_w = p1_0, ref_l = p2_0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsim.dynamics.record import STATUSES
from flowsim.errors import UserError
from flowsim.experiment.config import REFERENCE_MODES
from flowsim.experiment.regions import REGIONS
from flowsim.model.parameterisations import MODELS

#: Columns every analysis needs, besides the parameter columns.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "p1_0",
    "p2_0",
    "x1_0",
    "x2_0",
    "region",
    "feasible",
    "status",
    "t_stop",
    "p1_final",
    "p2_final",
    "x1_final",
    "x2_final",
    "t_w",
    "t_l",
    "reference",
)
#: Columns summarised by median and quartiles in :func:`region_table` (``p_w_min_rel`` is
#: p_w_min / p_w0: how far the preferred response's probability fell, 1 if it never did).
QUANTILE_COLUMNS: tuple[str, ...] = ("t_stop", "t_w", "t_l", "p1_final", "p2_final", "p_w_min_rel")
SUBSETS: tuple[str, ...] = ("all", "feasible")
#: region_table's columns after the parameter columns, subset and region.
COLUMNS_AFTER_COUNT: list[str] = [
    "count",
    "share_feasible",
    *(f"n_{s}" for s in STATUSES),
    *(f"{c}_{q}" for c in QUANTILE_COLUMNS for q in ("median", "q25", "q75")),
    "share_p1_target",
    "share_l_before_w",
    "n_left_simplex",
    "share_displaced",
]


def parameter_columns(flows: pd.DataFrame) -> list[str]:
    """The columns whose values identify a parameter combination.

    These are the loss's parameter columns, which come first in flows.csv (before
    ``p1_0``): ["beta", "ref_w", "ref_l"] for DPO with ``reference = "fixed"``; with
    ``reference = "initial"`` the references vary row by row, so only ["beta"].

    Examples
    --------
    >>> cols = ["beta", "ref_w", "ref_l", "p1_0", "reference"]
    >>> parameter_columns(pd.DataFrame([[0.1, 1.0, 1.0, 0.5, "fixed"]], columns=cols))
    ['beta', 'ref_w', 'ref_l']
    >>> parameter_columns(pd.DataFrame([[0.1, 0.5, 0.5, 0.5, "initial"]], columns=cols))
    ['beta']
    """
    if not isinstance(flows, pd.DataFrame):
        raise UserError(f"flows must be a pandas DataFrame; got {type(flows).__name__}")
    missing = [c for c in ("p1_0", "reference") if c not in flows.columns]
    if missing:
        raise UserError(f"flows is missing the column(s) {missing}")
    if len(flows) == 0:
        raise UserError("flows has no rows")
    lead = list(flows.columns[: flows.columns.get_loc("p1_0")])
    if not lead:
        raise UserError("flows must start with the loss's parameter columns (e.g. beta, ref_w, ref_l) before p1_0")
    modes = sorted(map(str, pd.unique(flows["reference"])))
    bad = [m for m in modes if m not in REFERENCE_MODES]
    if bad:
        raise UserError(f"flows' reference column must hold only {list(REFERENCE_MODES)}; got {bad}")
    cols = lead if "initial" not in modes else [c for c in lead if c not in ("ref_w", "ref_l")]
    if "loss" in flows and flows["loss"].nunique() > 1:  # several losses: each row's loss names its group
        cols = ["loss", *cols]
    if "dynamics" in flows and flows["dynamics"].nunique() > 1:  # flow and optimisers side by side
        cols = [*cols, "dynamics"]
    return [*cols, "reference"] if len(modes) > 1 else cols


def check_flows(flows: pd.DataFrame, needs: tuple[str, ...] = ()) -> list[str]:
    """Validate a flows table; return its parameter columns.

    Raises :class:`~flowsim.errors.UserError` (a ValueError) naming missing columns, unknown regions or
    statuses, or an empty table.
    """
    params = parameter_columns(flows)
    missing = [c for c in (*REQUIRED_COLUMNS, *needs) if c not in flows.columns]
    if missing:
        raise UserError(f"flows is missing the column(s) {missing}")
    for col, allowed in (("region", REGIONS), ("status", STATUSES)):
        bad = sorted(set(map(str, pd.unique(flows[col]))) - set(allowed))
        if bad:
            raise UserError(f"flows' {col} column must hold only {list(allowed)}; got {bad}")
    return params


def as_bool(col: pd.Series) -> np.ndarray:
    """A bool column, also when read back from CSV as strings."""
    if col.dtype == bool:
        return col.to_numpy()
    return col.astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def float_column(flows: pd.DataFrame, name: str) -> np.ndarray:
    """A float column, NaN throughout if the table predates it."""
    return flows[name].to_numpy(float) if name in flows else np.full(len(flows), np.nan)


def _combos(flows: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    return flows[params].drop_duplicates().sort_values(params).reset_index(drop=True)


# -- region table --------------------------------------------------------------------------------


def region_table(flows: pd.DataFrame) -> pd.DataFrame:
    """Per parameter combination, subset and region: counts, statuses and quartiles.

    Returns one row per (combination, subset, region), subsets "all" and "feasible"
    (p1_0 + p2_0 <= 1), regions in :data:`flowsim.regions.REGIONS` order; a region with
    no rows in a subset has count 0 and NaN statistics.  Columns: the parameter
    columns, ``subset``, ``region``, ``count``, ``share_feasible``, ``n_converged``,
    ``n_capped``, ``n_timeout``, ``n_failed``, ``<q>_median``, ``<q>_q25``, ``<q>_q75``
    for q in t_stop, t_w, t_l, p1_final, p2_final (times over the flows that reach
    the target; NaN is "never" and is skipped), ``share_p1_target`` (share with t_w
    not NaN) and ``share_l_before_w`` (share with t_l < t_w, NaN counting as +inf, so
    both never is False).  Where the rows record the field at their start (a model of
    ``field_columns``: a network), a last column
    ``share_l_faster_0``: the share with |dp_l/dt| > |dp_w/dt| at t = 0.
    """
    params = check_flows(flows)
    field = _recorded_field(flows)
    df = flows[[*params, "region", *QUANTILE_COLUMNS[:-1]]].copy()
    df["p_w_min_rel"] = float_column(flows, "p_w_min") / flows["p1_0"].to_numpy(float)
    df["n_left_simplex"] = float_column(flows, "max_mass") > 1.0 + 1e-12
    df["share_displaced"] = as_bool(flows["displaced"]) if "displaced" in flows else np.nan
    df["feasible"] = as_bool(flows["feasible"])
    for s in STATUSES:
        df[f"n_{s}"] = (flows["status"] == s).to_numpy()
    df["share_p1_target"] = flows["t_w"].notna().to_numpy()
    df["share_l_before_w"] = (flows["t_l"].fillna(np.inf) < flows["t_w"].fillna(np.inf)).to_numpy()
    after = COLUMNS_AFTER_COUNT + (["share_l_faster_0"] if field else [])
    if field:
        df["share_l_faster_0"] = np.abs(float_column(flows, field[1])) > np.abs(float_column(flows, field[0]))
    keys = [*params, "region"]
    combos = _combos(flows, params)
    full = pd.MultiIndex.from_tuples(
        [(*row, r) for row in combos.itertuples(index=False, name=None) for r in REGIONS], names=keys
    )
    names = {0.5: "median", 0.25: "q25", 0.75: "q75"}
    pieces = []
    for subset in SUBSETS:
        d = df if subset == "all" else df[df["feasible"]]
        g = d.groupby(keys, sort=False, observed=True, dropna=False)
        agg = g.agg(
            count=("region", "size"),
            share_feasible=("feasible", "mean"),
            **{f"n_{s}": (f"n_{s}", "sum") for s in STATUSES},
            share_p1_target=("share_p1_target", "mean"),
            share_l_before_w=("share_l_before_w", "mean"),
            n_left_simplex=("n_left_simplex", "sum"),
            share_displaced=("share_displaced", "mean"),
            **({"share_l_faster_0": ("share_l_faster_0", "mean")} if field else {}),
        )
        for level, name in names.items():  # by position: a join on keys holding NaN (gd's beta1) matches nothing
            q = g[list(QUANTILE_COLUMNS)].quantile(level)
            for c in QUANTILE_COLUMNS:
                agg[f"{c}_{name}"] = q[c].to_numpy()
        t = agg[after].reindex(full)
        for c in ["count", "n_left_simplex", *(f"n_{s}" for s in STATUSES)]:
            t[c] = t[c].fillna(0).astype(np.int64)
        t.insert(0, "subset", subset)
        pieces.append(t.reset_index())
    out = pd.concat(pieces, ignore_index=True)
    out["_s"] = out["subset"].map(SUBSETS.index)
    out["_r"] = out["region"].map(REGIONS.index)
    out = out.sort_values([*params, "_s", "_r"], kind="stable")
    return out[[*params, "subset", "region", *after]].reset_index(drop=True)


def _recorded_field(flows: pd.DataFrame) -> tuple[str, str, str] | None:
    """The field columns the rows' model declares it records (None for a model that does not)."""
    models = set(map(str, pd.unique(flows["model"]))) if "model" in flows.columns else {"ratio"}
    found = [MODELS[m].field_columns for m in sorted(models) if m in MODELS and MODELS[m].field_columns]
    return found[0] if found and all(c in flows.columns for c in found[0][:2]) else None


# -- the losses compared -------------------------------------------------------------------------


def loss_comparison(flows: pd.DataFrame, experiment=None) -> pd.DataFrame | None:
    """Per model and loss: the share of flows displaced, the share with t_l < t_w, final p_w by region.

    Over the rows that did not fail (``n``): ``share_displaced`` (p_w fell below p_w0 at some
    time), ``share_l_before_w`` (p_l reached its target before p_w reached its own, NaN counting
    as never) and ``p_w_final_<region>``, the median final p_w of the starts in each region
    (NaN where the region has none).  With the ``experiment``, ``displacement_impossible``:
    whether the model declares displacement impossible by construction for the loss at every
    start (:meth:`~flowsim.model.parameterisations.base.Parameterisation.impossible`), so that
    a share of 0 reads as what it is.  None for a table of one loss (nothing to compare).
    """
    check_flows(flows)
    if "loss" not in flows.columns or flows["loss"].nunique() < 2:
        return None
    ok = flows[flows["status"] != "failed"]
    model = ok["model"].astype(str) if "model" in ok.columns else pd.Series("ratio", index=ok.index)
    work = pd.DataFrame(
        {
            "model": model,
            "loss": ok["loss"].astype(str),
            "region": ok["region"].astype(str),
            "displaced": as_bool(ok["displaced"]) if "displaced" in ok else np.nan,
            "l_before_w": (ok["t_l"].fillna(np.inf) < ok["t_w"].fillna(np.inf)).to_numpy(),
            "p1_final": ok["p1_final"].to_numpy(float),
        }
    )
    g = work.groupby(["model", "loss"], sort=True)
    out = g.agg(n=("loss", "size"), share_displaced=("displaced", "mean"), share_l_before_w=("l_before_w", "mean"))
    by_region = work.pivot_table(index=["model", "loss"], columns="region", values="p1_final", aggfunc="median")
    for r in REGIONS:
        out[f"p_w_final_{r}"] = by_region[r] if r in by_region.columns else np.nan
    out = out.reset_index()
    if experiment is not None:
        out["displacement_impossible"] = [
            _impossible(ok[(model == m) & (ok["loss"].astype(str) == k)], experiment)
            for m, k in zip(out["model"], out["loss"], strict=True)
        ]
    return out


def _impossible(rows: pd.DataFrame, experiment) -> bool:
    """Whether every combination of ``rows`` has displacement declared impossible by its model."""
    kind = str(rows["model"].iloc[0]) if "model" in rows and len(rows) else "ratio"
    if not len(rows) or not MODELS[kind].policy_of_starts:  # a network: no starts of its own to judge
        return False
    for _, g in rows.groupby(parameter_columns(rows), sort=False, dropna=False):
        loss, par = experiment.split(experiment.combo_of(g.iloc[0].to_dict()))
        p0 = g[["p1_0", "p2_0"]].to_numpy(float)
        if par.impossible("displaced", loss, p0, g[["ref_w", "ref_l"]].to_numpy(float)) is None:
            return False
    return True
