"""Seeded synthetic preference datasets: N pairs (x, y_w, y_l) of token sequences, nothing downloaded.

For each pair, from ``numpy.random.default_rng(data_seed)``:

* the prompt x: ``prompt_len`` tokens uniform over the vocab, a distinct prompt per pair
  (:func:`distinct_rows`); with ``n_prompts`` > 0 only that many distinct prompts are drawn and
  pair i takes prompt i mod n_prompts (so pairs share prompts);
* y_w: ``response_len`` tokens uniform over the first ``token_pool`` tokens (all when 0): a small
  pool makes pairs share tokens;
* y_l: y_w with ``edit_distance`` positions (chosen without replacement) replaced by a different
  token of the pool: its Hamming distance to y_w is exactly ``edit_distance`` (Pal et al.'s
  "similar responses" are edit distance 1).

Prompts are distinct because two pairs that share one by chance tie their responses' probabilities
together: SFT aimed at (p_w0, p_l0) for every pair cannot reach it when two pairs' responses under
one prompt need more than probability 1, or when one pair's y_l is another's y_w (measured on the
language's 2-word prompts, where 3 of 8 pairs drew the same prompt).  Sharing is what ``n_prompts``
is for.

With ``pairs = "language"`` the pairs come from :func:`language_pairs`
instead; with ``append_eos`` both responses end with EOS (token vocab - 1), as TRL appends it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowsim.model.network.language import language_of


@dataclass(frozen=True)
class PairData:
    """A dataset of N pairs: prompts (N, P), chosen and rejected responses (N, T), integer tokens."""

    prompts: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray

    @property
    def n_pairs(self) -> int:
        return int(self.prompts.shape[0])

    def edit_distances(self) -> np.ndarray:
        """Hamming distance between y_w and y_l of each pair, shape (N,)."""
        return np.count_nonzero(self.chosen != self.rejected, axis=1)


def make_pairs(spec) -> PairData:
    """The dataset of a :class:`~flowsim.model.parameterisations.network.Network` spec (by ``spec.pairs``).

    With ``spec.pool`` > 0, the pool (:func:`pool_pairs`) the preference stage's pairs are selected from.
    """
    if getattr(spec, "pool", 0):
        return pool_pairs(spec)
    if spec.pairs == "language":
        data = PairData(*language_pairs(spec))
    else:
        data = uniform_pairs(spec)
    return with_eos(data, spec.vocab - 1) if spec.append_eos else data


def pool_pairs(spec) -> PairData:
    """The pool of ``spec.pool`` pairs: shares of it (as equal as can be, in order) at edit distance
    1, 2, .. ``spec.edit_distance``, each share drawn as a dataset of its own from ``data_seed``.

    The shares make the edit distance vary over the pool (one setting would tie every pair); drawn
    from the same seed, the first pairs of every share have the same prompt and y_w.

    >>> from flowsim.model.parameterisations.network import Network
    >>> d = make_pairs(Network(n_pairs=2, pool=5, select="random", edit_distance=2, response_len=3))
    >>> d.n_pairs, d.edit_distances().tolist()
    (5, [1, 1, 2, 2, 2])
    """
    from dataclasses import replace

    top = spec.edit_distance
    sizes = np.diff(np.round(np.linspace(0, spec.pool, top + 1)).astype(int))
    parts = [
        make_pairs(replace(spec, pool=0, select="none", n_pairs=int(k), n_prompts=0, edit_distance=d))
        for d, k in zip(range(1, top + 1), sizes, strict=True)
        if k
    ]
    return PairData(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("prompts", "chosen", "rejected")))


def with_eos(data: PairData, eos: int) -> PairData:
    """The pairs with ``eos`` appended to both responses (TRL appends EOS to every completion)."""
    end = np.full((data.n_pairs, 1), eos)
    return PairData(data.prompts, np.hstack([data.chosen, end]), np.hstack([data.rejected, end]))


#: Rounds of redrawing repeated rows before :func:`distinct_rows` gives up.
MAX_REDRAWS = 1000


def distinct_rows(draw, n: int) -> np.ndarray:
    """n distinct rows from ``draw(k)`` (k rows, (k, L)): each row equal to an earlier one is drawn again.

    A first draw without repeats is kept as it is (so are the generator's later draws).

    >>> rng = np.random.default_rng(0)
    >>> rows = distinct_rows(lambda k: rng.integers(0, 2, size=(k, 2)), 4)
    >>> sorted(map(tuple, rows.tolist()))
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    rows = draw(n)
    for _ in range(MAX_REDRAWS):
        _, first = np.unique(rows, axis=0, return_index=True)
        again = np.setdiff1d(np.arange(n), first)
        if again.size == 0:
            return rows
        rows[again] = draw(again.size)
    raise RuntimeError(f"no {n} distinct rows in {MAX_REDRAWS} rounds of redrawing")


def uniform_pairs(spec) -> PairData:
    """The uniform dataset of the module docstring.

    >>> from flowsim.model.parameterisations.network import Network
    >>> d = uniform_pairs(Network(n_pairs=4, edit_distance=2, response_len=3))
    >>> d.prompts.shape, d.chosen.shape, d.edit_distances().tolist()
    ((4, 2), (4, 3), [2, 2, 2, 2])
    """
    rng = np.random.default_rng(spec.data_seed)
    n, pool = spec.n_pairs, spec.token_pool or spec.vocab
    n_prompts = spec.n_prompts or n
    prompts = distinct_rows(lambda k: rng.integers(0, spec.vocab, size=(k, spec.prompt_len)), n_prompts)
    prompts = prompts[np.arange(n) % n_prompts]
    chosen = rng.integers(0, pool, size=(n, spec.response_len))
    rejected = chosen.copy()
    for i in range(n):
        where = rng.choice(spec.response_len, size=spec.edit_distance, replace=False)
        shift = rng.integers(1, pool, size=spec.edit_distance)  # a different token of the pool
        rejected[i, where] = (chosen[i, where] + shift) % pool
    return PairData(prompts, chosen, rejected)


def language_pairs(spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs drawn from the language, with the spec's similarity controls: (prompts, chosen, rejected).

    Prompts are distinct sentences (``n_prompts`` of them shared round-robin, or one per pair:
    :func:`distinct_rows`, for the reason in the module docstring); y_w continues
    its prompt in the language; y_l is y_w with ``edit_distance`` of its positions after the first
    ``shared_prefix`` replaced by another word -- of the same class if ``same_class``, else any other
    word (uniformly).  All from ``numpy.random.default_rng(data_seed)``.
    """
    lang, rng = language_of(spec), np.random.default_rng(spec.data_seed)
    n = spec.n_pairs
    n_prompts = spec.n_prompts or n
    prompts = distinct_rows(lambda k: lang.sample(rng, k, spec.prompt_len), n_prompts)[np.arange(n) % n_prompts]
    chosen = lang.sample(rng, n, spec.response_len, after=prompts[:, -1])
    rejected = chosen.copy()
    n_words = lang.word_class.size
    for i in range(n):
        where = spec.shared_prefix + rng.choice(
            spec.response_len - spec.shared_prefix, spec.edit_distance, replace=False
        )
        for s in where:
            w = chosen[i, s]
            pool = np.flatnonzero(lang.word_class == lang.word_class[w]) if spec.same_class else np.arange(n_words)
            rejected[i, s] = rng.choice(pool[pool != w])
    return prompts, chosen, rejected


def contexts(prompts: np.ndarray, responses: np.ndarray, window: int, pad: int) -> np.ndarray:
    """The context of each response token: the last ``window`` tokens of (x, y_<t), left-padded.

    Shape (N, T, window), integers; ``pad`` fills positions before the sequence's start.

    >>> contexts(np.array([[5]]), np.array([[1, 2]]), window=2, pad=9).tolist()
    [[[9, 5], [5, 1]]]
    """
    n, p = prompts.shape
    t = responses.shape[1]
    seq = np.concatenate([np.full((n, window), pad), prompts, responses], axis=1)
    # token y_s (s = 0..t-1) sits at window + p + s; its context ends just before it
    ends = window + p + np.arange(t)
    idx = ends[:, None] - window + np.arange(window)[None, :]
    return seq[:, idx]


__all__ = [
    "PairData",
    "contexts",
    "distinct_rows",
    "language_pairs",
    "make_pairs",
    "pool_pairs",
    "uniform_pairs",
    "with_eos",
]
