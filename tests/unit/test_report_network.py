"""The report's network section is generated from the tables: change a table, and its sentence changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flowsim.app.report.network import measured, network_section, with_interval

MLP, TF = "SFT aimed at a grid, 1 pair, Adam", "transformer: SFT aimed at a grid, 1 pair, Adam"


def _claims(n_pairs: int, ld: tuple[float, float, float], ld_verdict: str = "partly supported") -> pd.DataFrame:
    """claims.csv rows of one setting: C4, C6 and LD with their intervals over seeds."""
    rows = []
    for claim, verdict, metrics in (
        ("C4", "partly supported", {"share_first": [0.9, 0.8, 0.95], "share_initial": [0.5, 0.4, 0.6]}),
        ("C6", "supported", {"p1_spread": [0.6, 0.5, 0.7]}),
        ("LD", ld_verdict, {"share_displaced": list(ld)}),
    ):
        first = next(iter(metrics.values()))
        for subset in ("all", "feasible"):
            rows.append(
                {
                    "claim": claim,
                    "n_pairs": n_pairs,
                    "dynamics": "adam",
                    "subset": subset,
                    "value": first[0],
                    "low": first[1],
                    "high": first[2],
                    "verdict": verdict,
                    "uncertain": False,
                    "robustness": "robust",
                    "intervals": json.dumps(metrics),
                    "model": "network",
                }
            )
    return pd.DataFrame(rows)


def _regions(n_pairs: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_pairs": n_pairs,
            "dynamics": "adam",
            "subset": "all",
            "region": ["bottom-left", "top-left"],
            "count": [10, 10],
            "p1_final_median": [0.1, 0.5],
            "share_l_faster_0": [0.5, 0.5],
            "share_displaced": [0.3, 0.3],
        }
    )


def _write(root: Path, name: str, claims: pd.DataFrame, regions: pd.DataFrame) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    claims.to_csv(root / name / "claims.csv", index=False)
    regions.to_csv(root / name / "regions.csv", index=False)


def _section(tmp_path: Path, tf_ld: tuple[float, float, float], tf_verdict: str = "partly supported") -> str:
    _write(tmp_path, "network", _claims(1, (0.2, 0.1, 0.3)), _regions(1))
    _write(tmp_path, "network_transformer", _claims(1, tf_ld, tf_verdict), _regions(1))
    return "\n".join(network_section(tmp_path))


def _displaced(text: str) -> str:
    return text.split("**How often is p_w displaced?**", 1)[1].split("\n", 1)[0]


def test_the_displacement_sentence_follows_the_intervals(tmp_path):
    higher = _displaced(_section(tmp_path, (0.8, 0.7, 0.9)))
    assert "0.8 [0.7, 0.9], higher than the MLP's 0.2 [0.1, 0.3] (the intervals do not overlap)" in higher
    lower = _displaced(_section(tmp_path, (0.05, 0.0, 0.08)))
    assert "lower than the MLP's 0.2 [0.1, 0.3]" in lower
    same = _displaced(_section(tmp_path, (0.25, 0.15, 0.4)))
    assert "not distinguishable from the MLP's 0.2 [0.1, 0.3] (the intervals overlap)" in same


def test_the_start_answer_says_where_sft_left_the_starts(tmp_path):
    text = _section(tmp_path, (0.8, 0.7, 0.9)).split("**Does the SFT start decide the outcome?**", 1)[1]
    assert "C6 supported as on the MLP, 0.6 [0.5, 0.7]" in text
    assert "(starts in 2 regions, 50% bottom-left; the MLP's in 2, 50%)" in text


def test_the_verdict_change_is_named(tmp_path):
    assert "LD partly supported as on the MLP" in _displaced(_section(tmp_path, (0.25, 0.15, 0.4)))
    text = _displaced(_section(tmp_path, (0.8, 0.7, 0.9), tf_verdict="supported"))
    assert "LD supported where the MLP's is partly supported" in text


def test_the_spread_table_shows_every_setting_with_its_interval(tmp_path):
    text = _section(tmp_path, (0.8, 0.7, 0.9))
    table = text.split("**With their spread over seeds**", 1)[1]
    assert f"| {MLP}" in table and f"| {TF}" in table and "0.8 [0.7, 0.9]" in table and "0.6 [0.5, 0.7]" in table


def test_measured_reads_the_intervals_column():
    c = _claims(1, (0.4, 0.3, 0.5))
    assert measured(c, "LD", "share_displaced") == (0.4, 0.3, 0.5)
    assert measured(c, "C4", "share_initial") == (0.5, 0.4, 0.6)
    two = pd.concat([c, _claims(8, (0.6, 0.55, 0.7))], ignore_index=True)  # median, widest bounds
    assert measured(two, "LD", "share_displaced") == (0.5, 0.3, 0.7)
    assert np.isnan(measured(c.assign(intervals=""), "LD", "share_displaced")[0])
    assert with_interval((0.4, np.nan, np.nan)) == "0.4" and with_interval((np.nan,) * 3) == "n/a"
