"""The report's network section: does DPO on a network lower p_l faster than it raises p_w, and does
the SFT start decide the outcome?"""

from __future__ import annotations

from pathlib import Path

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
)


def _network_row(claims: pd.DataFrame, regions: pd.DataFrame) -> dict:
    """One network setting's verdicts and numbers, read from its claims.csv and regions.csv rows."""
    from flowsim.analysis.verdicts import cell_of

    c = claims[claims["subset"] == "all"]
    r = regions[regions["subset"] == "all"]
    med = r[r["count"] > 0].groupby("region", sort=False)["p1_final_median"].median()
    return {
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
        {k: {c: v for c, v in r.items() if not c.startswith(("C6", "region"))} for k, r in rows.items()}
    ).T
    med = pd.DataFrame({k: r["region medians of final p_w"] for k, r in rows.items()}).T
    med = med[[g for g in REGIONS if g in med.columns]]
    med.insert(0, "C6 start decides", [r["C6 start decides"] for r in rows.values()])
    lines = [
        "## DPO on a small network: does it lower p_l faster than it raises p_w, and does the SFT start decide?",
        "",
        "A causal MLP LM (vocab 12, 3-token responses, one hidden layer of 16) trained with DPO (β = 0.5, "
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
    ]
    lines += _network_answer(rows)
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
