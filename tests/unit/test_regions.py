"""The 3 x 3 regions: a point exactly on a cut belongs to the upper cell, on both axes (regions.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from flowsim.experiment.regions import DEFAULT_CUTS, REGIONS, feasible, region_index, region_labels

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
        return [
            a,
            b,
            np.nextafter(a, 0),
            np.nextafter(b, 0),
            np.nextafter(a, 1),
            np.nextafter(b, 1),
            a / 2,
            (a + b) / 2,
            (b + 1) / 2,
        ]

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


def test_the_default_cuts_are_the_thirds():
    third = [1 / 3, 2 / 3]
    pts = [[np.nextafter(c, 0), 0.5] for c in third] + [[c, 0.5] for c in third]
    assert region_labels(pts).tolist() == ["left", "center", "center", "right"]
    assert region_labels([[0.5, c] for c in third]).tolist() == ["center", "top"]


@pytest.mark.parametrize("cuts", [(0.0, 0.5), (0.5, 1.0), (0.5, 0.5), (0.7, 0.3), (-0.1, 0.5), (0.5,)])
def test_cuts_must_increase_strictly_inside_the_square(cuts):
    with pytest.raises(ValueError, match=r"p2_cuts must be two numbers 0 < a < b < 1"):
        region_labels([[0.5, 0.5]], p2_cuts=cuts)


def test_feasible_is_p1_plus_p2_at_most_one_within_1e_12():
    edge = (1.0 + 1e-12) - 0.5  # 0.5 + edge is exactly the tolerance's edge, 0.5 + past the next float up
    past = edge + 2.0**-52
    assert 0.5 + edge == 1.0 + 1e-12 and 0.5 + past == np.nextafter(1.0 + 1e-12, 2)
    pts = [[0.5, 0.5], [0.25, 0.75], [0.5, edge], [0.5, past], [0.6, 0.5], [0.0, 0.0]]
    assert feasible(pts).tolist() == [True, True, True, False, False, True]
