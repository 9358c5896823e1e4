"""Razin et al.'s quantile protocol as datasets (issue #31): the pool, the selection, the keys, the rows.

:func:`flowsim.model.network.select.quantile_indices` keeps a predictor's ``n`` highest or lowest
pairs of a pool (ties to the earlier pair); :func:`~flowsim.model.network.select.select_pairs`
ranks the pool at the SFT checkpoint; the ``pool`` / ``select`` keys are validated with errors
naming the key; a sweep's rows carry the selection and the two ends of a predictor are disjoint.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from flowsim._validation import ParamError  # noqa: E402
from flowsim.dynamics.training import sft  # noqa: E402
from flowsim.model.network import select as sel  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.network.probes import hidden_columns  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

SMALL = dict(vocab=6, prompt_len=2, response_len=3, window=3, layers=1, width=8, sft_steps=5, sft_lr=0.05)


# -- the selection on hand-built predictor values ----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "n", "end", "expect"),
    [
        ([0.5, 3.0, -1.0, 2.0, 1.0], 2, 1, [1, 3]),  # the two highest, in pool order
        ([0.5, 3.0, -1.0, 2.0, 1.0], 2, -1, [0, 2]),  # the two lowest
        ([1.0, 2.0, 2.0, 2.0, 0.0], 2, 1, [1, 2]),  # a tie at the cut: the earlier pairs
        ([1.0, 1.0, 0.0, 1.0], 2, -1, [0, 2]),  # the lowest, then the earliest of the tied
        ([np.nan, 1.0, 2.0], 2, -1, [1, 2]),  # NaN ranks last at either end
        ([np.nan, 1.0, 2.0], 2, 1, [1, 2]),
        ([4.0, 3.0, 2.0], 3, 1, [0, 1, 2]),  # the whole pool
    ],
)
def test_quantile_indices_keep_the_chosen_end(values, n, end, expect):
    assert sel.quantile_indices(np.array(values), n, end).tolist() == expect


def test_every_selection_names_a_predictor_column_and_its_end():
    assert sel.SELECTIONS["ches_top"] == ("ches", 1) and sel.SELECTIONS["ches_bottom"] == ("ches", -1)
    assert sel.SELECTIONS["pair_edit_distance_small"] == ("pair_edit_distance", -1)  # the displacing end
    assert set(sel.SELECT_CHOICES) == {"none", "random", *sel.SELECTIONS}


def test_the_random_control_is_seeded_and_distinct():
    a = sel.random_indices(20, 5, (3, 0))
    assert a.tolist() == sel.random_indices(20, 5, (3, 0)).tolist() and len(set(a.tolist())) == 5
    assert a.tolist() == sorted(a.tolist())
    assert a.tolist() != sel.random_indices(20, 5, (4, 0)).tolist()


# -- the pool and the selection on a network -----------------------------------------------------------


def test_the_pool_draws_every_edit_distance_in_equal_shares():
    spec = Network(**SMALL, n_pairs=2, pool=9, select="random", edit_distance=3).check_relations()
    data = make_pairs(spec)
    assert data.n_pairs == 9 and data.edit_distances().tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("select", ["ches_top", "ches_bottom", "hidden_ip_top", "pair_edit_distance_small"])
def test_select_pairs_keeps_the_pools_chosen_end_at_the_sft_checkpoint(select):
    spec = Network(**SMALL, n_pairs=3, pool=8, select=select, edit_distance=3).check_relations()
    net, pool = build(spec, make_pairs(spec))
    sft(net, pool, spec)
    column, end = sel.SELECTIONS[select]
    values = sel.predictor(net, pool, column)
    kept = sel.select_pairs(net, pool, spec)
    assert kept.data.n_pairs == 3
    expect = np.sort(np.argsort(-end * values, kind="stable")[:3])
    for f in ("prompts", "chosen", "rejected"):
        np.testing.assert_array_equal(getattr(kept.data, f), getattr(pool.data, f)[expect])
    if column != "pair_edit_distance":  # a pair's hidden states do not depend on the others in its batch
        np.testing.assert_allclose(hidden_columns(net, kept)[column], values[expect], rtol=1e-12)
    rest = np.setdiff1d(np.arange(8), expect)
    assert np.all(end * values[expect][:, None] >= end * values[rest][None, :])


def test_without_a_pool_the_batch_is_untouched():
    spec = Network(**SMALL, n_pairs=3).check_relations()
    net, batch = build(spec, make_pairs(spec))
    assert sel.select_pairs(net, batch, spec) is batch


# -- the keys' validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "key", "rule"),
    [
        (dict(pool=2, n_pairs=3, select="ches_top"), "pool", "must be 0 (no pool) or >= n_pairs = 3"),
        (dict(pool=6, n_pairs=3), "select", "must name the pairs kept from the pool"),
        (dict(select="ches_top"), "select", 'must be "none" without a pool'),
        (dict(pool=6, n_pairs=3, select="random", batch_size=2), "batch_size", "with a pool"),
        (dict(pool=-1), "pool", ">= 0"),
        (dict(select="ches_middle"), "select", "ches_top"),
    ],
)
def test_the_pool_keys_are_validated_naming_key_rule_and_value(kw, key, rule):
    with pytest.raises(ParamError) as err:
        Network(**SMALL, **kw).check_relations()
    assert err.value.key == key and rule in err.value.rule
    assert repr(err.value.value) in str(err.value)


# -- a sweep's rows ---------------------------------------------------------------------------------


def test_a_sweeps_rows_carry_the_selection_and_the_two_ends_are_disjoint():
    from flowsim.experiment.config import parse_experiment
    from flowsim.experiment.sweep import chunks, run_chunk

    model = {"kind": "network", **SMALL, "edit_distance": 3, "pool": 8, "n_pairs": 2}
    model |= {"select": ["ches_top", "ches_bottom", "pair_edit_distance_small"], "data_seed": [0, 1]}
    doc = {"name": "q", "model": model, "loss": {"kind": "dpo"}, "dynamics": {"kind": "gd", "gd": {"lr": 0.05}}}
    exp = parse_experiment(doc | {"stop": {"max_steps": 2}})
    rows = pd.concat([run_chunk(exp, c) for c in chunks(exp, 100)], ignore_index=True)
    assert len(rows) == 3 * 2 * 2 and set(rows["pool"]) == {8}
    for seed, f in rows.groupby("data_seed"):
        by = {s: g for s, g in f.groupby("select")}
        assert all(len(g) == 2 for g in by.values()), seed
        assert by["ches_top"]["ches"].min() > by["ches_bottom"]["ches"].max(), seed
        assert by["pair_edit_distance_small"]["pair_edit_distance"].tolist() == [1.0, 1.0], seed
