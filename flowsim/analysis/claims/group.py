"""One group of flows (a parameter combination and a subset of its starts), as the claims read it.

:class:`Group` holds the arrays every measurement reads (starts, ends, statuses, regions,
times) and computes on demand, once, the field at the starts: d(p_w, p_l)/dt of the flow
d(theta)/dt = -grad L(theta), and |grad_theta L|.  For DPO on the ratio plane the field
needs nothing else (dp/dt = ref * dx/dt); for a model that records its field in its rows
(declared by the model's ``field_columns``: a network, whose pairs
share parameters and whose start is an SFT checkpoint) it is read from those columns; for any
other model or loss it needs the experiment, which gives each row's loss and parameterisation.

:class:`AcrossGroup` is the group of a claim across combinations (C9 across cos_wl, C10
across the references): the rows of every combination of its columns, the groups of those
combinations and the other claims' verdicts there.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flowsim.analysis.tables import as_bool, float_column
from flowsim.analysis.verdicts import NotApplicable, fmt
from flowsim.dynamics.record import StopRule
from flowsim.experiment.regions import region_labels
from flowsim.model.losses import DPO
from flowsim.model.objective import Objective
from flowsim.model.parameterisations import MODELS
from flowsim.model.parameterisations.ratio import RatioPlane, RatioPolicy


def ratio_objective(beta: float) -> Objective:
    """DPO on the ratio plane as a function of x (the references only bound the domain)."""
    return Objective(DPO(beta), RatioPolicy(np.ones(2), np.ones(2)))


@functools.lru_cache(maxsize=8)
def _mesh_norms(beta: float, upper: tuple[float, float], n: int) -> np.ndarray:
    """|grad L| of DPO on a log-spaced n x n mesh of (0, upper[0]] x (0, upper[1]], sorted."""
    g1, g2 = np.meshgrid(np.geomspace(upper[0] * 1e-6, upper[0], n), np.geomspace(upper[1] * 1e-6, upper[1], n))
    norm = np.hypot(*np.moveaxis(ratio_objective(beta).grad(np.stack([g1, g2], -1)), -1, 0))
    out = np.sort(norm.ravel())
    out.flags.writeable = False
    return out


def stationary_points(beta: float, upper: np.ndarray, tol: float, n: int = 400) -> tuple[float, int]:
    """(min |grad L|, number of points with |grad L| <= tol) on a log-spaced n x n mesh of the box."""
    norm = _mesh_norms(float(beta), (float(upper[0]), float(upper[1])), n)
    return float(norm[0]), int(np.searchsorted(norm, tol, side="right"))


def kinds(g: pd.DataFrame) -> tuple[str, str]:
    """(model, loss) of a group's rows: its first row's (ratio and dpo for tables without the columns)."""
    model = str(g["model"].iloc[0]) if "model" in g.columns and len(g) else "ratio"
    loss = str(g["loss"].iloc[0]) if "loss" in g.columns and len(g) else "dpo"
    return model, loss


def _pair(g: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """Columns ``a`` and ``b`` as an (n, 2) float array (column by column: a two-column frame is slower)."""
    return np.stack([g[a].to_numpy(float), g[b].to_numpy(float)], -1)


@dataclass(frozen=True)
class Context:
    """What every group of one evaluation shares: the stop rule and the experiment (or None)."""

    stop: StopRule
    experiment: Any = None


class Group:
    """The arrays of one (combination, subset) that the claim measurements read.

    ``view(cuts, variant)`` is the same group with its regions relabelled by cuts (c, 1 - c)
    on both axes and/or under a named alternative of the sensitivity family; views share
    the cache of the field, so it is computed once.  ``take(rows)`` is the group of some of its
    rows, repeats allowed (a bootstrap resample, :mod:`flowsim.analysis.intervals`).
    """

    #: The columns the group's arrays are read from (besides those the claims declare).
    COLUMNS: tuple[str, ...] = (
        *("model", "loss", "beta", "x1_0", "x2_0", "x1_final", "x2_final", "p1_0", "p2_0", "p1_final"),
        *("p2_final", "ref_w", "ref_l", "status", "region", "t_stop", "t_w", "t_l", "nfev", "max_mass"),
        *("displaced", "feasible"),
    )
    #: The arrays with one entry per row, which ``take`` indexes.
    ROW_ARRAYS: tuple[str, ...] = (
        *("x0", "xf", "p0", "pf", "refs", "status", "region", "t_stop", "t_w", "t_l", "nfev", "max_mass"),
        *("displaced", "feasible", "ok", "moving"),
    )

    def __init__(self, g: pd.DataFrame, ctx: Context) -> None:
        self._frame, self._rows, self.ctx = g, None, ctx
        self.model_kind, self.loss_kind = kinds(g)
        beta = g["beta"].iloc[0] if "beta" in g.columns and len(g) else np.nan
        self.beta = float(beta) if pd.notna(beta) else float("nan")
        self.x0, self.xf = _pair(g, "x1_0", "x2_0"), _pair(g, "x1_final", "x2_final")
        self.p0, self.pf = _pair(g, "p1_0", "p2_0"), _pair(g, "p1_final", "p2_final")
        self.refs = _pair(g, "ref_w", "ref_l")
        self.status = g["status"].to_numpy(str)
        self.region = g["region"].to_numpy(str)
        self.t_stop = g["t_stop"].to_numpy(float)
        self.t_w, self.t_l = g["t_w"].to_numpy(float), g["t_l"].to_numpy(float)
        self.nfev = float_column(g, "nfev")
        self.max_mass = float_column(g, "max_mass")
        self.displaced = as_bool(g["displaced"]) if "displaced" in g.columns else np.zeros(len(g), bool)
        self.feasible = as_bool(g["feasible"])
        self.ok = self.status != "failed"
        self.moving = self.ok & (self.t_stop > 0)
        self.n = len(g)
        self.n_failed = int((~self.ok).sum())
        self.variant: str | None = None  # the sensitivity alternative a view is measured under
        self._cache: dict[str, Any] = {}  # shared with the views

    @property
    def frame(self) -> pd.DataFrame:
        """The group's rows (of a resample: taken from its source's only when first read)."""
        if self._rows is not None:
            self._frame, self._rows = self._frame.iloc[self._rows], None
        return self._frame

    def take(self, rows: np.ndarray) -> Group:
        """The group of the rows at positions ``rows`` (repeats allowed): its arrays indexed, the field
        too if it was computed; the frame is indexed only if a measurement reads it."""
        out = copy.copy(self)
        for name in self.ROW_ARRAYS:
            setattr(out, name, getattr(self, name)[rows])
        out._rows = rows if self._rows is None else self._rows[rows]
        out.n, out.n_failed = len(rows), int((~out.ok).sum())
        # what the model declares impossible, and the ratio plane's mesh, are read on the rows taken from
        out._cache = {k: v for k, v in self._cache.items() if k.startswith(("impossible", "mesh"))}
        if "field" in self._cache:
            v, gnorm = self._cache["field"]
            out._cache["field"] = (v[rows], gnorm[rows])
        return out

    def narrow(self, columns: list[str]) -> Group:
        """The same group whose frame keeps only ``columns`` (those it has), so that resamples index less."""
        out = copy.copy(self)
        out._frame = self.frame[[c for c in self.frame.columns if c in set(columns)]]
        return out

    @property
    def dpo_ratio(self) -> bool:
        return self.model_kind == "ratio" and self.loss_kind == "dpo" and np.isfinite(self.beta)

    def view(self, cuts: tuple[float, float] | None, variant: str | None = None) -> Group:
        """The same group, relabelled by ``cuts`` (None: the flows' own regions), under ``variant``."""
        out = copy.copy(self)
        if cuts is not None:
            out.region = region_labels(self.p0, cuts, cuts).astype(str)
        out.variant = variant
        return out

    def cached(self, key: str, make) -> Any:
        """``make()``, computed once for the group and its views."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def field(self) -> tuple[np.ndarray, np.ndarray]:
        """(dp/dt (n, 2) of (p_w, p_l), |grad_theta L| (n,)) at the starts; NotApplicable without a field."""
        return self.cached("field", self._field)

    def _field(self) -> tuple[np.ndarray, np.ndarray]:
        exp = self.ctx.experiment
        recorded = MODELS[self.model_kind].field_columns if self.model_kind in MODELS else None
        if recorded is not None:  # the model's rows record their field (a network)
            return self._recorded_field(recorded)
        if exp is not None:
            loss, par = exp.split(exp.combo_of(self.frame.iloc[0].to_dict()))
            policy = par.bind(self.p0, self.refs)
            theta = policy.theta0
            g = Objective(loss, policy).grad(theta)
            gnorm = np.linalg.norm(g, axis=-1)
            if policy.kind == "ratio":
                return -g * self.refs, gnorm
            eps = (1e-6 / np.maximum(1.0, gnorm))[:, None]  # central difference along the flow
            with np.errstate(all="ignore"):
                up, down = policy.probs(theta - eps * g)[..., :2], policy.probs(theta + eps * g)[..., :2]
            return (up - down) / (2 * eps), gnorm
        if self.dpo_ratio:
            g = ratio_objective(self.beta).grad(self.x0)
            return -g * self.refs, np.hypot(g[:, 0], g[:, 1])
        raise NotApplicable(
            f"the field of {self.loss_kind} on {self.model_kind} needs the experiment "
            "(evaluate_claims(..., experiment=exp))"
        )

    def _recorded_field(self, cols: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
        """The field the rows record (the model declares the columns); NotApplicable if they lack them."""
        missing = [c for c in cols if c not in self.frame.columns]
        if missing:
            raise NotApplicable(
                f"the {self.model_kind} rows lack the field column(s) {', '.join(missing)} "
                "(a run made before they were recorded: run it again)"
            )
        return _pair(self.frame, cols[0], cols[1]), self.frame[cols[2]].to_numpy(float)

    def impossible(self, outcome: str) -> str | None:
        """Why ``outcome`` (a flows column, e.g. "displaced") cannot happen here by construction, as the
        group's model declares it for its loss (None: it may, or the group's model and loss are unknown)."""
        return self.cached(f"impossible {outcome}", lambda: self._impossible(outcome))

    def _impossible(self, outcome: str) -> str | None:
        exp = self.ctx.experiment
        if self.n == 0 or (self.model_kind in MODELS and MODELS[self.model_kind].field_columns):
            return None
        if exp is not None:
            loss, par = exp.split(exp.combo_of(self.frame.iloc[0].to_dict()))
        elif self.dpo_ratio:
            loss, par = DPO(self.beta), RatioPlane()
        else:
            return None
        return par.impossible(outcome, loss, self.p0, self.refs)

    def rates(self) -> np.ndarray | None:
        """dp/dt (n, 2) of (p_w, p_l) at the starts, or None where the group has no field."""
        try:
            return self.field()[0]
        except NotApplicable:
            return None

    def dpo_loss(self) -> Objective:
        """DPO on the ratio plane at the group's beta; NotApplicable for any other model or loss."""
        if not self.dpo_ratio:
            raise NotApplicable("needs DPO on the ratio plane with a beta column")
        return ratio_objective(self.beta)

    def mesh(self, tol: float) -> tuple[float, int]:
        """(min |grad L|, stationary points) on the DPO ratio-plane mesh of the group's box."""
        upper = (1.0 / self.refs).max(axis=0)
        return self.cached(f"mesh {tol!r}", lambda: stationary_points(self.beta, upper, tol))

    def mesh_check(self, tol: float, text: str) -> tuple[float, str]:
        """(stationary points on the DPO ratio-plane mesh, ``text`` with its {gmin} and {n} filled in);
        (NaN, a note) for any other model or loss."""
        if not self.dpo_ratio:
            return float("nan"), "no mesh check (not DPO on the ratio plane)"
        gmin, n = self.mesh(tol)
        return float(n), text.format(gmin=fmt(gmin), n=n)


class AcrossGroup(Group):
    """The group of a claim across combinations: every value of ``cols`` among rows alike in the rest.

    Besides the rows (as a :class:`Group`): ``cols``, the compared columns; ``n_values``, how
    many combinations of them the rows hold; ``members``, the groups of those combinations
    (same subset), in the evaluation's order; ``records``, the other claims' verdicts there
    (a DataFrame with columns claim, verdict and ``_alts``, the verdict under each alternative);
    ``axis``, each compared column's values row by row (indexed by ``take`` with the other arrays).
    """

    def __init__(
        self,
        g: pd.DataFrame,
        ctx: Context,
        cols: tuple[str, ...],
        n_values: int,
        members: list[Group],
        records: pd.DataFrame,
    ) -> None:
        super().__init__(g, ctx)
        self.cols, self.n_values, self.members, self.records = cols, n_values, members, records
        self.axis = {c: g[c].to_numpy() for c in cols}

    def take(self, rows: np.ndarray) -> AcrossGroup:
        out = super().take(rows)
        out.axis = {c: v[rows] for c, v in self.axis.items()}
        return out

    def verdicts(self) -> pd.Series:
        """The other claims' verdicts in this group, under the view's alternative (None: the base)."""
        r = self.records
        return r["verdict"] if self.variant is None else r["_alts"].map(lambda a: a.get(self.variant))
