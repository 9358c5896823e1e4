"""MkDocs hooks: the generated pages (docs/_gen.py), the findings page and the changelog, added at build time.

Nothing generated is written into the source tree: each page is a virtual file of the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS))

import _gen  # noqa: E402 - docs/ is not a package

#: Markers in hand-written pages replaced by generated text.
MARKERS = {
    "<!-- gen:benchmark -->": lambda: _gen.benchmark_page(ROOT / "results" / "benchmark.csv"),
    "<!-- gen:package-map -->": lambda: _gen.package_map(ROOT / "flowsim"),
}


def on_files(files, config):
    for name, make in _gen.PAGES.items():
        files.append(File.generated(config, f"reference/{name}", content=make()))
    findings, figures = _findings(ROOT / "results")
    files.append(File.generated(config, "findings.md", content=findings))
    for rel in figures:
        files.append(File.generated(config, f"findings/{rel}", abs_src_path=str(ROOT / "results" / rel)))
    changelog = (ROOT / "CHANGELOG.md").read_text()
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files


def on_page_markdown(markdown, page, config, files):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


def _findings(results: Path) -> tuple[str, list[str]]:
    """results/README.md as a page: its figures copied beside it, links to folders and data files as paths."""
    text = (results / "README.md").read_text()
    figures: list[str] = []

    def link(m: re.Match) -> str:
        bang, label, target = m.group(1), m.group(2), m.group(3)
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            return m.group(0)
        if target.endswith((".png", ".svg")) and (results / target).is_file():
            figures.append(target)
            return f"{bang}[{label}](findings/{target})"
        return f"{label} (`results/{target}`)"

    text = re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", link, text)
    return text, sorted(set(figures))
