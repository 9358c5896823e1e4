"""The suite's own machinery: ``--dist loadgroup`` keeps an ``xdist_group`` on one worker.

pytest-xdist sends every test whose node id ends in ``@name`` to the worker of that group; the
id is set on the worker when it collects (tests/conftest.py does it where xdist's own way no
longer works).  Without it, a group's module fixtures and imports are paid on every worker.
"""

import pytest

pytestmark = pytest.mark.xdist_group("suite_groups")


def test_a_grouped_test_is_named_for_its_group_exactly_under_loadgroup(request):
    loadgroup = bool(getattr(request.config.option, "loadgroup", False))  # set on xdist's workers
    assert request.node.nodeid.endswith("@suite_groups") == loadgroup, (request.node.nodeid, loadgroup)
