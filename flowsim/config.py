"""Experiment files (TOML) -> a frozen, validated :class:`Experiment`.

The schema is the users' contract (keys may be added, never renamed); see the README's
"Experiment files" section.  Everything is validated before any work starts: an unknown
key, a missing required key, a wrong type or an out-of-range value raises
:class:`ConfigError`, whose message names the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from flowsim.flow import SolverOptions
from flowsim.losses import LOSSES, Loss
from flowsim.records import StopRule
from flowsim.regions import DEFAULT_CUTS, check_cuts

REFERENCE_MODES = ("fixed", "initial")
GRID_KINDS = ("mesh", "sobol", "random")


class ConfigError(ValueError):
    """An experiment file that cannot be run as written."""


@dataclass(frozen=True)
class Axis:
    """One axis of a mesh grid: ``num`` points from ``start`` to ``stop`` (both in (0, 1])."""

    start: float
    stop: float
    num: int
    spacing: str = "linear"

    def values(self) -> np.ndarray:
        make = np.geomspace if self.spacing == "log" else np.linspace
        return make(self.start, self.stop, self.num)


@dataclass(frozen=True)
class Grid:
    """Initial conditions in policy probabilities (p1, p2).

    ``kind = "mesh"``: the Cartesian product of ``p1`` and ``p2`` (p1 outer, p2 inner).
    ``kind = "sobol"`` / ``"random"``: ``n`` points in [low, high]^2 from a scrambled Sobol
    sequence (``scipy.stats.qmc``) or a uniform generator, seeded by ``seed``.
    """

    kind: str = "mesh"
    p1: Axis | None = None
    p2: Axis | None = None
    n: int = 0
    seed: int = 0
    low: float = 0.01
    high: float = 1.0

    def points(self) -> np.ndarray:
        """The initial probabilities, shape (n, 2)."""
        if self.kind == "mesh":
            assert self.p1 is not None and self.p2 is not None
            g1, g2 = np.meshgrid(self.p1.values(), self.p2.values(), indexing="ij")
            return np.stack([g1.ravel(), g2.ravel()], -1)
        if self.kind == "sobol":
            u = qmc.Sobol(d=2, scramble=True, seed=self.seed).random(self.n)
        else:
            u = np.random.default_rng(self.seed).random((self.n, 2))
        return self.low + (self.high - self.low) * u

    def __len__(self) -> int:
        return self.p1.num * self.p2.num if self.kind == "mesh" else self.n  # type: ignore[union-attr]


@dataclass(frozen=True)
class Experiment:
    """An experiment as run: a loss with swept parameters, a grid, a stop rule and a solver.

    ``loss_params`` maps each loss parameter to the tuple of values swept (every list in
    the file is swept; the sweep runs over their Cartesian product, in field order).
    With ``reference = "initial"`` the reference is the SFT model itself: every initial
    condition gets ref_w = p1_0, ref_l = p2_0 and starts at x = (1, 1).
    """

    name: str
    loss_kind: str = "dpo"
    reference: str = "fixed"
    loss_params: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    grid: Grid = field(default_factory=lambda: Grid(p1=Axis(0.01, 1.0, 100), p2=Axis(0.01, 1.0, 100)))
    stop: StopRule = field(default_factory=StopRule)
    exact: bool = False
    solver: SolverOptions = field(default_factory=SolverOptions)
    p1_cuts: tuple[float, float] = DEFAULT_CUTS
    p2_cuts: tuple[float, float] = DEFAULT_CUTS
    claims: Mapping[str, float] = field(default_factory=dict)

    @property
    def loss_class(self) -> type[Loss]:
        return LOSSES[self.loss_kind]

    def parameter_sets(self) -> list[dict[str, float]]:
        """The swept parameter combinations (without the per-row references of ``initial``)."""
        keys = list(self.loss_params)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.loss_params.values())]

    def n_rows(self) -> int:
        return len(self.parameter_sets()) * len(self.grid)

    def as_dict(self) -> dict[str, Any]:
        """The experiment after defaults, in the file's own shape (for meta.json)."""
        grid = {"kind": self.grid.kind}
        if self.grid.kind == "mesh":
            grid |= {"p1": dataclasses.asdict(self.grid.p1), "p2": dataclasses.asdict(self.grid.p2)}
        else:
            grid |= {"n": self.grid.n, "seed": self.grid.seed, "low": self.grid.low, "high": self.grid.high}
        solver = {"method": "exact" if self.exact else self.solver.method, "rtol": self.solver.rtol,
                  "atol": self.solver.atol}  # fmt: skip
        return {
            "name": self.name,
            "loss": {"kind": self.loss_kind, "reference": self.reference}
            | {k: list(v) if len(v) > 1 else v[0] for k, v in self.loss_params.items()},
            "grid": grid,
            "stop": dataclasses.asdict(self.stop),
            "solver": solver,
            "regions": {"p1_cuts": list(self.p1_cuts), "p2_cuts": list(self.p2_cuts)},
            "claims": dict(self.claims),
        }


# ---------------------------------------------------------------------------------------
# Loading


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; raise :class:`ConfigError` naming file and key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_experiment(doc, source=str(path))


def parse_experiment(doc: Mapping[str, Any], source: str = "<experiment>") -> Experiment:
    """Validate a parsed experiment document (the TOML as a dict)."""
    t = _Table(doc, source, "")
    t.allow({"name", "loss", "grid", "stop", "solver", "regions", "claims"})
    name = t.get("name", str, required=True)
    if not name or "/" in name or name.startswith("."):
        t.fail("name", name, "must be a non-empty folder name without '/'")

    loss_t = t.table("loss")
    kind = loss_t.get("kind", str, default="dpo")
    if kind not in LOSSES:
        loss_t.fail("kind", kind, f"must be one of {sorted(LOSSES)}")
    cls = LOSSES[kind]
    fields_ = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    loss_t.allow({"kind", "reference", *fields_})
    reference = loss_t.get("reference", str, default="fixed")
    if reference not in REFERENCE_MODES:
        loss_t.fail("reference", reference, f"must be one of {list(REFERENCE_MODES)}")
    if reference == "initial":
        given = [k for k in ("ref_w", "ref_l") if k in loss_t.doc]
        if given:
            raise ConfigError(
                f"{source}: loss.reference = 'initial' sets ref_w and ref_l to each initial condition's p1_0 "
                f"and p2_0, so loss.ref_w and loss.ref_l cannot be given with it; got {', '.join(given)}"
            )
    params: dict[str, tuple[float, ...]] = {}
    defaults = cls()  # type: ignore[call-arg]
    for f in fields_:
        if reference == "initial" and f in ("ref_w", "ref_l"):
            continue
        raw = loss_t.doc.get(f, getattr(defaults, f))
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            loss_t.fail(f, raw, "must be a number or a non-empty list of numbers")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                loss_t.fail(f, raw, "must be a number or a non-empty list of numbers")
            try:
                cls(**{f: v})  # type: ignore[call-arg]
            except (TypeError, ValueError) as exc:
                loss_t.fail(f, v, str(exc).split("; got")[0].removeprefix(f + " "))
        params[f] = tuple(float(v) for v in values)

    grid = _parse_grid(t.table("grid"))

    stop_t = t.table("stop")
    stop_fields = {f.name for f in dataclasses.fields(StopRule)}
    stop_t.allow(stop_fields)
    stop = stop_t.build(StopRule, {k: stop_t.get(k, float) for k in stop_fields if k in stop_t.doc})

    solver_t = t.table("solver")
    solver_t.allow({"method", "rtol", "atol"})
    method = solver_t.get("method", str, default="auto")
    exact = method == "exact"
    kw = {k: solver_t.get(k, float) for k in ("rtol", "atol") if k in solver_t.doc}
    solver = solver_t.build(SolverOptions, {"method": "auto" if exact else method, **kw})
    if exact:
        from flowsim.exact import EXACT_FLOWS

        if kind not in EXACT_FLOWS:
            solver_t.fail("method", method, f"has no closed form for loss kind {kind!r}")
        if max(params.get("beta", (0.0,))) >= 2:
            solver_t.fail("method", method, "needs every beta < 2 (the closed form's range)")

    regions_t = t.table("regions")
    regions_t.allow({"p1_cuts", "p2_cuts"})
    cuts = {}
    for k in ("p1_cuts", "p2_cuts"):
        raw = regions_t.doc.get(k, list(DEFAULT_CUTS))
        try:
            cuts[k] = check_cuts(k, raw)
        except ValueError as exc:
            regions_t.fail(k, raw, str(exc).split("; got")[0].removeprefix(k + " "))

    claims_t = t.table("claims")
    claims = dict(claims_t.doc)
    try:
        from flowsim.analysis import ClaimThresholds

        ClaimThresholds(**claims)
    except ImportError:  # the analysis module is optional at load time
        pass
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: [claims]: {exc}") from None

    return Experiment(
        name=name, loss_kind=kind, reference=reference, loss_params=params, grid=grid, stop=stop,
        exact=exact, solver=solver, p1_cuts=cuts["p1_cuts"], p2_cuts=cuts["p2_cuts"], claims=claims,
    )  # fmt: skip


def _parse_grid(t: _Table) -> Grid:
    kind = t.get("kind", str, default="mesh")
    if kind not in GRID_KINDS:
        t.fail("kind", kind, f"must be one of {list(GRID_KINDS)}")
    if kind == "mesh":
        t.allow({"kind", "p1", "p2"})
        axes = {}
        for k in ("p1", "p2"):
            a = t.table(k, required=True)
            a.allow({"start", "stop", "num", "spacing"})
            start, stop = a.get("start", float, required=True), a.get("stop", float, required=True)
            num = a.get("num", int, required=True)
            spacing = a.get("spacing", str, default="linear")
            for key, v in (("start", start), ("stop", stop)):
                if not 0 < v <= 1:
                    a.fail(key, v, "must be a probability in (0, 1]")
            if stop <= start:
                a.fail("stop", stop, f"must be greater than start = {start!r}")
            if num < 1:
                a.fail("num", num, "must be a whole number >= 1")
            if spacing not in ("linear", "log"):
                a.fail("spacing", spacing, "must be 'linear' or 'log'")
            axes[k] = Axis(start, stop, num, spacing)
        return Grid(kind="mesh", p1=axes["p1"], p2=axes["p2"])
    t.allow({"kind", "n", "seed", "low", "high"})
    n = t.get("n", int, required=True)
    seed = t.get("seed", int, default=0)
    low, high = t.get("low", float, default=0.01), t.get("high", float, default=1.0)
    if n < 1:
        t.fail("n", n, "must be a whole number >= 1")
    if not 0 < low < high <= 1:
        t.fail("low", low, f"must satisfy 0 < low < high <= 1 (high = {high!r})")
    return Grid(kind=kind, n=n, seed=seed, low=low, high=high)


class _Table:
    """One TOML table with its dotted location, for error messages."""

    def __init__(self, doc: Any, source: str, where: str) -> None:
        self.source, self.where = source, where
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{source}: {where or 'the file'} must be a table; got {doc!r}")
        self.doc = doc

    def key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def fail(self, k: str, value: Any, rule: str) -> None:
        raise ConfigError(f"{self.source}: {self.key(k)} {rule}; got {value!r}")

    def allow(self, keys: set[str]) -> None:
        for k in self.doc:
            if k not in keys:
                raise ConfigError(
                    f"{self.source}: unknown key {self.key(k)!r}; allowed here: {', '.join(sorted(keys))}"
                )

    def table(self, k: str, required: bool = False) -> _Table:
        if k not in self.doc and required:
            raise ConfigError(f"{self.source}: missing required key {self.key(k)!r}")
        return _Table(self.doc.get(k, {}), self.source, self.key(k))

    def get(self, k: str, typ: type, *, required: bool = False, default: Any = None) -> Any:
        if k not in self.doc:
            if required:
                raise ConfigError(f"{self.source}: missing required key {self.key(k)!r}")
            return default
        v = self.doc[k]
        ok = (isinstance(v, int | float) and not isinstance(v, bool)) if typ is float else isinstance(v, typ)
        if typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        if not ok or (typ is float and not math.isfinite(v)):
            self.fail(k, v, f"must be {'a finite number' if typ is float else 'a ' + typ.__name__}")
        return float(v) if typ is float else v

    def build(self, cls: type, kwargs: dict[str, Any]) -> Any:
        try:
            return cls(**kwargs)
        except ValueError as exc:
            msg = str(exc)
            k = msg.split(" ", 1)[0]
            raise ConfigError(f"{self.source}: {self.key(k)} {msg.split(' ', 1)[1]}") from None
