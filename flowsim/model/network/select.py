r"""Razin et al.'s quantile protocol as a dataset: keep the pairs of a pool at one end of a predictor.

With ``[model] pool`` > 0 the dataset drawn is a *pool* of ``pool`` pairs
(:func:`flowsim.model.network.data.make_pairs`); pretraining and SFT run on the whole pool, as
today; then :func:`select_pairs`, called once right after SFT and before the preference stage,
computes the predictor ``select`` names for every pool pair at the SFT checkpoint (the DPO start)
with :mod:`flowsim.model.network.probes`, keeps the ``n_pairs`` pairs of the chosen end, and the
preference stage trains on that dataset alone (its reference: the SFT checkpoint, as without a pool).

**The selections** (:data:`SELECTIONS`: name -> (predictor column, end)).  ``<p>_top`` keeps the
``n_pairs`` highest values of predictor p, ``<p>_bottom`` the lowest, for p in ``ches``,
``ches_ln``, ``hidden_ip``; for the edit distance, whose *small* end is the one claimed to displace,
``pair_edit_distance_small`` and ``pair_edit_distance_large``.  ``random`` is the control: a
uniform draw of ``n_pairs`` pool pairs from ``numpy.random.default_rng([data_seed, init_seed])``.

**Ties** are broken by the pool's order: among equal values the pair drawn first is kept first (a
stable sort).  The kept pairs stay in pool order, so the dataset does not depend on the ranking's order.
"""

from __future__ import annotations

import numpy as np

from flowsim.model.network.data import PairData

#: A selection -> (the predictor column it ranks by, +1 to keep the highest values / -1 the lowest).
SELECTIONS: dict[str, tuple[str, int]] = {
    **{f"{p}_{end}": (p, sign) for p in ("ches", "ches_ln", "hidden_ip") for end, sign in (("top", 1), ("bottom", -1))},
    "pair_edit_distance_small": ("pair_edit_distance", -1),
    "pair_edit_distance_large": ("pair_edit_distance", 1),
}
#: Every value of ``[model] select``: no selection, the random control, the predictor ends.
SELECT_CHOICES: tuple[str, ...] = ("none", "random", *SELECTIONS)


def quantile_indices(values: np.ndarray, n: int, end: int) -> np.ndarray:
    """The pool indices (sorted) of the ``n`` pairs at ``end`` (+1 highest, -1 lowest) of ``values`` (pool,).

    Ties go to the earlier pair (stable sort); NaN values rank last at either end.

    >>> quantile_indices(np.array([3.0, 1.0, 3.0, 2.0]), 2, 1).tolist()
    [0, 2]
    >>> quantile_indices(np.array([3.0, 1.0, 1.0, 2.0]), 1, -1).tolist()
    [1]
    """
    key = np.where(np.isnan(values), np.inf, -end * np.asarray(values, float))
    return np.sort(np.argsort(key, kind="stable")[:n])


def random_indices(pool: int, n: int, seed: tuple[int, ...]) -> np.ndarray:
    """``n`` of ``pool`` indices drawn uniformly without replacement (the control), sorted."""
    return np.sort(np.random.default_rng(list(seed)).choice(pool, size=n, replace=False))


def predictor(net, batch, column: str) -> np.ndarray:
    """The predictor ``column`` of every pair of ``batch`` at the network's current parameters, shape (N,)."""
    from flowsim.model.network.probes import hidden_columns
    from flowsim.model.probes import pair_text_columns

    if column == "pair_edit_distance":
        return pair_text_columns(batch.data.chosen, batch.data.rejected)[column]
    return hidden_columns(net, batch)[column]


def chosen_indices(net, batch, spec) -> np.ndarray:
    """The pool indices the spec's ``select`` keeps (all of them without a pool)."""
    if not spec.pool:
        return np.arange(batch.data.n_pairs)
    if spec.select == "random":
        return random_indices(spec.pool, spec.n_pairs, (spec.data_seed, spec.init_seed))
    column, end = SELECTIONS[spec.select]
    return quantile_indices(predictor(net, batch, column), spec.n_pairs, end)


def subset(data: PairData, keep: np.ndarray) -> PairData:
    """The pairs ``keep`` of a dataset."""
    return PairData(data.prompts[keep], data.chosen[keep], data.rejected[keep])


def select_pairs(net, batch, spec):
    """The batch the preference stage trains on: the pool's selected pairs (``batch`` itself without a pool).

    Call it once per training, after SFT (the predictors are read at the DPO start) and before the
    reference log-probabilities, the start's probes and the preference stage.
    """
    if not spec.pool:
        return batch
    from flowsim.model.network.archs import as_batch

    return as_batch(spec, subset(batch.data, chosen_indices(net, batch, spec)), net)


__all__ = [
    "SELECTIONS",
    "SELECT_CHOICES",
    "chosen_indices",
    "predictor",
    "quantile_indices",
    "random_indices",
    "select_pairs",
    "subset",
]
