"""The report's first table: every claim judged in every setting, the summary under it, and the per-loss matrix."""

from __future__ import annotations

from pathlib import Path

from flowsim.app.report.common import read_claims

#: The settings of the report's first table: (column, experiment, rows kept, split by a column).
SETTINGS = (
    ("ratio, reference-free (paper)", "paper", {}, None),
    ("ratio, standard", "standard", {"beta": 0.1}, None),
    ("ratio, references swept", "reference", {}, None),
    ("logits, standard", "logits", {"beta": 0.1, "reference": "initial"}, None),
    ("features cos 0.9, standard", "features", {"cos_wl": 0.9, "norm_ratio": 1.25}, None),
    ("features, cos swept", "features", {"norm_ratio": 1.25}, None),
    ("logits + Adam", "optimisers", {"dynamics": "adam", "lr": 0.01}, None),
    ("features + Adam", "optimisers_features", {"dynamics": "adam", "lr": 0.01}, None),
    ("network, one pair", "network", {"n_pairs": 1, "dynamics": "gd"}, None),
    ("network, 8 pairs", "network", {"n_pairs": 8, "dynamics": "gd"}, None),
    ("network, 8 pairs + Adam", "network", {"n_pairs": 8, "dynamics": "adam"}, None),
    ("network, edit distance swept", "network_pairs", {"dynamics": "gd", "batch_size": 0, "n_prompts": 0}, None),
    ("transformer, one pair + Adam", "network_transformer", {"n_pairs": 1}, None),
    ("transformer, 8 pairs + Adam", "network_transformer", {"n_pairs": 8}, None),
    ("transformer, similarity swept + Adam", "network_transformer_pairs", {}, None),
    ("ratio, loss", "losses", {}, "loss"),
    ("logits, loss", "losses_logits", {}, "loss"),
)


def across_settings(root: Path) -> list[str]:
    """The opening tables: every claim in every model setting, then per loss, and the paragraph read from them."""
    from flowsim.analysis.verdicts import conclusions, verdict_matrix

    main, per_loss = _tables(root, by_loss=False), _tables(root, by_loss=True)
    out = []
    if main[0]:
        matrix = verdict_matrix(main[0], subset="all", select=main[1])
        out += [
            "## Which of the paper's conclusions survive",
            "",
            "Each claim of the paper (rows; C6b and C7–C12 are flowsim's additions, LD is Razin et al. 2024's "
            "likelihood displacement; see the claims files) measured "
            "in every setting (columns): the verdict on all starts, `robust` if it holds under every alternative "
            "region cut and threshold of the fixed sensitivity family (`flowsim/analysis/sensitivity.py`), else "
            "`fragile`. Generated from the `claims.csv` files beside this page; nothing in it is typed by hand.",
            "",
            matrix.to_markdown(),
            "",
            conclusions(matrix),
            "",
        ]
    if per_loss[0]:
        matrix = verdict_matrix(per_loss[0], subset="all", split=per_loss[2])
        table = matrix.drop(columns="statement").T.apply(lambda col: col.map(_short_cell))
        out += [
            "### The same claims per preference loss (rows), DPO as practised (reference = SFT model)",
            "",
            "S supported, P partly, N not supported, – not applicable; * fragile under the sensitivity family; "
            "? uncertain over seeds. "
            "Statements as in the table above; the losses' own tables further down.",
            "",
            table.to_markdown(),
            "",
        ]
    return out


def _tables(root: Path, by_loss: bool):
    """(claims tables, rows kept, splits) of the settings in SETTINGS with or without a per-loss split."""
    tables, select, split = {}, {}, {}
    for label, name, where, by in SETTINGS:
        claims = read_claims(root, name)
        if claims is None or bool(by) != by_loss:
            continue
        tables[label], select[label] = claims, where
        if by:
            split[label] = by
    return tables, select, split


_CELL = {"supported": "S", "partly supported": "P", "not supported": "N", "not applicable": "–"}


def _short_cell(cell: object) -> str:
    """'supported, robust' -> 'S'; 'not supported, fragile' -> 'N*'; 'partly supported (uncertain), robust' -> 'P?'."""
    text = str(cell)
    verdict = text.split(",")[0].split(" (")[0]
    return _CELL.get(verdict, "?") + ("*" if text.endswith("fragile") else "") + ("?" if "uncertain" in text else "")


def loss_by_model(root: Path, names: tuple[str, ...]) -> list[str]:
    """Loss (rows) x model (column groups): share displaced, share with t_l < t_w, median final p_w,
    from each experiment's loss_comparison.csv (``flowsim analyze``); "impossible" where the model
    declares displacement impossible by construction for the loss."""
    import pandas as pd

    files = [root / n / "loss_comparison.csv" for n in names]
    parts = [pd.read_csv(f) for f in files if f.exists()]
    if not parts:
        return []
    t = pd.concat(parts, ignore_index=True)
    regions = [c for c in t.columns if c.startswith("p_w_final_")]
    t["p_w final (median over regions)"] = t[regions].median(axis=1)
    impossible = t.get("displacement_impossible", pd.Series(False, index=t.index)).astype(bool)
    t["displaced"] = [
        ("0 (impossible by construction)" if i else f"{v:.2f}")
        for v, i in zip(t["share_displaced"], impossible, strict=True)
    ]
    t["t_l < t_w"] = t["share_l_before_w"].map(lambda v: f"{v:.2f}")
    t["p_w final"] = t["p_w final (median over regions)"].map(lambda v: f"{v:.2f}")
    wide = t.pivot(index="loss", columns="model", values=["displaced", "t_l < t_w", "p_w final"])
    models = list(dict.fromkeys(t["model"]))  # in the experiments' order
    wide = wide[[(what, m) for what in ("displaced", "t_l < t_w", "p_w final") for m in models]]
    wide.columns = [f"{what}, {model}" for what, model in wide.columns]
    links = ", ".join(
        f"[{n}/figures/loss_comparison.png]({n}/figures/loss_comparison.png)"
        for n in names
        if (root / n / "figures" / "loss_comparison.png").exists()
    )
    return [
        "## The losses compared, by model",
        "",
        "Per loss and model (the ratio plane of [losses](losses/), the softmax logits of "
        "[losses_logits](losses_logits/)), over the flows that did not fail: the share displaced (p_w fell "
        "below its start at some time), the share in which p_l reached its target before p_w reached its "
        "own, and the final p_w (the median of the regions' medians). A share of 0 marked impossible by "
        "construction is not a finding about the loss: the model cannot show it (claims.md says why)."
        + (f" By region, in figures: {links}." if links else ""),
        "",
        wide.fillna("—").to_markdown(),
        "",
    ]
