"""The report's manifest: its sections in order, and the files each reads from which experiment.

:func:`~flowsim.app.report.build_report` checks the manifest against the results folder before it
builds anything.  A section whose files are missing is built from what there is and marked, at its
place and at the top of the report, with a line naming each missing experiment and what to run; it
is never dropped silently.  Why a marked report rather than an error: ``flowsim reproduce`` is also
run on a subset of the experiments (a new study, a quick check, the tests), and its report of those
is useful; a marked line cannot be mistaken for the complete findings, and ``flowsim reproduce``
says which experiments the report will lack before it runs any of them (:func:`absent_experiments`).

A new section is one builder (``builder(root, names) -> markdown lines``) and one entry here,
naming the experiments and files it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from flowsim.app.report.displacement import EXPERIMENTS as DISPLACEMENT_RUNS
from flowsim.app.report.displacement import displacement_section
from flowsim.app.report.matrix import SETTINGS, across_settings, loss_by_model
from flowsim.app.report.network import NETWORK_SETTINGS, network_section
from flowsim.app.report.overview import (
    SHOWN_FIGURES,
    beta_verdicts,
    figure_one,
    figures,
    paper_verdicts,
    provenance,
    reference_verdicts,
)
from flowsim.app.report.sections import MODELS, dynamics_section, losses_section, models_side_by_side
from flowsim.app.report.sections import reference_side_by_side as side_by_side

#: The files of a finished experiment folder, by the command that writes them.
WRITTEN_BY = {
    "flows.csv": "run",
    "meta.json": "run",
    "claims.csv": "analyze",
    "regions.csv": "analyze",
    "loss_comparison.csv": "analyze",
    "figures": "plot",
}
#: The experiments of several losses whose comparisons make one table (loss x model).
LOSS_RUNS = ("losses", "losses_logits")


@dataclass(frozen=True)
class Section:
    """One part of the report: its title (for the missing-line), what it reads, and its builder.

    Parameters
    ----------
    title : str
        The section as the report names it.
    needs : mapping of str to tuple of str
        Experiment name -> the files of its folder the section reads (keys of :data:`WRITTEN_BY`).
    build : callable
        ``build(root, names)`` -> the section's markdown lines (built from whatever is there).
    """

    title: str
    needs: Mapping[str, tuple[str, ...]]
    build: Callable[[Path, list[str]], list[str]]

    def __post_init__(self) -> None:
        unknown = sorted({f for files in self.needs.values() for f in files} - set(WRITTEN_BY))
        if unknown:
            raise ValueError(f"report section {self.title!r}: unknown files {unknown}; known: {sorted(WRITTEN_BY)}")


def _each(names, files: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The same files of each experiment named (in order, once each)."""
    return dict.fromkeys(names, files)


def _losses(name: str, where: str) -> Section:
    return Section(
        f"The preference losses on {where}",
        {name: ("flows.csv", "meta.json")},
        lambda root, names: losses_section(root, name, where),
    )


def _dynamics(name: str, where: str) -> Section:
    return Section(
        f"Flow, gradient descent and Adam on {where}",
        {name: ("flows.csv", "meta.json")},
        lambda root, names: dynamics_section(root, name, where),
    )


#: The report's sections, in order.
SECTIONS: tuple[Section, ...] = (
    Section(
        "Which of the paper's conclusions survive (and per loss)",
        _each((name for _, name, _, _ in SETTINGS), ("claims.csv",)),
        lambda root, names: across_settings(root),
    ),
    Section("How the results were made", {}, provenance),
    Section("The paper's Figure 1, redrawn", {}, figure_one),
    Section("Verdicts in the paper's setting", {"paper": ("claims.csv",)}, paper_verdicts),
    Section("How the verdicts change with β", {"beta": ("claims.csv",)}, beta_verdicts),
    Section("How the verdicts change with the reference model", {"reference": ("claims.csv",)}, reference_verdicts),
    Section(
        "Reference-free and standard DPO, side by side",
        {"standard": ("claims.csv", "regions.csv", "flows.csv", "meta.json"), "paper": ("claims.csv", "regions.csv")},
        side_by_side,
    ),
    Section(
        "The same starts under three parameterisations",
        _each((name for _, name, _ in MODELS), ("regions.csv",)),
        lambda root, names: models_side_by_side(root),
    ),
    Section(
        "The losses compared, by model",
        _each(LOSS_RUNS, ("loss_comparison.csv",)),
        lambda root, names: loss_by_model(root, LOSS_RUNS),
    ),
    _losses("losses", "the ratio plane"),
    _losses("losses_logits", "softmax logits (K = 10)"),
    _dynamics("optimisers", "softmax logits (K = 10)"),
    _dynamics("optimisers_features", "log-linear features (cos 0.9, norm ratio 1.25)"),
    Section(
        "DPO on a small network",
        _each((name for _, name, _ in NETWORK_SETTINGS), ("claims.csv", "regions.csv")),
        lambda root, names: network_section(root),
    ),
    Section(
        "What predicts likelihood displacement (the second study)",
        _each(DISPLACEMENT_RUNS, ("flows.csv", "claims.csv", "figures")),
        lambda root, names: displacement_section(root),
    ),
    Section("Figures", _each((name for name, _, _ in SHOWN_FIGURES), ("figures",)), figures),
)


def missing_files(root: Path, sections: tuple[Section, ...] = SECTIONS) -> dict[str, list[str]]:
    """Experiment -> the files the sections read that its folder under ``root`` lacks (only those lacking some)."""
    wanted: dict[str, set[str]] = {}
    for section in sections:
        for name, files in section.needs.items():
            wanted.setdefault(name, set()).update(files)
    out = {name: [f for f in sorted(files) if not (root / name / f).exists()] for name, files in wanted.items()}
    return {name: files for name, files in out.items() if files}


def missing_line(section: Section, missing: Mapping[str, list[str]], root: Path) -> list[str]:
    """The marked line of a section that lacks files ([] if it lacks none): which, and what to run."""
    lacking = {n: [f for f in files if f in missing.get(n, ())] for n, files in section.needs.items()}
    lacking = {n: files for n, files in lacking.items() if files}
    if not lacking:
        return []
    what = "; ".join(_remedy(root, n, files) for n, files in lacking.items())
    return [f"> **Missing:** *{section.title}* lacks {what}.", ""]


def _remedy(root: Path, name: str, files: list[str]) -> str:
    """What is missing of one experiment, and the command that makes it."""
    shown = ", ".join(f"{name}/{f}" for f in files)
    folder = root / name
    if not (folder / "meta.json").exists():
        return f"the experiment `{name}` ({shown}): run it (`flowsim reproduce` with experiments/{name}.toml)"
    step = min((WRITTEN_BY[f] for f in files), key=("run", "analyze", "plot").index)
    if step == "run":  # the run is recorded but its flows.csv is not here (large sweeps are not committed)
        return f"{shown}: regenerate it with `flowsim reproduce`"
    return f"{shown}: run `flowsim {step} {folder}`"


def incomplete_note(missing: Mapping[str, list[str]], sections: tuple[Section, ...] = SECTIONS) -> list[str]:
    """The report's opening warning when some sections lack files ([] when none does)."""
    short = [s.title for s in sections if any(set(files) & set(missing.get(n, ())) for n, files in s.needs.items())]
    if not short:
        return []
    return [
        f"> **This report is incomplete:** {len(short)} of its {len(sections)} sections lack results "
        f"({', '.join(short)}); each is marked **Missing** below with what to run. Missing: "
        + "; ".join(f"`{n}` ({', '.join(files)})" for n, files in missing.items())
        + ".",
        "",
    ]


def absent_experiments(names: list[str], sections: tuple[Section, ...] = SECTIONS) -> dict[str, list[str]]:
    """Experiment the report reads but ``names`` lacks -> the titles of the sections that read it."""
    out: dict[str, list[str]] = {}
    for section in sections:
        for name in section.needs:
            if name not in names:
                out.setdefault(name, []).append(section.title)
    return out


__all__ = ["SECTIONS", "Section", "absent_experiments", "incomplete_note", "missing_files", "missing_line"]
