"""Verdict machinery, generic: claims as objects, rules as pure functions, a markdown report.

A :class:`Claim` carries the paper's words, where they are, the models and losses it speaks
of, what is measured (a function of one group of flows) and the *rule* that turns the
measurement into a verdict, fixed in code before any data is read.  The outcomes are
:data:`VERDICTS`: ``supported``, ``partly supported``, ``not supported`` and ``not
applicable`` (no evidence).  :func:`claims_markdown` renders any table of verdicts (saying
first how many rows failed, :func:`failed_rows`); :func:`verdict_matrix` lays several
settings' tables side by side (claims x settings, each cell the verdict and its robustness)
and :func:`conclusions` writes the paragraph that table supports.  A study
(:mod:`flowsim.analysis.studies`) supplies the claims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SUBSETS: tuple[str, ...] = ("all", "feasible")
SUPPORTED, PARTLY, NOT, NA = "supported", "partly supported", "not supported", "not applicable"
#: The possible verdicts, best first; ``not applicable`` is "no evidence": an empty region or
#: subset, a model or loss the claim does not speak of, or too many failed rows.
VERDICTS: tuple[str, ...] = (SUPPORTED, PARTLY, NOT, NA)
#: Above this share of failed rows in a group, a claim that reads the flows is not applicable.
MAX_FAILED_SHARE = 0.01
#: Marks, in claims.md, a verdict computed with failed rows left out (claims.csv: ``failed_left_out`` > 0).
FAILED_MARK = "†"
#: Marks a verdict whose 95% interval over seeds straddles its threshold (claims.csv: ``uncertain``;
#: the rule: :mod:`flowsim.analysis.intervals`); one letter of the table by combination: "?".
UNCERTAIN = "uncertain"


Metrics = Mapping[str, float]


def at_least(value: float, bound: float) -> bool:
    """``value >= bound``, False for a NaN value (a measure that could not be taken meets no bound)."""
    return not math.isnan(value) and value >= bound


def at_most(value: float, bound: float) -> bool:
    """``value <= bound``, False for a NaN value."""
    return not math.isnan(value) and value <= bound


class NotApplicable(Exception):
    """Raised by a measurement that finds no evidence; its message says why."""


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A claim of a paper: what it says, where, what it reads, how it is measured and judged.

    Parameters
    ----------
    id, title, paper, where, metric : str
        Its id (C1, C5a, ...), a short statement, the paper's words, where they stand, and
        what is measured.
    rule : callable
        ``rule(metrics, thresholds) -> (verdict, threshold_text)``, fixed before any data is read.
    measure : callable
        ``measure(group, thresholds) -> (value, metrics, details)`` on one group of flows
        (:class:`flowsim.analysis.claims.group.Group`), or raises :class:`NotApplicable`.
    models : tuple of str
        The models (parameterisation kinds) the claim speaks of, declared: elsewhere its
        verdict is ``not applicable``.  A model not registered yet may be named.
    losses : tuple of str, optional
        The losses it speaks of; None: any loss (a claim about the field, whatever loss makes it).
    columns : tuple of str
        The flows.csv columns the measurement reads; a table without one of them gets
        ``not applicable`` (naming the column).
    thresholds : tuple of str
        The thresholds (fields of the study's thresholds dataclass) the rule and the
        measurement read; the others cannot move its verdict.
    reads : tuple of str
        Those of ``thresholds`` the *measurement* (not only the rule) reads, and
    regional : bool
        whether it reads the region labels, so that the sensitivity family re-measures only
        what can change.
    uses_flows : bool
        Whether it reads the flows' outcomes (then failed rows count against it).
    across : tuple of str, or dict of model -> tuple of str
        The parameter columns a claim across combinations compares (its group spans their values);
        per model where the axis differs between models (C9: cos_wl for features, edit_distance
        for a network), declared, never inferred.
    reads_verdicts : bool
        Whether it reads the other claims' verdicts in its group (then it is measured again
        under each alternative of the sensitivity family).
    """

    id: str
    title: str
    paper: str
    where: str
    metric: str
    rule: Callable
    measure: Callable
    models: tuple[str, ...]
    losses: tuple[str, ...] | None = None
    columns: tuple[str, ...] = ()
    thresholds: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    regional: bool = False
    uses_flows: bool = True
    across: tuple[str, ...] | Mapping[str, tuple[str, ...]] = ()
    reads_verdicts: bool = False

    def __post_init__(self) -> None:
        axes = tuple(self.across.values()) if isinstance(self.across, Mapping) else (self.across,)
        named = [getattr(self, n) for n in ("models", "columns", "thresholds", "reads")]
        for name, value in zip(
            ("models", "columns", "thresholds", "reads", *["across"] * len(axes)), (*named, *axes), strict=True
        ):
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"claim {self.id}: {name} must be a tuple of names; got {value!r}")
        if isinstance(self.across, Mapping):
            stray = sorted(set(self.across) - set(self.models))
            if stray or not self.across:
                raise ValueError(
                    f"claim {self.id}: across must map some of its models {self.models}; got {dict(self.across)!r}"
                )
        if not self.models:
            raise ValueError(f"claim {self.id}: models must name the models it speaks of (declared, not inferred)")
        if self.losses is not None and (not isinstance(self.losses, tuple) or not self.losses):
            raise ValueError(f"claim {self.id}: losses must be None (any loss) or a non-empty tuple; got {self.losses}")
        extra = sorted(set(self.reads) - set(self.thresholds))
        if extra:
            raise ValueError(f"claim {self.id}: reads names {extra}, which thresholds does not declare")
        if not callable(self.rule) or not callable(self.measure):
            raise ValueError(f"claim {self.id}: rule and measure must be callables")

    def axis(self, model: str) -> tuple[str, ...]:
        """The columns the claim compares across for ``model`` (() if it declares none for it)."""
        return tuple(self.across.get(model, ())) if isinstance(self.across, Mapping) else self.across

    def not_applicable(self, model: str, loss: str) -> str | None:
        """Why the claim does not apply to ``model`` and ``loss``, or None if it does."""
        if model not in self.models:
            return f"the claim speaks of the model(s) {', '.join(self.models)}, not {model}"
        if self.losses is not None and loss not in self.losses:
            return f"the claim speaks of the loss(es) {', '.join(self.losses)}, not {loss}"
        return None


def fmt(v: float) -> str:
    """A measured value as claims.md and the claims' details show it: 3 significant digits, "n/a" if not finite."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _cell(v: object) -> str:
    """A value as a markdown table cell."""
    if isinstance(v, float | np.floating):
        return fmt(float(v))
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def failed_rows(claims: pd.DataFrame) -> tuple[int, int]:
    """(failed rows, rows) over the flows behind a table of :func:`evaluate_claims`.

    Read from its ``n_failed`` and ``n_rows`` columns (subset "all", one row per group of
    the first claim), so it works on claims.csv read back as well; (0, 0) without them.

    ``flowsim analyze`` can print it::

        n_failed, n_rows = failed_rows(claims)
        if n_failed:
            print(f"{n_failed} of {n_rows} flows failed ...")
    """
    if "n_failed" not in claims or "n_rows" not in claims or not len(claims):
        return 0, 0
    first = claims[(claims["claim"] == claims["claim"].iloc[0]) & (claims["subset"] == "all")]
    return int(first["n_failed"].fillna(0).sum()), int(first["n_rows"].fillna(0).sum())


def failed_note(claims: pd.DataFrame) -> str:
    """A sentence on failed rows ('' when none failed)."""
    n_failed, n_rows = failed_rows(claims)
    if not n_failed:
        return ""
    return (
        f"**{n_failed} of {n_rows} flows failed** ({100 * n_failed / n_rows:.3g}%). In a group with more than "
        f"{100 * MAX_FAILED_SHARE:g}% failed rows every claim that reads the flows is *not applicable*; below "
        f"that, failed rows are left out of the measurements, and each verdict computed so is marked "
        f"{FAILED_MARK} (claims.csv: column failed_left_out)."
    )


def _left_out(claims: pd.DataFrame) -> np.ndarray:
    """Which rows' verdicts were computed with failed rows left out (False without the column)."""
    if "failed_left_out" not in claims:
        return np.zeros(len(claims), bool)
    return claims["failed_left_out"].fillna(0).to_numpy(float) > 0


def _uncertain(claims: pd.DataFrame) -> np.ndarray:
    """Which rows' verdicts are marked uncertain (False without the column, as in a table made before it)."""
    if "uncertain" not in claims:
        return np.zeros(len(claims), bool)
    return claims["uncertain"].astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def _with_interval(r: pd.Series) -> object:
    """A row's value, with its interval over seeds "[low, high]" where it has one."""
    lo, hi = r.get("low", np.nan), r.get("high", np.nan)
    if pd.notna(lo) and pd.notna(hi):
        return f"{fmt(float(r['value']))} [{fmt(float(lo))}, {fmt(float(hi))}]"
    return r["value"]


def seeds_note(claims: pd.DataFrame) -> str:
    """A sentence on the seeds pooled in each group ('' when no group pools several)."""
    n = claims["n_seeds"].fillna(1).to_numpy(float) if "n_seeds" in claims else np.ones(1)
    if not len(n) or n.max() < 2:
        return ""
    k = int(_uncertain(claims).sum())
    return (
        f"**Seeds pooled**: each group holds the rows of {int(n.min())}–{int(n.max())} seed combinations "
        "(init_seed x data_seed); a value's [low, high] is its 95% bootstrap interval over the seeds, and a "
        f"verdict whose interval straddles a threshold of its rule is marked ({UNCERTAIN}) — {k} here "
        "(claims.csv: columns low, high, intervals, uncertain; the rule: `flowsim.analysis.intervals`)."
    )


#: The claims.csv columns claims.md reads (:func:`claims_markdown`), present even where every row's is empty.
MARKDOWN_COLUMNS: tuple[str, ...] = (
    "claim",
    "reference",
    "subset",
    "title",
    "paper",
    "where",
    "metric",
    "value",
    "details",
    "threshold",
    "verdict",
)


def claims_markdown(claims: pd.DataFrame, title: str = "DPO gradient flow: the paper's claims, tested") -> str:
    """A markdown report of :func:`evaluate_claims`' table.

    A note on failed rows when any failed, a summary (claims by subset, verdicts counted
    over the parameter combinations; :data:`FAILED_MARK` and a count where verdicts were
    computed with failed rows left out), then a section per claim: the paper's statement,
    where it is, the metric, the rule, and a table of value, verdict, robustness (under the
    fixed sensitivity family, :mod:`flowsim.analysis.sensitivity`) and details per
    combination and subset.
    """
    need = list(MARKDOWN_COLUMNS)
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
    robust = "robustness" in claims
    out = [f"# {title}", ""]
    for note in (failed_note(claims), seeds_note(claims)):
        if note:
            out += [note, ""]
    per_claim = claims[claims["claim"] == ids[0]]
    n_combos = len(per_claim.groupby(params, dropna=False)) if params else 1
    out += [
        f"{n_combos} parameter combination(s); {ref_text}. "
        "Subsets: all initial conditions, and the feasible ones (p1 + p2 <= 1). Each claim, its measurement and "
        "its rule: one module in `flowsim/analysis/claims/`; the study: `flowsim.analysis.studies.dpo_field`; "
        "sensitivity family: `flowsim.analysis.sensitivity` (region cuts "
        "0.2, 0.25, 1/3; each threshold halved and doubled).",
        "",
    ]
    summary = []
    for cid in ids:
        c = claims[claims["claim"] == cid]
        row: list[object] = [cid, c["title"].iloc[0]]
        for s in subsets:
            cs = c[c["subset"] == s]
            counts = cs["verdict"].value_counts()
            v = [f"{k}" if counts[k] == counts.sum() else f"{k} ({counts[k]})" for k in VERDICTS if k in counts]
            if robust:
                n_frag = int(cs["robustness"].astype(str).str.startswith("fragile").sum())
                v.append("robust" if not n_frag else f"fragile ({n_frag})")
            n_unsure = int(_uncertain(cs).sum())
            if n_unsure:
                v.append(f"{UNCERTAIN} ({n_unsure})")
            n_marked = int(_left_out(cs).sum())
            if n_marked:
                v.append(f"{FAILED_MARK} {n_marked} with failed rows left out")
            row.append(", ".join(v))
        summary.append(row)
    out += [*_table(["claim", "statement", *subsets], summary), ""]
    out += _by_combination(claims, params, ids)
    for cid in ids:
        c = claims[claims["claim"] == cid]
        first = c.iloc[0]
        out += [f"## {cid}. {first['title']}", "", f"> {first['paper']}", ""]
        out += [f"*Where:* {first['where']}. *Metric:* {first['metric']}. *Rule:* {first['threshold']}.", ""]
        extra = ["robustness"] if robust else []
        unsure, left = np.where(_uncertain(c), f" ({UNCERTAIN})", ""), np.where(_left_out(c), f" {FAILED_MARK}", "")
        marks = np.char.add(unsure, left)
        rows = [
            [
                *(r[p] for p in params),
                r["subset"],
                _with_interval(r),
                f"**{r['verdict']}**{m}",
                *(r[e] for e in extra),
                r["details"],
            ]
            for (_, r), m in zip(c.iterrows(), marks, strict=True)
        ]
        out += [*_table([*params, "subset", "value", "verdict", *extra, "details"], rows), ""]
    return "\n".join(out)


#: One letter per verdict, for the table by combination.
_LETTER = {SUPPORTED: "S", PARTLY: "P", NOT: "N", NA: "–"}


def _by_combination(claims: pd.DataFrame, params: list[str], ids: list[str]) -> list[str]:
    """Each claim's verdict per parameter combination (rows; all starts), named by what varies.

    The summary above pools the combinations; this says which combination (which loss, which
    beta, ...) each verdict comes from.  Nothing when there is one combination.
    """
    every = claims[claims["subset"] == "all"]
    named = [p for p in params if every[p].nunique() > 1]  # a column set for some losses only names none
    if "loss" in named:  # a loss's own field (one value per loss) adds nothing to the loss's name
        named = [p for p in named if p == "loss" or every.groupby("loss")[p].nunique().max() > 1]
    if not named:
        return []
    cols = {cid: every[every["claim"] == cid] for cid in ids}
    rows = []
    for key in cols[ids[0]][named].drop_duplicates().itertuples(index=False, name=None):  # in order of appearance
        row: list[object] = list(key)
        for cid in ids:
            mine = cols[cid]
            for p, v in zip(named, key, strict=True):
                mine = mine[(mine[p] == v) | (mine[p].isna() & pd.isna(v))]
            row.append(_letters(mine))
        rows.append(row)
    return [
        "Verdicts per combination (all starts): S supported, P partly, N not supported, – not applicable "
        "(the details below say why: a claim about another model, or an outcome impossible by construction); "
        "* fragile under the sensitivity family; ? uncertain (its 95% interval over seeds straddles a "
        "threshold); several letters: several rows (e.g. reference modes).",
        "",
        *_table([*named, *ids], rows),
        "",
    ]


def _letters(rows: pd.DataFrame) -> str:
    fragile = rows["robustness"].astype(str).str.startswith("fragile") if "robustness" in rows else [False] * len(rows)
    marks = ["*" * bool(f) + "?" * bool(u) for f, u in zip(fragile, _uncertain(rows), strict=True)]
    return " ".join(_LETTER.get(v, "?") + m for v, m in zip(rows["verdict"], marks, strict=True)) or "–"


# -- across settings ---------------------------------------------------------------------------------

#: A cell of :func:`verdict_matrix` is "<verdict>, robust" or "<verdict>, fragile"; several
#: combinations with different verdicts read "<verdict> (k/n); <verdict> (m/n), ...".
ROBUST_MARK, FRAGILE_MARK = "robust", "fragile"


def cell_of(rows: pd.DataFrame) -> str:
    """One cell of the verdict matrix: the verdicts of ``rows`` counted ("partly supported (2/3); ..."),
    each with how many of them are uncertain ("supported (uncertain)": all of them; "supported (2/3, 1
    uncertain)", "partly supported (1/3, 1/1 uncertain)"), then "robust" or "fragile" where the claim applies."""
    counts = rows["verdict"].value_counts()
    n = int(counts.sum())
    if not n:
        return NA
    unsure = pd.Series(_uncertain(rows), index=rows.index).groupby(rows["verdict"]).sum()
    parts = []
    for k in (k for k in VERDICTS if k in counts):
        c, u = int(counts[k]), int(unsure.get(k, 0))
        share = [] if c == n else [f"{c}/{n}"]
        if u:
            share.append(UNCERTAIN if u == c else f"{u}/{c} {UNCERTAIN}")
        parts.append(f"{k} ({', '.join(share)})" if share else k)
    text = "; ".join(parts)
    if "robustness" in rows and set(rows["verdict"]) != {NA}:
        fragile = rows["robustness"].astype(str).str.startswith("fragile").any()
        text += f", {FRAGILE_MARK if fragile else ROBUST_MARK}"
    return text


def verdict_matrix(
    tables: Mapping[str, pd.DataFrame],
    subset: str = "all",
    split: Mapping[str, str] | None = None,
    select: Mapping[str, Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """Claims (rows) x settings (columns): each cell the verdict with its robustness mark.

    Parameters
    ----------
    tables : mapping of setting name -> DataFrame
        Outputs of :func:`evaluate_claims` (or claims.csv read back), one per setting, in
        column order (e.g. ``{"ratio reference-free": paper, "ratio standard": standard, ...}``).
    subset : str, default "all"
        Which subset of starts the cells read.
    split : mapping of setting name -> column, optional
        Settings to split into one column per value of a column, e.g. ``{"losses": "loss"}``
        gives the columns "losses: dpo", "losses: ipo", ...
    select : mapping of setting name -> {column: value}, optional
        Keep only a setting's rows with these parameter values, e.g.
        ``{"features cos 0.9": {"cos_wl": 0.9, "norm_ratio": 1.0}}``; rows where the column is
        NaN (a claim across that parameter, such as C9 across cos_wl) are kept.

    Returns
    -------
    DataFrame
        Index: claim ids (in the order first met); a first column ``statement`` (the claim's
        title), then one column per setting.  A cell is the verdict and ``robust`` or
        ``fragile`` (fragile if any row behind it is); where a setting holds several
        combinations with different verdicts, each verdict with its count.  The models
        behind each setting are in ``matrix.attrs["models"]`` (setting -> sorted list),
        which :func:`conclusions` reads.
    """
    split = dict(split or {})
    columns: dict[str, pd.DataFrame] = {}
    for name, t in tables.items():
        if not isinstance(t, pd.DataFrame) or "verdict" not in t or "claim" not in t:
            raise ValueError(f"tables[{name!r}] must be a DataFrame from evaluate_claims")
        t = t[t["subset"] == subset] if "subset" in t else t
        for k, v in dict((select or {}).get(name, {})).items():
            if k not in t:
                raise ValueError(f"select[{name!r}] names the column {k!r}, which tables[{name!r}] lacks")
            t = t[(t[k] == v) | t[k].isna()]
        col = split.get(name)
        if col is not None and col in t and t[col].nunique() > 1:
            for v in pd.unique(t[col]):
                columns[f"{name}: {v}"] = t[t[col] == v]
        else:
            columns[name] = t
    ids: list[str] = []
    titles: dict[str, str] = {}
    for t in columns.values():
        for cid, title in zip(t["claim"], t["title"] if "title" in t else t["claim"], strict=True):
            if cid not in titles:
                ids.append(cid)
                titles[cid] = title
    data = {"statement": [titles[c] for c in ids]}
    for name, t in columns.items():
        data[name] = [cell_of(t[t["claim"] == cid]) for cid in ids]
    out = pd.DataFrame(data, index=pd.Index(ids, name="claim"))
    out.attrs["models"] = {
        name: sorted(map(str, pd.unique(t["model"].dropna()))) if "model" in t else ["ratio"]
        for name, t in columns.items()
    }
    return out


def verdict_of(cell: str) -> str | None:
    """The verdict of a cell where the claim applies: the one verdict of its applicable
    combinations (``not applicable`` if none applies), None when they disagree."""
    head = cell.rsplit(", ", 1)[0] if cell.endswith((ROBUST_MARK, FRAGILE_MARK)) else cell
    found = {part.split(" (")[0] for part in head.split("; ")}
    if not found <= set(VERDICTS):
        return None
    found -= {NA}
    return NA if not found else found.pop() if len(found) == 1 else None


#: The sensitivity family of the paper's claims, as the conclusions name it.
FAMILY = "region cuts 0.2, 0.25, 1/3; each threshold halved and doubled"


def conclusions(matrix: pd.DataFrame, ratio_settings: list[str] | None = None, family: str = FAMILY) -> str:
    """Markdown, generated from a :func:`verdict_matrix`, on where each conclusion holds.

    A claim *holds* in a setting whose cell is ``supported`` (every combination where it
    applies); settings where it is ``not applicable`` are left out of its count.  A line
    names the settings (each in backticks, separated by semicolons: the names hold commas),
    then one list item per group of claims: those that hold in every setting where they
    apply, those that hold in every ratio-plane setting but in no other (the ratio-plane
    settings are ``ratio_settings``, by default those whose only model is "ratio" in
    ``matrix.attrs["models"]``), those that hold nowhere, those in between, and those that
    apply nowhere; claims in an item are separated by semicolons.  A last line counts the
    fragile verdicts and the uncertain ones (a 95% interval over seeds straddling a threshold).
    Nothing in it is typed by hand.
    """
    settings = [c for c in matrix.columns if c != "statement"]
    if ratio_settings is None:
        models = matrix.attrs.get("models", {})
        ratio_settings = [s for s in settings if models.get(s, []) == ["ratio"]]
    groups, n_fragile = _conclusion_groups(matrix, settings, set(ratio_settings))
    n_unsure = sum(UNCERTAIN in str(matrix.at[i, s]) for i in matrix.index for s in settings)
    unsure = (
        f" {n_unsure} hold a verdict marked {UNCERTAIN} (its 95% bootstrap interval over seeds straddles a "
        "threshold of the rule)."
        if n_unsure
        else ""
    )

    def listing(items: list[str]) -> str:
        return "; ".join(items) if items else "none"

    names = "; ".join(f"`{s}`" for s in settings)
    only_ratio = (  # a group only where some setting is the ratio plane's and some other is not
        [
            "- **Holds only on the ratio plane** (supported in every ratio-plane setting, in no other): "
            f"{listing(groups['only_ratio'])}."
        ]
        if 0 < len(ratio_settings) < len(settings)
        else []
    )
    return "\n".join(
        [
            f"Across {_count(len(settings), 'setting')}: {names}.",
            "",
            f"- **Holds in every setting where it applies**: {listing(groups['every'])}.",
            *only_ratio,
            f"- **Holds nowhere** (not supported wherever it applies): {listing(groups['nowhere'])}.",
            f"- **Between these**: {listing(groups['mixed'])}.",
            f"- **Not applicable in any setting**: {listing(groups['never'])}.",
            "",
            f"{n_fragile} of the {len(matrix) * len(settings)} cells are fragile under the sensitivity family "
            f"({family}).{unsure}",
        ]
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _conclusion_groups(matrix: pd.DataFrame, settings: list[str], ratio: set[str]) -> tuple[dict, int]:
    """The claims of a verdict matrix by where they hold, and the number of fragile cells."""
    groups: dict[str, list[str]] = {k: [] for k in ("every", "only_ratio", "nowhere", "mixed", "never")}
    n_fragile = 0
    for cid, row in matrix.iterrows():
        cells = {s: str(row[s]) for s in settings}
        n_fragile += sum(c.endswith(FRAGILE_MARK) for c in cells.values())
        applies = {s: c for s, c in cells.items() if verdict_of(c) != NA}
        if not applies:
            groups["never"].append(str(cid))
            continue
        holds = {s for s, c in applies.items() if verdict_of(c) == SUPPORTED}
        some = {s for s, c in applies.items() if verdict_of(c) != NOT}
        name = f"{cid} ({row['statement']})"
        if holds == set(applies):
            groups["every"].append(f"{name} in {_count(len(applies), 'setting')}")
        elif holds and holds == set(applies) & ratio and set(applies) - ratio:
            groups["only_ratio"].append(name)
        elif not some:
            groups["nowhere"].append(name)
        else:
            groups["mixed"].append(f"{cid} (holds in {len(holds)} of {len(applies)})")
    return groups, n_fragile
