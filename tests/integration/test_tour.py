"""docs/tour.ipynb runs from top to bottom (nbclient, a fresh python3 kernel) and says what it should."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the tour needs nbformat: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="the tour needs nbclient: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="the tour needs ipykernel: pip install -e '.[test]'")

TOUR = Path(__file__).resolve().parents[2] / "docs" / "tour.ipynb"


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
    return "".join(parts)


def test_the_tour_executes(tmp_path):
    nb = nbformat.read(TOUR, as_version=4)
    for cell in nb.cells:  # run it fresh: the stored outputs must not stand in for a run
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(o.get("output_type") != "error" for c in code for o in c.outputs)
    assert not any(o.get("name") == "stderr" for c in code for o in c.outputs), "the tour writes to stderr"
    text = "\n".join(_text(c) for c in code)
    assert "converged at t = 3.661660" in text  # the README's worked example, integrated
    assert "RunResults('ratio': 100 flows" in text and ", analysed)" in text
    assert "C6" in text and "supported" in text  # the claims table
    assert "logits" in text and "features" in text  # across models
    assert sum("image/png" in o.get("data", {}) for c in code for o in c.outputs) == 3
