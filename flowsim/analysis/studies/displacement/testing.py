"""Synthetic rows carrying the displacement study's per-pair columns, with a known truth.

For the study's tests and for trying its report and figure without a sweep: rows as a network's
flows.csv holds them (one per pair; ``n_pairs`` pairs per training, one training per
``init_seed``), built on the closed-form DPO rows of :func:`flowsim.analysis.testing.make_flows`.
Each pair has a latent z ~ N(0, 1); CHES is z plus noise and dlogpw is ``-strength`` z plus noise,
so rho(ches, dlogpw) < 0 when ``strength`` > 0.

>>> rows = synthetic_pairs(n_trainings=3, n_pairs=4)
>>> len(rows), sorted(set(rows["init_seed"]))
(12, [0, 1, 2])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsim.analysis.testing import make_flows


def synthetic_pairs(
    n_trainings: int = 8,
    n_pairs: int = 8,
    *,
    strength: float = 1.0,
    cross: float = 0.0,
    sign_noise: float = 0.0,
    squeeze: float = 1.0,
    similar: float = 1.0,
    model: str = "network",
    seed: int = 0,
) -> pd.DataFrame:
    """Rows of ``n_trainings`` trainings of ``n_pairs`` pairs each (see the module docstring).

    Parameters
    ----------
    strength : float
        dlogpw = -strength z + N(0, 1) noise: how well CHES (z + noise) ranks the pairs.
    cross : float
        ent_cross = -cross |z|: the other pairs' pull (0: none); ent_own = 1 - z / 2 (positive for z < 2).
    sign_noise : float
        Share of pairs whose measured first change ``dlogpw_first`` has the opposite sign to ``dlogpw_dt0``.
    squeeze : float
        top_other_gain = squeeze top_other_0 + noise.
    similar : float
        dlogpw also rises by ``similar`` per unit of edit distance (1..3; token overlap 1 - ed / 4).
    model : str
        The model column ("network" rows carry logp_w0, logp_w_final, pair, n_pairs and init_seed;
        a policy model's rows are one flow each, with dlogpw only through p1_final).
    """
    rng = np.random.default_rng(seed)
    n = n_trainings * n_pairs
    g = np.linspace(0.2, 0.6, n)
    rows = make_flows(points=np.stack([g, 0.7 - g], -1), reference="initial").assign(model=model)
    z = rng.standard_normal(n)
    ed = rng.integers(1, 4, n)
    dlogpw = -strength * z + similar * (ed - 2) + rng.standard_normal(n)
    own = 1.0 - z / 2
    total = own - cross * np.abs(z)
    flip = rng.random(n) < sign_noise
    top0 = rng.uniform(0.05, 0.5, n)
    cols = {
        "init_seed": np.repeat(np.arange(n_trainings), n_pairs),
        "n_pairs": n_pairs,
        "pair": np.tile(np.arange(n_pairs), n_trainings),
        "ches": z + 0.3 * rng.standard_normal(n),
        "ches_ln": z / 3 + 0.3 * rng.standard_normal(n),
        "hidden_ip": rng.standard_normal(n),
        "ent_own": own,
        "ent_cross": total - own,
        "dlogpw_dt0": total,
        "dlogpw_first": np.where(flip, -total, total),
        "pair_edit_distance": ed,
        "token_overlap": 1 - ed / 4,
        "top_other_0": top0,
        "top_other_gain": squeeze * top0 + 0.05 * rng.standard_normal(n),
        "p1_final": rows["p1_0"].to_numpy() * np.exp(np.minimum(dlogpw, 0.5)),
        "displaced": dlogpw < 0,
    }
    out = rows.assign(**cols)
    if model == "network":
        return out.assign(logp_w0=np.log(out["p1_0"]), logp_w_final=np.log(out["p1_0"]) + dlogpw)
    return out.drop(columns=["pair", "n_pairs", "init_seed"])  # a policy model: every start its own flow


#: The selections of a synthetic quantile experiment (:func:`synthetic_selections`), each end's
#: direction: +1 the end claimed to displace, -1 the other, 0 the random control.
SELECTION_SIDES: dict[str, int] = {
    "ches_top": 1,
    "ches_bottom": -1,
    "hidden_ip_top": 1,
    "hidden_ip_bottom": -1,
    "pair_edit_distance_small": 1,
    "pair_edit_distance_large": -1,
    "random": 0,
}


def synthetic_selections(
    n_seeds: int = 6, n_pairs: int = 6, *, effect: float = 1.0, baseline: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Rows of a quantile experiment (:mod:`flowsim.model.network.select`): a training per seed and selection.

    A pair's dlogpw is N(0, 1) minus ``effect`` on CHES's top, plus ``effect`` on its bottom
    (``baseline`` the same for the hidden_ip and edit-distance ends); displaced = dlogpw < 0.
    The seeds are ``data_seed``; the selection is the column ``select``.

    >>> f = synthetic_selections(n_seeds=2, n_pairs=3)
    >>> len(f), sorted(set(f["select"]))[:2]
    (42, ['ches_bottom', 'ches_top'])
    """
    names = list(SELECTION_SIDES)
    base = synthetic_pairs(n_trainings=n_seeds * len(names), n_pairs=n_pairs, seed=seed)
    rng = np.random.default_rng(seed + 1)
    select = np.repeat(np.tile(names, n_seeds), n_pairs)
    size = np.array([effect if s.startswith("ches") else baseline for s in select])
    dlogpw = rng.standard_normal(len(base)) - size * np.array([SELECTION_SIDES[s] for s in select])
    return base.assign(
        data_seed=np.repeat(np.arange(n_seeds), len(names) * n_pairs),
        select=select,
        logp_w_final=base["logp_w0"] + dlogpw,
        p1_final=base["p1_0"] * np.exp(np.minimum(dlogpw, 0.5)),
        displaced=dlogpw < 0,
    )


__all__ = ["SELECTION_SIDES", "synthetic_pairs", "synthetic_selections"]
