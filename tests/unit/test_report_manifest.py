"""The report's manifest (issue #26): every file a section reads is checked before anything is built,
and a missing experiment is named, with what to run, instead of its section being dropped."""

from pathlib import Path

import pandas as pd
import pytest

from flowsim.app.report import IncompleteReport, build_report, warn_absent
from flowsim.app.report.manifest import SECTIONS, Section, missing_files
from flowsim.experiment.regions import REGIONS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def regions_csv(folder: Path, p1_final: float) -> None:
    """A regions.csv of feasible starts, the columns the models' comparison reads."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "subset": "feasible",
            "region": list(REGIONS),
            "count": 10,
            "n_left_simplex": 0,
            "p1_final_median": p1_final,
            "t_stop_median": 1.5,
            "share_displaced": 0.0,
        }
    ).to_csv(folder / "regions.csv", index=False)


def claims_csv(folder: Path) -> None:
    """A claims.csv with one claim at two betas, as the beta section reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "claim": "C1",
            "title": "Theorem 1",
            "subset": "all",
            "beta": [0.1, 0.5],
            "verdict": ["supported", "not supported"],
        }
    ).to_csv(folder / "claims.csv", index=False)


def test_an_empty_folder_marks_every_section_that_reads_results(tmp_path):
    report = build_report(tmp_path, [])
    reading = [s for s in SECTIONS if s.needs]
    assert f"**This report is incomplete:** {len(reading)} of its {len(SECTIONS)} sections" in report
    for section in reading:
        assert f"> **Missing:** *{section.title}* lacks" in report, section.title
    for name in {n for s in reading for n in s.needs}:
        assert f"the experiment `{name}` (" in report and f"experiments/{name}.toml" in report, name


def test_a_section_with_its_files_is_built_and_not_marked(tmp_path):
    claims_csv(tmp_path / "beta")
    report = build_report(tmp_path, ["beta"])
    assert "## How the verdicts change with β" in report and "C1 Theorem 1" in report
    assert "*How the verdicts change with β* lacks" not in report
    assert "*Verdicts in the paper's setting* lacks the experiment `paper`" in report


def test_a_model_without_results_is_named_not_dropped(tmp_path):
    # app/report/sections.py compared the models it found and dropped the others silently
    regions_csv(tmp_path / "standard", 0.3)
    regions_csv(tmp_path / "features", 0.4)
    report = build_report(tmp_path, ["standard", "features"])
    assert "## The same starts under three parameterisations" in report  # built from the two there are
    line = next(x for x in report.splitlines() if "*The same starts under three parameterisations*" in x)
    assert "the experiment `logits` (logits/regions.csv)" in line and "standard" not in line
    assert "regions.csv" in missing_files(tmp_path)["logits"]


def test_the_missing_line_says_what_to_run(tmp_path):
    for name in ("losses", "beta", "paper"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text("{}")
    report = build_report(tmp_path, [])
    assert "lacks losses/flows.csv: regenerate it with `flowsim reproduce`" in report  # run, flows.csv not kept
    assert f"lacks beta/claims.csv: run `flowsim analyze {tmp_path / 'beta'}`" in report
    assert f"paper/figures: run `flowsim plot {tmp_path / 'paper'}`" in report


def test_reproduce_warns_before_running_which_sections_will_be_missing():
    everything = sorted({n for s in SECTIONS for n in s.needs})
    with pytest.warns(IncompleteReport, match=r"beta \(How the verdicts change with β, Figures\)"):
        warn_absent([n for n in everything if n != "beta"])
    with pytest.warns(IncompleteReport) as record:
        warn_absent(everything)
        warn_absent([*everything[:1]])
    assert len(record) == 1  # the complete set warns nothing


def test_every_experiment_the_report_reads_is_shipped():
    shipped = {p.stem for p in EXPERIMENTS.glob("*.toml")}
    read = {n for s in SECTIONS for n in s.needs}
    assert read <= shipped, sorted(read - shipped)


def test_a_section_names_only_files_an_experiment_writes():
    with pytest.raises(ValueError, match=r"unknown files \['claims\.md'\]"):
        Section("x", {"paper": ("claims.md",)}, lambda root, names: [])
