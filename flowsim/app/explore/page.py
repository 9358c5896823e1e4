"""The explore page: one Bokeh document per browser session, its callbacks run in the server process.

Layout: the controls on the left; the phase plane (the run's heatmap over the starts, the
field's arrows, the paths) in the middle; p_w(t) and p_l(t) of the paths, the paths'
records and any error on the right.  Models carry names (``plane``, ``run_path``,
``compare_path``, ``start``, ``error``, ``info``, the widgets' setting names) so that a test, or
a user's script, can read them back with ``Bokeh.documents[0].get_model_by_name``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from bokeh.events import Tap
from bokeh.layouts import column, row
from bokeh.models import (
    Arrow,
    Button,
    Checkbox,
    ColorBar,
    ColumnDataSource,
    Div,
    HoverTool,
    LinearColorMapper,
    LogColorMapper,
    Select,
    TextInput,
    VeeHead,
)
from bokeh.plotting import figure
from matplotlib import colormaps
from matplotlib.colors import to_hex

from flowsim.analysis.tables import parameter_columns
from flowsim.app.explore import compute
from flowsim.app.explore.compute import Setting
from flowsim.app.explore.trace import RecordedSetting, observed
from flowsim.app.explore.trace import axes as trace_axes
from flowsim.app.explore.trace import setting as trace_setting
from flowsim.dynamics.optimisers import OPTIMISERS
from flowsim.errors import UserError
from flowsim.experiment.config import FLOW, REFERENCE_MODES, Experiment, parse_experiment
from flowsim.model.losses import LOSSES
from flowsim.model.parameterisations import PARAMETERISATIONS
from flowsim.plotting.quantities import quantities, values
from flowsim.plotting.style import AT_START, NEVER, PATH_COLOURS

#: Okabe-Ito: the run's setting in vermillion, the compared one in blue (dashed).
RUN_COLOUR, COMPARE_COLOUR = PATH_COLOURS[5], PATH_COLOURS[4]
#: Arrows of the field per side of the square.
ARROWS = 15


@dataclass(frozen=True)
class Group:
    """One parameter combination of the run: its rows, its combination and its setting."""

    label: str
    rows: pd.DataFrame
    combo: dict[str, Any]
    setting: Setting
    #: the rows as the heatmap's columns (made once per server, copied into each page)
    cells: dict[str, Any]


@dataclass(frozen=True)
class RunData:
    """A run folder read once per server, shared read-only by every page."""

    name: str
    experiment: Experiment
    groups: tuple[Group, ...]
    columns: tuple[str, ...]
    #: a traced training run (:mod:`flowsim.app.explore.trace`): log axes, recorded paths, no field
    trace: bool = False


def run_data(name: str, flows: pd.DataFrame, exp: Experiment | None) -> RunData:
    """The groups of a flows table (a run without meta.json is read as DPO on the ratio plane)."""
    if exp is None:
        exp = parse_experiment({"name": "explore", "loss": {"kind": "dpo"}}, source=compute.SOURCE)
    params = parameter_columns(flows)
    keys = [*params, *(c for c in compute.SETTING_COLUMNS if c in flows.columns and c not in params)]
    # the label names what varies between the combinations, and always beta and the references (as the figures do)
    named = {k for k in keys if flows[k].nunique(dropna=False) > 1} | {"beta", "ref_w", "ref_l"}
    groups = []
    for key, rows in flows.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        first = rows.iloc[0]
        combo = exp.combo_of(first) | {"reference": str(first.get("reference", "fixed"))}
        combo |= {k: float(first[k]) for k in ("ref_w", "ref_l")}
        label = ", ".join(f"{k} = {_shown(v)}" for k, v in zip(keys, key, strict=True) if k in named and not pd.isna(v))
        rows = rows.reset_index(drop=True)
        groups.append(Group(label, rows, combo, compute.setting_of(exp, first), _cells_data(rows)))
    cols = ("status", *compute.numeric_columns(flows))
    return RunData(name, exp, tuple(groups), cols)


def trace_run_data(name: str, flows: pd.DataFrame, beta: float) -> RunData:
    """The page's data for a traced run (:mod:`flowsim.app.explore.trace`): one group, every pair."""
    exp, combo, setting = trace_setting(flows, beta)
    rows = flows.reset_index(drop=True)
    group = Group(f"{len(rows)} traced pairs, β = {beta:g}", rows, combo, setting, _cells_data(rows))
    return RunData(name, exp, (group,), ("status", *compute.numeric_columns(flows)), trace=True)


def _shown(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _palette(cmap: str) -> list[str]:
    return [to_hex(c) for c in colormaps[cmap](np.linspace(0, 1, 256))]


def colouring(name: str, v: np.ndarray, exp: Experiment) -> tuple[Any, str]:
    """A Bokeh colour mapper for a column's values and the colour bar's title, as the figures colour it."""
    q = {q.name: q for q in quantities(exp.stop)}.get(name)
    if q is not None and q.scale == "status":
        colours = [c for _, c in q.colours]
        return LinearColorMapper(
            palette=colours, low=-0.5, high=len(colours) - 0.5, nan_color=to_hex(NEVER)
        ), f"{q.label}: " + ", ".join(f"{i} {n}" for i, (n, _) in enumerate(q.colours))
    finite = v[np.isfinite(v)]
    pos = finite[finite > 0]
    log = (
        q.scale == "log"
        if q is not None
        else bool(pos.size == finite.size and pos.size and pos.max() / pos.min() > 1e3)
    )
    palette = _palette(q.cmap if q is not None else "viridis")
    if log and pos.size:
        hi = float(pos.max()) if pos.max() > pos.min() else float(pos.min()) * 10
        return LogColorMapper(
            palette=palette, low=float(pos.min()), high=hi, nan_color=to_hex(NEVER), low_color=to_hex(AT_START)
        ), f"{q.label if q else name} (log scale)"
    lo, hi = (
        (0.0, 1.0)
        if q is not None and q.scale == "linear"
        else ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    )
    hi = hi if hi > lo else lo + 1.0
    return LinearColorMapper(palette=palette, low=lo, high=hi, nan_color=to_hex(NEVER)), q.label if q else name


def column_values(rows: pd.DataFrame, name: str) -> np.ndarray:
    """A column as numbers (statuses as their index in STATUSES, as the figures draw them)."""
    return values(rows, name) if name in ("status", "displaced") else rows[name].to_numpy(float)


def _cells_data(rows: pd.DataFrame) -> dict[str, Any]:
    w, h = compute.cells(rows)
    data = {
        c: (rows[c].to_numpy(float) if rows[c].dtype.kind in "fiub" else rows[c].astype(str).to_numpy())
        for c in rows.columns
    }
    return data | {"_w": w, "_h": h}


#: The fields the hover box shows (where the run has them); a click shows the whole row.
HOVER = ("p1_0", "p2_0", "status", "t_stop", "p1_final", "p2_final")


def _tooltips(columns) -> list[tuple[str, str]]:
    """A few chosen fields of a start (:data:`HOVER`): the box stays small beside the pointer."""
    shown = [(c, f"@{{{c}}}{{%.6g}}" if num else f"@{{{c}}}") for c, num in columns if c in HOVER]
    return [*shown, ("click", "the whole row, beside the plane")]


def _row_table(r: pd.Series) -> str:
    """A row of flows.csv as a folded table of every field (the path column left out: it is drawn)."""
    cells = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_shown(v))}</td></tr>" for k, v in r.items() if k != "path"
    )
    return (
        f"<details><summary>the run's row: all {len(r)} fields</summary>"
        f"<table style='font-size:85%'>{cells}</table></details>"
    )


def _empty_path() -> dict[str, list]:
    return {"p1": [], "p2": [], "t": []}


class Explorer:
    """One page: its widgets, figures and callbacks."""

    def __init__(self, data: RunData, doc) -> None:
        self.data, self.doc = data, doc
        self.group = data.groups[0]
        self.start: np.ndarray | None = None
        self.row: pd.Series | None = None
        self._quiet = False
        self._runs: dict[str, tuple[Setting, compute.Trajectory]] = {}
        self._job = 0  # the latest request for paths; older results are dropped
        self._widgets()
        self._figures()
        self._wire()
        self.recolour()
        self.draw_field()
        doc.title = f"flowsim explore: {data.name}"
        doc.add_root(self.layout())

    # --- building -------------------------------------------------------------------------

    def _widgets(self) -> None:
        s = self.group.setting
        first = "t_stop" if "t_stop" in self.data.columns else self.data.columns[0]
        first = "margin_final" if self.data.trace else first  # a trace's t_stop is its step count, one value
        self.column = Select(title="colour the starts by", value=first, options=list(self.data.columns), name="column")
        self.combination = Select(
            title="the run's combination",
            value=self.group.label,
            options=[g.label for g in self.data.groups],
            name="combination",
        )
        self.snap = Checkbox(label="snap clicks to the run's starts", active=True, name="snap")
        self.inputs = {
            "model": Select(title="model", options=list(PARAMETERISATIONS), value=s.model, name="model"),
            "loss": Select(title="loss", options=list(LOSSES), value=s.loss, name="loss"),
            "beta": TextInput(title="β", value=s.beta, name="beta"),
            "reference": Select(title="reference", options=list(REFERENCE_MODES), value=s.reference, name="reference"),
            "ref_w": TextInput(title="ref_w (reference fixed)", value=s.ref_w, name="ref_w"),
            "ref_l": TextInput(title="ref_l (reference fixed)", value=s.ref_l, name="ref_l"),
            "dynamics": Select(title="dynamics", options=[FLOW, *OPTIMISERS], value=s.dynamics, name="dynamics"),
            "lr": TextInput(title="lr (optimisers)", value=s.lr, name="lr"),
        }
        self.reset = Button(label="compare with the run's own setting", name="reset")
        self.error = Div(text="", name="error", styles={"color": "#B00020", "white-space": "pre-wrap"}, width=420)
        self.info = Div(text="Click a start on the plane: its path is computed and drawn.", name="info", width=420)

    def _figures(self) -> None:
        tip = "the run's starts (hover: start, status, t_stop, finals), −∇L as arrows; click a start for its path"
        if self.data.trace:
            tip = "the traced pairs' starts (hover: start, status, finals); click one for its recorded path"
        axes = (
            trace_axes(self.data) if self.data.trace else {"x_range": (0, 1), "y_range": (0, 1), "match_aspect": True}
        )
        p = figure(
            name="plane",
            width=640,
            height=600,
            tools="pan,wheel_zoom,box_zoom,reset,save",
            title=tip,
            x_axis_label="p1 = π(y_w|x) at the start",
            y_axis_label="p2 = π(y_l|x) at the start",
            **axes,
        )
        self.cells = ColumnDataSource(self._cells(), name="cells")
        if self.data.trace:  # a few pairs, scattered on log axes: points, not a tiling of the square
            self.rects = p.scatter("p1_0", "p2_0", source=self.cells, size=12, line_color=None)
        else:
            self.rects = p.rect("p1_0", "p2_0", "_w", "_h", source=self.cells, line_color=None)
        self.colorbar = ColorBar(width=12, title_text_font_size="9pt")
        p.add_layout(self.colorbar, "right")
        kinds = [(c, self.group.rows[c].dtype.kind in "fiub") for c in self.group.rows.columns if c in HOVER]
        p.add_tools(
            HoverTool(
                renderers=[self.rects],
                tooltips=_tooltips(kinds),
                formatters={f"@{{{c}}}": "printf" for c, num in kinds if num},
            )
        )
        if not self.data.trace:
            self._guides(p)
        self.field = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": [], "speed": []}, name="field")
        p.segment("x0", "y0", "x1", "y1", source=self.field, line_color="white", line_width=3, line_alpha=0.7)
        p.add_layout(
            Arrow(
                end=VeeHead(size=6, fill_color="black", line_color="white", line_width=0.5),
                x_start="x0",
                y_start="y0",
                x_end="x1",
                y_end="y1",
                source=self.field,
                line_color="black",
                line_width=1.3,
            )
        )
        self.run_path = ColumnDataSource(_empty_path(), name="run_path")
        self.compare_path = ColumnDataSource(_empty_path(), name="compare_path")
        self.start_src = ColumnDataSource({"p1": [], "p2": []}, name="start")
        run_label = "the traced run (recorded)" if self.data.trace else "the run's setting"
        for src, colour, dash, label in (
            (self.run_path, RUN_COLOUR, "solid", run_label),
            (self.compare_path, COMPARE_COLOUR, "dashed", "compared setting"),
        ):
            p.line("p1", "p2", source=src, line_color="white", line_width=6, line_alpha=0.8)
            p.line("p1", "p2", source=src, line_color=colour, line_width=3, line_dash=dash, legend_label=label)
        p.scatter("p1", "p2", source=self.start_src, size=11, fill_color="white", line_color="black", line_width=2)
        p.legend.location = "top_right"
        p.legend.background_fill_alpha = 0.8
        self.plane = p
        self.time = self._time_figure()

    def _guides(self, p) -> None:
        exp = self.data.experiment
        for c in exp.p1_cuts:
            p.line([c, c], [0, 1], line_color="white", line_dash="dotted", line_width=1.2)
        for c in exp.p2_cuts:
            p.line([0, 1], [c, c], line_color="white", line_dash="dotted", line_width=1.2)
        p.line([0, 1], [1, 0], line_color="white", line_dash="dashdot", line_width=1.2)  # p1 + p2 = 1

    def _time_figure(self):
        label = "t: steps (the run), flow time (compared)" if self.data.trace else "t (flow time; lr × steps)"
        t = figure(
            name="time",
            width=420,
            height=300,
            x_axis_type="log",
            y_axis_type="log",
            title="p_w(t) solid, p_l(t) dotted; colours as on the plane",
            x_axis_label=label,
            y_axis_label="probability",
            tools="pan,wheel_zoom,reset,save",
        )
        for src, colour in ((self.run_path, RUN_COLOUR), (self.compare_path, COMPARE_COLOUR)):
            t.line("t", "p1", source=src, line_color=colour, line_width=2)
            t.line("t", "p2", source=src, line_color=colour, line_width=2.5, line_dash="dotted")
        return t

    def layout(self):
        n = sum(len(g.rows) for g in self.data.groups)
        intro = Div(
            text=f"<b>{html.escape(self.data.name)}</b>: {n:,} flows. The compared setting (dashed) is "
            "drawn beside the run's own (solid).",
            width=260,
        )
        controls = column(
            intro,
            self.column,
            self.combination,
            self.snap,
            Div(text="<b>compare with</b>"),
            *self.inputs.values(),
            self.reset,
            width=260,
        )
        return row(controls, self.plane, column(self.time, self.error, self.info))

    def _wire(self) -> None:
        def on_value(fn: Callable) -> Callable:
            guarded = self._guard(fn)
            return lambda attr, old, new: None if self._quiet else guarded()

        self.plane.on_event(Tap, lambda event: self._guard(lambda: self.on_tap(event))())
        self.column.on_change("value", on_value(self.recolour))
        self.combination.on_change("value", on_value(self.on_combination))
        for w in self.inputs.values():
            w.on_change("value", on_value(self.draw_compare))
        reset = self._guard(self.reset_setting)
        self.reset.on_click(lambda event: reset())

    # --- callbacks --------------------------------------------------------------------------

    def _guard(self, fn: Callable) -> Callable:
        """The callback, its failures shown on the page: bad input never ends the session or the server."""

        def guarded() -> None:
            try:
                fn()
            except UserError as exc:  # ConfigError, ParamError, StartError: the user's input
                self.error.text = html.escape(str(exc))
            except Exception as exc:  # noqa: BLE001 - a page must outlive a bug; said on the page
                self.error.text = html.escape(f"internal error (a bug in flowsim): {type(exc).__name__}: {exc}")

        return guarded

    def _cells(self) -> dict[str, Any]:
        return dict(self.group.cells) | {"_value": column_values(self.group.rows, self.column.value)}

    def recolour(self) -> None:
        v = column_values(self.group.rows, self.column.value)
        mapper, title = colouring(self.column.value, v, self.data.experiment)
        self.cells.data["_value"] = v  # only this column goes to the browser
        self.rects.glyph.fill_color = {"field": "_value", "transform": mapper}
        self.rects.glyph.line_color = {"field": "_value", "transform": mapper}  # no seams between cells
        self.colorbar.color_mapper = mapper
        self.colorbar.title = title

    def draw_field(self) -> None:
        if self.data.trace:  # the unit square's field: not drawn on a trace's log axes
            return
        f = compute.field(self.data.experiment, self.group.combo, ARROWS)
        self.field.data = compute.arrows(f, ARROWS)

    def on_combination(self) -> None:
        self.group = next(g for g in self.data.groups if g.label == self.combination.value)
        self.cells.data = self._cells()
        self.recolour()
        self.draw_field()
        self.reset_setting()

    def reset_setting(self) -> None:
        self._quiet = True
        try:
            for k, w in self.inputs.items():
                w.value = getattr(self.group.setting, k)
        finally:
            self._quiet = False
        self.redraw()

    def on_tap(self, event) -> None:
        p = np.array([event.x, event.y], dtype=float)
        self.row = None
        if self.snap.active:
            rows = self.group.rows
            f = np.log if self.data.trace else (lambda v: v)  # nearest as seen: on log axes, in logs
            d = (f(rows["p1_0"].to_numpy(float)) - f(p[0])) ** 2 + (f(rows["p2_0"].to_numpy(float)) - f(p[1])) ** 2
            self.row = rows.iloc[int(np.argmin(d))]
            p = np.array([self.row["p1_0"], self.row["p2_0"]], dtype=float)
        self.start = p
        self.start_src.data = {"p1": [p[0]], "p2": [p[1]]}
        self.redraw()

    def redraw(self) -> None:
        """Both paths from the current start (after a click, a new combination or a reset)."""
        self._paths(with_run=True)

    def draw_compare(self) -> None:
        """The compared path again (after a change of the compared setting)."""
        self._paths(with_run=False)

    def _paths(self, with_run: bool) -> None:
        """Validate the page's setting here, compute the paths on the worker thread, draw them when done.

        The server's event loop stays free while a long path (an optimiser's thousands of steps)
        is computed; a result that a newer click or change has overtaken is dropped.
        """
        self.error.text = ""
        self.compare_path.data = _empty_path()
        if with_run:
            self.run_path.data = _empty_path()
        setting = Setting(**{k: str(w.value) for k, w in self.inputs.items()})
        try:
            exp = compute.experiment_of(setting, self.data.experiment, self.group.combo)  # validates the page's input
        except ValueError:  # a refused value: the previous comparison must not stay up as if it were this one
            self._runs.pop("compare", None)
            if self.start is not None:
                self.info.text = self._report()
            raise
        if self.start is None:
            return
        self._job += 1
        job, start, group, run_exp = self._job, self.start.copy(), self.group, self.data.experiment
        jobs = {"compare": (setting, lambda: compute.trajectory(exp, exp.parameter_sets()[0], start))}
        if with_run and self.data.trace:
            row = self.row
            jobs = {"run": (RecordedSetting(), lambda: observed(row))} | jobs
        elif with_run:
            jobs = {"run": (group.setting, lambda: compute.trajectory(run_exp, group.combo, start))} | jobs

        def work() -> dict[str, tuple[Setting, Any]]:
            return {name: (s, _attempt(fn)) for name, (s, fn) in jobs.items()}

        if self.doc.session_context is None:  # a document outside a server (tests, scripts): at once
            self._apply(job, work())
            return
        self.info.text = "computing the paths ..."
        future = _worker().submit(work)
        apply = self._guard(lambda: self._apply(job, future.result()))
        future.add_done_callback(lambda _: self.doc.add_next_tick_callback(apply))

    def _apply(self, job: int, results: dict[str, tuple[Setting, Any]]) -> None:
        if job != self._job:  # overtaken by a newer click or change
            return
        errors = []
        for name, (setting, tr) in results.items():
            src = self.run_path if name == "run" else self.compare_path
            if isinstance(tr, Exception):
                errors.append(f"{name}: {tr}")
                src.data = _empty_path()
                self._runs.pop(name, None)
                continue
            src.data = {"p1": tr.p1, "p2": tr.p2, "t": tr.t}
            self._runs[name] = (setting, tr)
        self.error.text = html.escape("\n".join(errors))
        self.info.text = self._report()

    def _report(self) -> str:
        """The paths' records as a small table (and the run's own row, where the click snapped to one)."""
        head = "<tr><th></th><th>setting</th><th>status</th><th>t_stop</th><th>nfev / steps</th><th>ms</th></tr>"
        body = []
        for name, (s, tr) in self._runs.items():
            msg = f"<br><small>{html.escape(tr.message)}</small>" if tr.message else ""
            body.append(
                f"<tr><td>{name}</td><td>{html.escape(s.label())}</td><td>{tr.status}{msg}</td>"
                f"<td>{tr.t_stop:.6g}</td><td>{tr.evaluations}</td><td>{tr.ms:.0f}</td></tr>"
            )
        if self.row is not None:
            r = self.row
            body.append(
                f"<tr><td>flows.csv</td><td>the run's row</td><td>{r['status']}</td>"
                f"<td>{float(r['t_stop']):.6g}</td><td>{r.get('nfev', '')}</td><td></td></tr>"
            )
        p = self.start
        whole = _row_table(self.row) if self.row is not None else ""
        return (
            f"start (p1, p2) = ({p[0]:.6g}, {p[1]:.6g})<table style='font-size:90%'>{head}{''.join(body)}</table>"
            f"{whole}"
        )


_WORKER: list[ThreadPoolExecutor] = []


def _worker() -> ThreadPoolExecutor:
    """One thread per server computes the paths, so that the event loop answers while it works."""
    if not _WORKER:
        _WORKER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowsim-explore"))
    return _WORKER[0]


def _attempt(fn: Callable[[], compute.Trajectory]) -> compute.Trajectory | Exception:
    """A path, or the reason it cannot be computed (shown on the page)."""
    try:
        return fn()
    except UserError as exc:  # a start the model cannot take, a parameter a loss refuses
        return exc
    except Exception as exc:  # noqa: BLE001 - a page must outlive a bug; said on the page
        return RuntimeError(f"internal error (a bug in flowsim): {type(exc).__name__}: {exc}")


def document_factory(data: RunData) -> Callable:
    """The function a Bokeh Application calls for each new page."""

    def make(doc) -> None:
        Explorer(data, doc)

    return make


def warm_up(data: RunData) -> None:
    """One path and one field, computed once before serving: imports and first-call costs are paid here."""
    g = data.groups[0]
    first = g.rows.iloc[0]
    if not data.trace:
        compute.field(data.experiment, g.combo, ARROWS)
    try:
        compute.trajectory(data.experiment, g.combo, [first["p1_0"], first["p2_0"]])
    except UserError:  # a start the model cannot take: nothing to warm
        pass
