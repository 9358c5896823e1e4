"""results/README.md, built from the analysed experiment folders: nothing in it is typed by hand.

The sections, in order, and the files each reads from which experiment are listed in
:mod:`.manifest`, checked before anything is built: a section lacking files is marked **Missing**
with what to run, never dropped.  One module per part: :mod:`.overview` (how the results were made,
Figure 1, the verdicts in the paper's setting, over beta and the reference, the figures),
:mod:`.matrix` (the claims across settings), :mod:`.sections` (models, losses, dynamics, the
reference), :mod:`.network` (the network model), :mod:`.common` (readers).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from flowsim.app.report.manifest import (
    SECTIONS,
    Section,
    absent_experiments,
    incomplete_note,
    missing_files,
    missing_line,
)


class IncompleteReport(UserWarning):
    """The report will lack sections: experiments it reads are not among those run."""


def build_report(root: Path, names: list[str], sections: tuple[Section, ...] = SECTIONS) -> str:
    """results/README.md from the analysed experiment folders under ``root``.

    Every file the sections read is checked first; a section lacking some is built from what
    there is and marked, at its place and at the top, with the experiment and what to run.
    """
    missing = missing_files(root, sections)
    out = ["# flowsim results", "", *incomplete_note(missing, sections)]
    for section in sections:
        out += section.build(root, names)
        out += missing_line(section, missing, root)
    return "\n".join(out) + "\n"


def warn_absent(names: list[str], sections: tuple[Section, ...] = SECTIONS) -> None:
    """Warn (:class:`IncompleteReport`, one line) when the report reads experiments that ``names`` lacks."""
    absent = absent_experiments(names, sections)
    if absent:
        what = "; ".join(f"{n} ({', '.join(titles)})" for n, titles in absent.items())
        warnings.warn(
            f"the report will mark sections missing: it reads experiments not run here: {what}",
            IncompleteReport,
            stacklevel=2,
        )


__all__ = ["IncompleteReport", "build_report", "warn_absent"]
