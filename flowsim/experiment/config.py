"""Experiment files (TOML) -> a frozen, validated :class:`Experiment`.

The schema is the users' contract (keys may be added, never renamed); see the docs'
reference, "Experiment files".  Each table is validated by the part it configures: ``[loss]``
by the loss class, ``[model]`` by the parameterisation, ``[stop]`` by ``StopRule``,
``[solver]`` by ``SolverOptions``; their errors carry the key as data
(:class:`flowsim._validation.ParamError`), and :class:`ConfigError` prefixes the file and
the table.  Nothing is run before the whole file has passed.  (``[claims]`` is kept as
given here and validated by the analysis layer, which owns the verdict rules.)
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowsim._validation import ParamError, check_interval
from flowsim.dynamics.driver import STIFF_NFEV, SolverOptions
from flowsim.dynamics.engines import AUTO, ENGINES, Task, choose
from flowsim.dynamics.optimisers import OPTIMISERS
from flowsim.dynamics.record import StopRule
from flowsim.experiment.grids import GRID_KINDS, Axis, Grid, product
from flowsim.experiment.regions import DEFAULT_CUTS, check_cuts
from flowsim.experiment.table import ConfigError, Problems, Table, a_or_an
from flowsim.model.losses import LOSSES, Loss
from flowsim.model.parameterisations import MODELS, Model

#: "fixed": ref_w, ref_l given (default 1); "initial": the reference is the SFT start
#: (ref = p0 per row); "none": pi_ref = 1 (the paper's reference-free setting).
REFERENCE_MODES = ("fixed", "initial", "none")
REF_KEYS = ("ref_w", "ref_l")
#: The grid of an experiment whose model reads none (``Model.grid_optional``): one point, unread.
ONE_POINT = Grid(kind="mesh", p1=Axis(0.5, 1.0, 1), p2=Axis(0.25, 1.0, 1))
#: The engine the closed forms were asked for with before engines had their own key (``method = "exact"``).
LEGACY_EXACT = "exact"
#: The continuous gradient flow, the default dynamics (its options live in [solver]).
FLOW = "flow"


@dataclass(frozen=True)
class Experiment:
    """An experiment as run: loss x model x references swept, a grid, a stop rule and a solver.

    ``losses`` pairs each loss kind with its parameters, and ``ref_params`` and ``model_params``
    map each parameter to the tuple of values swept (every list in the file is swept; the
    sweep runs over the Cartesian product, losses outermost, in field order).  With several
    loss kinds each uses its own defaults, and a key given in [loss] applies to the kinds that
    take it (``loss_given``).  ``reference`` holds the reference
    modes swept: "fixed" (ref_w, ref_l from ``ref_params``), "initial" (the reference is the
    SFT model itself: each start gets ref = (p_w0, p_l0)) or "none" (pi_ref = 1).
    """

    name: str
    losses: tuple[tuple[str, Mapping[str, tuple]], ...] = (("dpo", {"beta": (0.1,)}),)
    loss_given: Mapping[str, tuple] = field(default_factory=dict)
    reference: tuple[str, ...] = ("fixed",)
    ref_params: Mapping[str, tuple] = field(default_factory=dict)
    model_kind: str = "ratio"
    model_params: Mapping[str, tuple] = field(default_factory=dict)
    #: ("flow", {}) and discrete optimisers: each kind with its swept hyperparameters.
    dynamics: tuple[tuple[str, Mapping[str, tuple]], ...] = (("flow", {}),)
    grid: Grid = field(default_factory=lambda: Grid(p1=Axis(0.01, 1.0, 100), p2=Axis(0.01, 1.0, 100)))
    stop: StopRule = field(default_factory=StopRule)
    solver: SolverOptions = field(default_factory=SolverOptions)
    #: "auto" or a registered engine (:data:`flowsim.dynamics.engines.ENGINES`); :meth:`engine_for` resolves it
    engine: str = AUTO
    p1_cuts: tuple[float, float] = DEFAULT_CUTS
    p2_cuts: tuple[float, float] = DEFAULT_CUTS
    claims: Mapping[str, float] = field(default_factory=dict)

    @property
    def loss_kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.losses)

    @property
    def loss_kind(self) -> str:
        """The loss kind of a one-loss experiment (ValueError if it sweeps several)."""
        if len(self.losses) != 1:
            raise ValueError(f"experiment {self.name!r} sweeps the losses {list(self.loss_kinds)}")
        return self.losses[0][0]

    @property
    def loss_params(self) -> dict[str, tuple]:
        """Every loss parameter column, in order of first appearance (values of the first kind taking it)."""
        out: dict[str, tuple] = {}
        for _, params in self.losses:
            out |= {k: v for k, v in params.items() if k not in out}
        return out

    @property
    def model_class(self) -> type[Model]:
        return MODELS[self.model_kind]

    def swept(self) -> dict[str, tuple]:
        """Every swept parameter in column order: the loss's, the references, the model's, the dynamics'."""
        return {**self.loss_params, **self.ref_params, **self.model_params, **self.dynamics_params}

    @property
    def dynamics_params(self) -> dict[str, tuple]:
        """Every optimiser hyperparameter column, in order of first appearance."""
        out: dict[str, tuple] = {}
        for _, params in self.dynamics:
            out |= {k: v for k, v in params.items() if k not in out}
        return out

    def task(self, combo: Mapping[str, Any], *, path: int = 0) -> Task:
        """What a combination computes but its starts (:class:`~flowsim.dynamics.engines.Task`); ``path``: points."""
        loss, model = self.split(combo)
        return Task(loss, model, self.optimiser(combo), self.stop, self.solver, combo.get("reference", "fixed"), path)

    def engine_for(self, combo: Mapping[str, Any]) -> str:
        """The engine that computes a combination's rows (:func:`flowsim.dynamics.engines.choose`)."""
        return choose(self.engine, self.task(combo)).name

    def optimiser(self, combo: Mapping[str, Any]):
        """The discrete optimiser of a combination, or None for the flow."""
        kind = combo.get("dynamics", "flow")
        if kind == FLOW:
            return None
        return OPTIMISERS[kind](**{k: combo[k] for k in dict(self.dynamics)[kind]})

    def parameter_sets(self) -> list[dict[str, Any]]:
        """The swept combinations, loss parameters outermost, then the reference (mode and, for
        "fixed", ref_w and ref_l; None for the per-row references of the other modes), then the
        model's parameters."""
        out = []
        for kind, params in self.losses:
            out += self._loss_sets(kind, params)
        return out

    def _loss_sets(self, kind: str, params: Mapping[str, tuple]) -> list[dict[str, Any]]:
        out = []
        for lc in product(params):
            lc = {"loss": kind, **lc}
            for mode in self.reference:
                refs = product(self.ref_params) if mode == "fixed" else [{"ref_w": None, "ref_l": None}]
                out += [
                    {**lc, "reference": mode, **rc, **mc, **dc}
                    for rc in refs
                    for mc in product(self.model_params)
                    for dc in self._dynamics_sets()
                ]
        return out

    def _dynamics_sets(self) -> list[dict[str, Any]]:
        return [{"dynamics": kind, **dc} for kind, params in self.dynamics for dc in product(params)]

    def split(self, combo: Mapping[str, Any]) -> tuple[Loss, Model]:
        """The loss and the model of one combination."""
        kind = combo.get("loss", self.losses[0][0])
        params = dict(self.losses)[kind]
        loss = LOSSES[kind](**{k: combo[k] for k in params})
        return loss, self.model_class(**{k: combo[k] for k in self.model_params})

    def combo_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A flows row's combination, its values cast to the parameters' own types."""
        kind, dyn = str(row.get("loss", self.losses[0][0])), str(row.get("dynamics", FLOW))
        params = {**dict(self.losses)[kind], **self.model_params, **dict(self.dynamics).get(dyn, {})}
        return {"loss": kind, "dynamics": dyn, **{k: type(v[0])(row[k]) for k, v in params.items()}}

    def _loss_dict(self, one_or_list) -> dict[str, Any]:
        """One loss: its kind and every parameter after defaults; several: the kinds and the keys given."""
        if len(self.losses) == 1:
            return {"kind": self.losses[0][0]} | one_or_list(self.losses[0][1])
        return {"kind": list(self.loss_kinds)} | one_or_list(self.loss_given)

    def as_dict(self) -> dict[str, Any]:
        """The experiment after defaults, in the file's own shape (for meta.json)."""

        def one_or_list(d: Mapping[str, tuple]) -> dict[str, Any]:
            return {k: list(v) if len(v) > 1 else v[0] for k, v in d.items()}

        modes = self.reference[0] if len(self.reference) == 1 else list(self.reference)
        solver = {"method": self.solver.method, "rtol": self.solver.rtol, "atol": self.solver.atol}
        if self.engine != "driver":  # earlier run folders (driver by default, no key) still resume with "driver"
            solver["engine"] = self.engine
        if self.solver.max_nfev != STIFF_NFEV:  # only when set, so that earlier run folders still resume
            solver["max_nfev"] = self.solver.max_nfev or 0  # 0: no limit (TOML has no null)
        out = {
            "name": self.name,
            "loss": self._loss_dict(one_or_list) | {"reference": modes} | one_or_list(self.ref_params),
            "grid": self.grid.as_dict(),
            "stop": self.stop.as_dict(),
            "solver": solver,
            "regions": {"p1_cuts": list(self.p1_cuts), "p2_cuts": list(self.p2_cuts)},
            "claims": dict(self.claims),
        }
        if self.model_kind != "ratio" or self.model_params:
            out["model"] = {"kind": self.model_kind} | one_or_list(self.model_params)
        if self.dynamics != ((FLOW, {}),):
            kinds = [k for k, _ in self.dynamics]
            out["dynamics"] = {"kind": kinds[0] if len(kinds) == 1 else kinds} | {
                k: one_or_list(params) for k, params in self.dynamics if params
            }
        return out


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
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not an experiment file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot be read (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_experiment(doc, source=str(path))


def parse_experiment(doc: Mapping[str, Any], source: str = "<experiment>") -> Experiment:
    """Validate a parsed experiment document (the TOML as a dict).

    Every table is checked even after one fails, so a file's problems are reported
    together (:class:`~flowsim.experiment.table.Problems`, up to a handful); a check that
    needs a table that failed is skipped.
    """
    t = Table(doc, source, "")
    found = Problems()
    found.check(t.allow, {"name", "loss", "model", "dynamics", "grid", "stop", "solver", "regions", "claims"})
    name = found.check(_parse_name, t)
    loss_t, model_t = found.check(t.table, "loss"), found.check(t.table, "model")
    losses, given = found.check(_parse_losses, loss_t) or (None, None) if loss_t else (None, None)
    reference, ref_params = (
        found.check(_parse_reference, loss_t, model_t) or (None, None) if loss_t and model_t else (None, None)
    )
    model_kind, model_params = found.check(_parse_model, model_t) or (None, None) if model_t else (None, None)
    dynamics = found.check(lambda: _parse_dynamics(t.table("dynamics")))
    stop = found.check(lambda: _parse_stop(t.table("stop")))
    solver_t = found.check(t.table, "solver")
    solver, engine = (found.check(_parse_solver, solver_t) if solver_t else None) or (None, None)
    cuts = found.check(lambda: _parse_regions(t.table("regions")))
    claims = found.check(lambda: t.table("claims").doc)
    grid = None  # whether a grid is needed depends on the model: with a model that failed, it is not checked
    if model_kind:
        model_class = MODELS[model_kind]
        no_grid = model_class.grid_optional and "grid" not in doc
        grid = ONE_POINT if no_grid else found.check(lambda: _parse_grid(t.table("grid")))
        if grid and dynamics:
            found.check(_check_sweep, t, model_class, model_params, dynamics, None if no_grid else len(grid))
        if grid and losses:
            found.check(lambda: _check_certain_starts(t.table("grid"), losses, model_kind, grid))
    found.raise_any()
    exp = Experiment(
        name=name,
        losses=losses,
        loss_given=given,
        reference=reference,
        ref_params=ref_params,
        model_kind=model_kind,
        model_params=model_params,
        dynamics=dynamics,
        grid=grid,
        stop=stop,
        solver=solver,
        engine=engine,
        p1_cuts=cuts["p1_cuts"],
        p2_cuts=cuts["p2_cuts"],
        claims=dict(claims),
    )
    _check_engines(exp, solver_t)
    return exp


def _parse_name(t: Table) -> str:
    name = t.get("name", str, required=True)
    if not name or "/" in name or name.startswith("."):
        t.fail("name", name, "must be a non-empty folder name without '/'")
    return name


def _check_sweep(t: Table, model_class, params, dynamics, grid_points) -> None:
    """The model's own rules of a sweep over it, reported under the key they name."""
    try:
        model_class.check_sweep(params, tuple(k for k, _ in dynamics), grid_points)
    except ParamError as exc:
        t.fail(exc.key, exc.value, exc.rule)


def _check_engines(exp: Experiment, t: Table) -> None:
    """Every combination has an engine under the setting (a named one must run what it is named for)."""
    for combo in exp.parameter_sets():
        try:
            exp.engine_for(combo)
        except ParamError as exc:
            t.fail("engine", exp.engine, exc.rule)


def _parse_losses(t: Table) -> tuple[tuple[tuple[str, dict[str, tuple]], ...], dict[str, tuple]]:
    """kind = one loss or a list; each kind's fields swept, a given key applying to the kinds that take it."""
    kinds = _values(t, "kind", t.doc.get("kind", "dpo"), str)
    for kind in kinds:
        if kind not in LOSSES:
            t.fail("kind", kind, f"must be one of {sorted(LOSSES)} (or a list of them)")
    if len(set(kinds)) != len(kinds):
        t.fail("kind", kinds, "must not repeat a loss")
    fields = {k: {f.name for f in dataclasses.fields(LOSSES[k])} for k in kinds}  # type: ignore[arg-type]
    t.allow({"kind", "reference", *REF_KEYS, *set().union(*fields.values())})
    found = Problems()  # every loss's problems, each naming its loss when there are several
    swept = {kind: found.check(_swept_fields, t, LOSSES[kind], kind if len(kinds) > 1 else None) for kind in kinds}
    found.raise_any()
    losses = tuple((kind, swept[kind]) for kind in kinds)
    if len(losses) == 1:  # one loss: every parameter is recorded, given or not
        return losses, {}
    given = {
        k: v
        for k in t.doc
        if k not in ("kind", "reference", *REF_KEYS)
        for kind, params in losses
        if k in params
        for v in [params[k]]
    }
    return losses, given


def _parse_dynamics(t: Table) -> tuple[tuple[str, dict[str, tuple]], ...]:
    """kind = "flow" | an optimiser | a list of them; each optimiser's hyperparameters given in a
    sub-table named after it (``gd = { lr = [0.1, 1] }``) or, for one optimiser, directly."""
    kinds = _values(t, "kind", t.doc.get("kind", FLOW), str)
    known = (FLOW, *sorted(OPTIMISERS))
    for kind in kinds:
        if kind not in known:
            t.fail("kind", kind, f"must be one of {list(known)} (or a list of them)")
    if len(set(kinds)) != len(kinds):
        t.fail("kind", kinds, "must not repeat a dynamics")
    opts = [k for k in kinds if k != FLOW]
    direct = {f.name for k in opts[:1] for f in dataclasses.fields(OPTIMISERS[k])} if len(opts) == 1 else set()
    t.allow({"kind", *opts, *direct})
    out = []
    for kind in kinds:
        if kind == FLOW:
            out.append((FLOW, {}))
            continue
        sub = t.table(kind) if kind in t.doc else t
        if sub is not t:
            sub.allow({f.name for f in dataclasses.fields(OPTIMISERS[kind])})
        out.append((kind, _swept_fields(sub, OPTIMISERS[kind])))
    return tuple(out)


def _parse_model(t: Table) -> tuple[str, dict[str, tuple]]:
    kind = t.get("kind", str, default="ratio")
    if kind not in MODELS:
        t.fail("kind", kind, f"must be one of {sorted(MODELS)}")
    cls = MODELS[kind]
    try:
        cls()  # a model that needs an optional extra says which (the network: torch)
    except ParamError as exc:
        t.fail(exc.key, exc.value, exc.rule)
    t.allow({"kind", "reference", *(f.name for f in dataclasses.fields(cls))})  # type: ignore[arg-type]
    return kind, _swept_fields(t, cls)


def _parse_reference(loss_t: Table, model_t: Table) -> tuple[tuple[str, ...], dict[str, tuple]]:
    """reference = fixed (ref_w, ref_l swept, default 1) | initial | none, or a list of them."""
    if "reference" in loss_t.doc and "reference" in model_t.doc:
        raise ConfigError(f"{loss_t.source}: give reference in [loss] or in [model], not both")
    where = model_t if "reference" in model_t.doc else loss_t
    modes = tuple(_values(where, "reference", where.doc.get("reference", "fixed"), str))
    for m in modes:
        if m not in REFERENCE_MODES:
            where.fail("reference", m, f"must be one of {list(REFERENCE_MODES)} (or a list of them)")
    if len(set(modes)) != len(modes):
        where.fail("reference", list(modes), "must not repeat a mode")
    given = [k for k in REF_KEYS if k in loss_t.doc]
    shown = modes[0] if len(modes) == 1 else list(modes)
    if "fixed" not in modes and given:
        raise ConfigError(
            f"{loss_t.source}: {where.key('reference')} = {shown!r} sets the references (initial: each start's "
            f"p1_0 and p2_0; none: 1), so loss.ref_w and loss.ref_l cannot be given with it; got {', '.join(given)}"
        )
    if "fixed" not in modes:
        return modes, {}
    params = {}
    for k in REF_KEYS:
        values = _values(loss_t, k, loss_t.doc.get(k, 1.0), float)
        for v in values:
            try:
                check_interval(k, v, 0.0, 1.0)
            except ParamError as exc:
                loss_t.fail(k, v, exc.rule)
        params[k] = tuple(float(v) for v in values)
    if "initial" in modes and max(map(len, params.values())) > 1:
        where.fail(
            "reference",
            list(modes),
            "cannot mix 'initial' with several fixed references in one table; split it into two experiments",
        )
    return modes, params


def _values(t: Table, key: str, raw: Any, typ: type) -> list:
    """A value or a non-empty list of values of the field's type."""
    values = raw if isinstance(raw, list) else [raw]
    what = {float: "number", int: "whole number", bool: "true/false", str: "string"}[typ]
    if not values:
        t.fail(key, raw, f"must be {a_or_an(what)} or a non-empty list of them")
    for v in values:
        ok = isinstance(v, typ) and not (typ is not bool and isinstance(v, bool))
        if typ is float:
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not ok:
            t.fail(key, raw, f"must be {a_or_an(what)} or a non-empty list of them")
    return values


def _swept_fields(t: Table, cls: type, loss: str | None = None) -> dict[str, tuple]:
    """Every field of ``cls`` as a tuple of swept values (defaults filled), each validated by ``cls``.

    Every field is checked before the problems are raised together; ``loss`` names the loss
    in them (a sweep over several losses, whose ranges differ).
    """
    found = Problems()
    out = {f.name: found.check(_swept_field, t, cls, f.name, loss) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    found.raise_any()
    return out


def _swept_field(t: Table, cls: type, name: str, loss: str | None) -> tuple:
    default = getattr(cls(), name)
    typ = type(default) if isinstance(default, bool | int | str) else float
    values = _values(t, name, t.doc.get(name, default), typ)
    for v in values:
        try:
            cls(**{name: v})
        except ParamError as exc:
            t.fail(exc.key, exc.value, exc.rule + (f" for loss {loss!r} (each loss has its own range)" if loss else ""))
    return tuple(float(v) if typ is float else v for v in values)


def _parse_stop(t: Table) -> StopRule:
    names = {f.name for f in dataclasses.fields(StopRule)}
    t.allow(names)
    return t.build(StopRule, {k: t.get(k, int if k == "max_steps" else float) for k in names if k in t.doc})


def _parse_solver(t: Table) -> tuple[SolverOptions, str]:
    """The integrators' options and the engine setting ("auto" or a registered engine's name).

    ``method = "exact"`` (the closed forms' spelling before engines had their own key, still in
    older files and run folders) reads as ``engine = "exact"``.
    """
    t.allow({"method", "rtol", "atol", "engine", "max_nfev"})
    method = t.get("method", str, default="auto")
    engine = t.get("engine", str, default=AUTO)
    if method == LEGACY_EXACT:
        if "engine" in t.doc:
            t.fail("method", method, f'is an engine: write engine = "{LEGACY_EXACT}" and leave method out')
        method, engine = "auto", LEGACY_EXACT
    if engine not in (AUTO, *ENGINES):
        t.fail("engine", engine, f"must be one of {[AUTO, *ENGINES]}")
    kw = {k: t.get(k, float) for k in ("rtol", "atol") if k in t.doc}
    if "max_nfev" in t.doc:
        kw["max_nfev"] = t.get("max_nfev", int) or None  # 0: no limit
    return t.build(SolverOptions, {"method": method, **kw}), engine


def _check_certain_starts(t: Table, losses, model_kind: str, grid: Grid) -> None:
    """Refuse mesh starts at p = 1 on an unnormalised model for a loss that is infinite there (ORPO at p2 = 1)."""
    if MODELS[model_kind].normalised or grid.kind != "mesh":
        return  # a normalised model's starts have p1 + p2 < 1; a random grid's values are < high <= 1
    for kind, params in losses:
        for combo in product(params):
            infinite = LOSSES[kind](**combo).infinite_at_certainty()
            for i, axis in enumerate((grid.p1, grid.p2)):
                if infinite[i] and axis.values().max() >= 1.0:
                    t.fail(
                        f"p{i + 1}",
                        {"start": axis.start, "stop": axis.stop},
                        f"must stay below 1 for loss {kind!r} ({combo}) on model {model_kind!r}: the loss "
                        f"is infinite where pi(y_{'wl'[i]}) = 1 (it reads log(1 - pi))",
                    )


def _parse_regions(t: Table) -> dict[str, tuple[float, float]]:
    t.allow({"p1_cuts", "p2_cuts"})
    cuts = {}
    for k in ("p1_cuts", "p2_cuts"):
        raw = t.doc.get(k, list(DEFAULT_CUTS))
        try:
            cuts[k] = check_cuts(k, raw)
        except ParamError as exc:
            t.fail(k, raw, exc.rule)
    return cuts


def _parse_axis(a: Table) -> Axis:
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
    return Axis(start, stop, num, spacing)


def _parse_grid(t: Table) -> Grid:
    kind = t.get("kind", str, default="mesh")
    if kind not in GRID_KINDS:
        t.fail("kind", kind, f"must be one of {list(GRID_KINDS)}")
    if kind == "mesh":
        t.allow({"kind", "p1", "p2"})
        return Grid(
            kind="mesh", p1=_parse_axis(t.table("p1", required=True)), p2=_parse_axis(t.table("p2", required=True))
        )
    t.allow({"kind", "n", "seed", "low", "high"})
    n = t.get("n", int, required=True)
    seed = t.get("seed", int, default=0)
    low, high = t.get("low", float, default=0.01), t.get("high", float, default=1.0)
    if n < 1:
        t.fail("n", n, "must be a whole number >= 1")
    if not 0 < low < 1:
        t.fail("low", low, "must be in (0, 1)")
    if not low < high <= 1:
        t.fail("high", high, f"must satisfy low < high <= 1 (low = {low!r})")
    return Grid(kind=kind, n=n, seed=seed, low=low, high=high)
