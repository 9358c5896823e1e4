"""The report's network section: does DPO on a network lower p_l faster than it raises p_w, does the
SFT start decide the outcome, and how often is p_w displaced -- on the MLP and on a pretrained
transformer, each share with its 95% interval over seeds (claims.csv's ``low``, ``high`` and
``intervals``, :mod:`flowsim.analysis.intervals`), and what changed from the one to the other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.app.report.common import kept_rows, read_claims, span, tally, weighted_share

#: The network settings of the report's network section: (label, experiment, rows kept).
NETWORK_SETTINGS = (
    ("SFT aimed at a grid, 1 pair, GD", "network", {"n_pairs": 1, "dynamics": "gd"}),
    ("SFT aimed at a grid, 1 pair, Adam", "network", {"n_pairs": 1, "dynamics": "adam"}),
    ("SFT aimed at a grid, 8 pairs, GD", "network", {"n_pairs": 8, "dynamics": "gd"}),
    ("SFT aimed at a grid, 8 pairs, Adam", "network", {"n_pairs": 8, "dynamics": "adam"}),
    ("SFT on chosen, 1 pair, GD", "network_sft", {"n_pairs": 1, "dynamics": "gd"}),
    ("SFT on chosen, 1 pair, Adam", "network_sft", {"n_pairs": 1, "dynamics": "adam"}),
    ("SFT on chosen, 8 pairs, GD", "network_sft", {"n_pairs": 8, "dynamics": "gd"}),
    ("SFT on chosen, 8 pairs, Adam", "network_sft", {"n_pairs": 8, "dynamics": "adam"}),
    ("8 interacting pairs, GD", "network_pairs", {"dynamics": "gd"}),
    ("8 interacting pairs, Adam", "network_pairs", {"dynamics": "adam"}),
    ("transformer: SFT aimed at a grid, 1 pair, Adam", "network_transformer", {"n_pairs": 1}),
    ("transformer: SFT aimed at a grid, 8 pairs, Adam", "network_transformer", {"n_pairs": 8}),
    ("transformer: 8 pairs, similarity swept, Adam", "network_transformer_pairs", {}),
)
#: Each transformer setting and the MLP setting it is compared with (the same SFT, pairs and optimiser).
COUNTERPART = {
    "transformer: SFT aimed at a grid, 1 pair, Adam": "SFT aimed at a grid, 1 pair, Adam",
    "transformer: SFT aimed at a grid, 8 pairs, Adam": "SFT aimed at a grid, 8 pairs, Adam",
    "transformer: 8 pairs, similarity swept, Adam": "8 interacting pairs, Adam",
}
#: The three questions: (name, the claim that answers it, its metric read from claims.csv's intervals).
QUESTIONS = (
    ("p_l first", "C4", "share_first"),
    ("p_l faster at t = 0", "C4", "share_initial"),
    ("displaced", "LD", "share_displaced"),
    ("start decides", "C6", "p1_spread"),
)


def measured(claims: pd.DataFrame, claim: str, metric: str) -> tuple[float, float, float]:
    """(value, low, high) of a claim's metric in a setting's claims.csv rows (subset "all"), from its
    ``intervals`` column (NaN bounds without seeds); the median over several combinations, whose bounds
    are then the lowest low and the highest high (NaN if a combination has none)."""
    rows = claims[(claims["claim"] == claim) & (claims["subset"] == "all") & (claims["verdict"] != "not applicable")]
    found = []
    for text in rows["intervals"] if "intervals" in rows else []:
        got = json.loads(text).get(metric) if isinstance(text, str) and text else None
        if got is not None:
            found.append([np.nan if v is None else v for v in got])
    if not found:
        return float("nan"), float("nan"), float("nan")
    a = np.array(found, float)
    bounded = np.isfinite(a[:, 1:]).all()
    lo, hi = (float(a[:, 1].min()), float(a[:, 2].max())) if bounded else (float("nan"), float("nan"))
    return float(np.median(a[:, 0])), lo, hi


def with_interval(v: tuple[float, float, float]) -> str:
    """'0.42 [0.31, 0.55]' ('n/a' without a value; the value alone without bounds)."""
    value, lo, hi = v
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.2g}" + (f" [{lo:.2g}, {hi:.2g}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def _network_row(claims: pd.DataFrame, regions: pd.DataFrame) -> dict:
    """One network setting's verdicts and numbers, read from its claims.csv and regions.csv rows."""
    from flowsim.analysis.verdicts import cell_of

    c = claims[claims["subset"] == "all"]
    r = regions[regions["subset"] == "all"]
    med = r[r["count"] > 0].groupby("region", sort=False)["p1_final_median"].median()
    count = r.groupby("region")["count"].sum()
    return {
        "_regions": (int((count > 0).sum()), float(count.get("bottom-left", 0) / max(count.sum(), 1))),
        **{f"_{name}": measured(c, claim, metric) for name, claim, metric in QUESTIONS},
        "C4 p_l falls faster": cell_of(c[c["claim"] == "C4"]),
        "share t_l < t_w (C4 value, median)": c.loc[c["claim"] == "C4", "value"].median(),
        "share |dp_l/dt| > |dp_w/dt| at t = 0": weighted_share(r, "share_l_faster_0"),
        "LD displacement": cell_of(c[c["claim"] == "LD"]),
        "share displaced": weighted_share(r, "share_displaced"),
        "C6 start decides": cell_of(c[c["claim"] == "C6"]),
        "region medians of final p_w": med,
    }


def _network_rows(root: Path) -> dict[str, dict]:
    rows = {}
    for label, name, where in NETWORK_SETTINGS:
        claims, path = read_claims(root, name), root / name / "regions.csv"
        if claims is not None and path.exists():
            rows[label] = _network_row(kept_rows(claims, where), kept_rows(pd.read_csv(path), where))
    return rows


def network_section(root: Path) -> list[str]:
    """DPO on a small causal LM: does it lower p_l faster than it raises p_w, does the SFT start decide?

    Every verdict and number is read from the network experiments' claims.csv and regions.csv.
    """
    from flowsim.experiment.regions import REGIONS

    rows = _network_rows(root)
    if not rows:
        return []
    faster = pd.DataFrame(
        {k: {c: v for c, v in r.items() if not c.startswith(("C6", "region", "_"))} for k, r in rows.items()}
    ).T
    spread = pd.DataFrame(
        {k: {name: with_interval(r[f"_{name}"]) for name, _, _ in QUESTIONS} for k, r in rows.items()}
    ).T
    med = pd.DataFrame({k: r["region medians of final p_w"] for k, r in rows.items()}).T
    med = med[[g for g in REGIONS if g in med.columns]]
    med.insert(0, "C6 start decides", [r["C6 start decides"] for r in rows.values()])
    lines = [
        "## DPO on a small network: does it lower p_l faster than it raises p_w, and does the SFT start decide?",
        "",
        "A causal MLP LM (vocab 12, 3-token responses, one hidden layer of 16) and a pretrained 2-layer GPT-2 "
        "(width 16; [network_transformer](network_transformer/), [network_transformer_pairs]"
        "(network_transformer_pairs/): pretrained on a seeded Markov language, then SFT, then DPO) trained "
        "with DPO (β = 0.5, "
        "reference = the SFT checkpoint) until the mean loss is 0.1 nats, from SFT checkpoints: aimed at a grid of "
        "(p_w0, p_l0) ([network](network/)), fine-tuned on the chosen responses for 5–80 steps, clean or noisy "
        "([network_sft](network_sft/)), or 8 pairs with y_l 1 or 3 tokens from y_w, shared prompts, mini-batches "
        "([network_pairs](network_pairs/)). Per setting (the experiment's combinations pooled; a cell counts "
        "its combinations' verdicts): the claims' verdicts from `claims.csv`, the shares over every pair's start "
        "from `regions.csv`. dp/dt at t = 0 is the gradient flow's, also for Adam and mini-batches.",
        "",
        "**Faster down than up?** (C4: p_l reaches its target before p_w reaches its own, and falls faster at "
        "t = 0; LD: p_w falls below its start)",
        "",
        faster.to_markdown(floatfmt=".3g"),
        "",
        "**Does the SFT start decide?** (C6; then the medians over the setting's combinations of each region's "
        "median final p_w)",
        "",
        med.to_markdown(floatfmt=".3g"),
        "",
        "**With their spread over seeds** (each setting's 8 seeds pooled; the pooled value and its 95% bootstrap "
        "interval over the seeds, from `claims.csv`; several combinations: their median, and the lowest and "
        "highest bound): the share of starts where p_l reaches its target first, where p_l falls faster at "
        "t = 0, the share displaced (LD), and the spread of the regions' median final p_w (C6).",
        "",
        spread.to_markdown(),
        "",
    ]
    lines += _network_answer({k: r for k, r in rows.items() if k not in COUNTERPART})
    lines += transformer_answer(rows)
    for name in ("network", "network_sft", "network_pairs"):
        fig = root / name / "figures" / "trajectories.png"
        if fig.exists():
            lines += [f"![p_w and p_l over training ({name})]({name}/figures/trajectories.png)", ""]
    return lines


def _network_answer(rows: dict[str, dict]) -> list[str]:
    """The two answers in words, generated from the tables' cells (verdicts counted over settings) and numbers."""

    def col(c: str) -> list:
        return [r[c] for r in rows.values()]

    meds = [r["region medians of final p_w"] for r in rows.values()]
    with_bl = [m for m in meds if "bottom-left" in m.index and len(m.dropna()) > 1]
    lowest = sum(m.dropna().idxmin() == "bottom-left" for m in with_bl)
    spread = [m.max() - m.min() for m in meds if len(m.dropna()) > 1]
    return [
        "*The answer, generated from the tables above.* **Faster down than up:** C4 is "
        f"{tally(rows, 'C4 p_l falls faster')} (not applicable where every start already has p_l at its target at "
        "t = 0); where it applies, p_l reaches its target first in a "
        f"median share {span(col('share t_l < t_w (C4 value, median)'))} of the starts; over every setting's starts, "
        f"p_l falls faster than p_w rises at t = 0 at a share {span(col('share |dp_l/dt| > |dp_w/dt| at t = 0'))}. "
        f"Likelihood displacement (LD) is {tally(rows, 'LD displacement')}; the share of pairs displaced per "
        f"setting spans {span(col('share displaced'))}.",
        "",
        f"**The SFT start decides:** C6 is {tally(rows, 'C6 start decides')}. The spread of the region medians "
        f"of the final p_w per setting spans {span(spread)}, and bottom-left starts end lowest in {lowest} of the "
        f"{len(with_bl)} settings with starts there and elsewhere.",
        "",
    ]


def _compare(t: tuple[float, float, float], m: tuple[float, float, float]) -> str:
    """How the transformer's (value, low, high) stands against the MLP's, read from the intervals."""
    if not (np.isfinite(t[0]) and np.isfinite(m[0])):
        return f"{with_interval(t)} (the MLP's: {with_interval(m)})"
    if np.isfinite(t[1]) and np.isfinite(m[2]) and t[1] > m[2]:
        word = "higher than"
    elif np.isfinite(t[2]) and np.isfinite(m[1]) and t[2] < m[1]:
        word = "lower than"
    else:
        return f"{with_interval(t)}, not distinguishable from the MLP's {with_interval(m)} (the intervals overlap)"
    return f"{with_interval(t)}, {word} the MLP's {with_interval(m)} (the intervals do not overlap)"


def _verdict_change(t: str, m: str, claim: str) -> str:
    """'C4 supported on both' / 'C4 partly supported on the MLP, supported on the transformer'."""
    from flowsim.analysis.verdicts import verdict_of

    vt, vm = verdict_of(t) or "mixed", verdict_of(m) or "mixed"
    unsure = " (uncertain)" if "uncertain" in t else ""
    if vt == vm:
        return f"{claim} {vt}{unsure} as on the MLP"
    return f"{claim} {vt}{unsure} where the MLP's is {vm}"


def _where(t: dict, m: dict) -> str:
    """Where SFT left the starts, transformer against MLP: the regions holding any, the share bottom-left."""
    (nt, bt), (nm, bm) = t["_regions"], m["_regions"]
    return f" (starts in {nt} region{'s' * (nt != 1)}, {bt:.0%} bottom-left; the MLP's in {nm}, {bm:.0%})"


def transformer_answer(rows: dict[str, dict]) -> list[str]:
    """The three answers for the pretrained transformer, generated from the tables' cells and intervals,
    each against its MLP counterpart (:data:`COUNTERPART`)."""
    pairs = [(t, m) for t, m in COUNTERPART.items() if t in rows and m in rows]
    if not pairs:
        return []

    def each(claim_col: str, claim: str, name: str) -> str:
        return "; ".join(
            f"{t.split(': ', 1)[1]}: {_verdict_change(rows[t][claim_col], rows[m][claim_col], claim)}, "
            f"{_compare(rows[t]['_' + name], rows[m]['_' + name])}{_where(rows[t], rows[m]) if claim == 'C6' else ''}"
            for t, m in pairs
        )

    key = "_p_l faster at t = 0"
    initial = "; ".join(f"{t.split(': ', 1)[1]}: {_compare(rows[t][key], rows[m][key])}" for t, m in pairs)
    return [
        "*The transformer's answer, generated from the tables above, against the MLP's (the same SFT, pairs and "
        "optimiser).* **Does DPO on a pretrained transformer lower p_l faster than it raises p_w?** Share of starts "
        f"where p_l reaches its target first — {each('C4 p_l falls faster', 'C4', 'p_l first')}. At t = 0, p_l "
        f"falls faster at a share — {initial}.",
        "",
        "**Does the SFT start decide the outcome?** Spread of the regions' median final p_w — "
        f"{each('C6 start decides', 'C6', 'start decides')}.",
        "",
        f"**How often is p_w displaced?** {each('LD displacement', 'LD', 'displaced')}.",
        "",
    ]
