"""The 3 x 3 regions: a point exactly on a cut belongs to the upper cell, on both axes (README, regions.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS, region_index, region_labels

#: Cuts of several kinds: the default thirds (not exact binary fractions), dyadic ones, uneven ones.
CUTS = [DEFAULT_CUTS, (0.25, 0.5), (0.1, 0.7)]


def cell(v: float, cuts: tuple[float, float]) -> int:
    """The cell index along one axis, by the rule: [0, a) -> 0, [a, b) -> 1, [b, 1] -> 2."""
    return 0 if v < cuts[0] else 1 if v < cuts[1] else 2


@pytest.mark.parametrize(("p1_cuts", "p2_cuts"), list(itertools.product(CUTS, CUTS)))
def test_a_point_on_a_cut_is_in_the_upper_cell(p1_cuts, p2_cuts):
    # every combination of: on a cut, one ulp below it, one ulp above it, or inside a cell -- on each axis
    def values(cuts):
        a, b = cuts
        return [a, b, np.nextafter(a, 0), np.nextafter(b, 0), np.nextafter(a, 1), np.nextafter(b, 1),
                a / 2, (a + b) / 2, (b + 1) / 2]  # fmt: skip

    pts = np.array(list(itertools.product(values(p1_cuts), values(p2_cuts))))
    row, col = region_index(pts, p1_cuts, p2_cuts)
    assert col.tolist() == [cell(v, p1_cuts) for v in pts[:, 0]]
    assert row.tolist() == [cell(v, p2_cuts) for v in pts[:, 1]]
    on_both = np.array(list(itertools.product(p1_cuts, p2_cuts)))
    # (a1, a2) -> center, (a1, b2) -> top, (b1, a2) -> right, (b1, b2) -> top-right
    assert region_labels(on_both, p1_cuts, p2_cuts).tolist() == ["center", "top", "right", "top-right"]


def test_labels_read_the_figure_row_by_row():
    # the cell centres of the default thirds, row by row from the top, are REGIONS in order
    c = [1 / 6, 1 / 2, 5 / 6]
    pts = [[x, y] for y in reversed(c) for x in c]
    assert region_labels(pts).tolist() == list(REGIONS)
    assert region_labels([[0.0, 0.0], [1.0, 1.0]]).tolist() == ["bottom-left", "top-right"]  # the square's corners
