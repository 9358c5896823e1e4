"""The plotting layer's keys: each status drawn in its own colour, whatever order the colours are written in."""

import matplotlib.colors as mcolors
import pandas as pd
import pytest

from flowsim.dynamics.record import STATUSES
from flowsim.plotting import quantities as quantities_module
from flowsim.plotting.quantities import Quantity, norm_of, status_colours, values
from flowsim.plotting.style import STATUS_COLOURS


def drawn_colours(q: Quantity) -> dict[str, tuple]:
    """The colour each status is drawn in on the status map, as the map computes it."""
    codes = values(pd.DataFrame({"status": list(STATUSES)}), "status")
    cmap, norm = norm_of(q, codes)
    return {s: cmap(norm(code)) for s, code in zip(STATUSES, codes, strict=True)}


def test_each_status_is_drawn_in_its_colour():
    q = Quantity("status", "Why the flow stopped", "status", "status")
    assert set(STATUS_COLOURS) == set(STATUSES)
    assert drawn_colours(q) == {s: mcolors.to_rgba(STATUS_COLOURS[s]) for s in STATUSES}


def test_the_order_the_colours_are_written_in_does_not_matter():
    shuffled = dict(reversed(STATUS_COLOURS.items()))
    q = Quantity("status", "Why the flow stopped", "status", "status", colours=status_colours(shuffled))
    assert drawn_colours(q) == {s: mcolors.to_rgba(STATUS_COLOURS[s]) for s in STATUSES}


def test_a_status_without_a_colour_is_refused():
    short = {s: c for s, c in STATUS_COLOURS.items() if s != STATUSES[-1]}
    with pytest.raises(ValueError, match=rf"without a colour: \['{STATUSES[-1]}'\]"):
        status_colours(short)
    with pytest.raises(ValueError, match=r"not a status: \['finished'\]"):
        status_colours({**STATUS_COLOURS, "finished": "#000000"})


def test_the_status_quantity_uses_the_checked_colours():
    q = next(q for q in quantities_module.quantities(quantities_module.StopRule()) if q.name == "status")
    assert q.colours == status_colours() and tuple(s for s, _ in q.colours) == STATUSES
