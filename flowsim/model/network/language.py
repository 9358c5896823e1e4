r"""A generated language to pretrain on and draw preference pairs from: a seeded Markov source over word classes.

The vocabulary's last token is the end of sequence ``EOS`` (GPT-2's convention, and what TRL appends
to every completion); the other ``vocab - 1`` tokens are words, word w in class w mod
``word_classes``.  A sentence is a chain of classes, c_0 ~ ``start``, c_{t+1} ~ ``transition[c_t]``,
each emitting a word of its class, w_t ~ ``emission`` restricted to c_t.  Since a word names its
class, the words themselves form a first-order Markov chain,
p(w' | w) = transition[class(w), class(w')] emission[w'], whose conditional entropies give the
lowest next-token loss a model can reach (:meth:`Language.next_token_floor`).  Words of one class
are interchangeable in every context up to their frequencies: the graded similarity the pairs'
controls (``same_class``, ``shared_prefix``, ``edit_distance``) select from.

The transition rows are Dirichlet(0.3) (peaked: few likely successors, so there is structure to
learn), the emissions within a class Dirichlet(1); both from ``language_seed``, so one language
serves every ``data_seed``.  Token names (:func:`vocabulary`) are plain strings ``"w0" .. "w{V-2}"``
and ``"</s>"``, for a word-level tokenizer; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Dirichlet concentration of the class transitions (< 1: peaked rows) and of the word emissions.
TRANSITION_ALPHA, EMISSION_ALPHA = 0.3, 1.0


@dataclass(frozen=True)
class Language:
    """A Markov source over word classes (see the module docstring); tokens 0..vocab-2 are words, vocab-1 EOS."""

    word_class: np.ndarray  # (W,) the class of each word
    start: np.ndarray  # (C,)
    transition: np.ndarray  # (C, C), rows sum to 1
    emission: np.ndarray  # (W,), sums to 1 within each class

    @property
    def eos(self) -> int:
        return int(self.word_class.size)

    def word_transitions(self) -> np.ndarray:
        """p(w' | w), shape (W, W): the words' own Markov chain."""
        return self.transition[self.word_class][:, self.word_class] * self.emission[None, :]

    def next_token_floor(self, length: int) -> float:
        """The lowest mean next-token loss (nats) on sentences of ``length`` words, tokens 1..length-1:
        the mean over t of the conditional entropy H(w_t | w_{t-1}) under the chain's marginals."""
        p = self.word_transitions()
        h = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)  # (W,) entropy after each word
        m = self.start[self.word_class] * self.emission  # the first word's marginal
        total = 0.0
        for _ in range(length - 1):
            total += float(m @ h)
            m = m @ p
        return total / (length - 1)

    def sample(self, rng: np.random.Generator, n: int, length: int, after: np.ndarray | None = None) -> np.ndarray:
        """n sentences of ``length`` words (n, length); continuing the words ``after`` (n,) if given."""
        cls = np.empty((n, length), dtype=int)
        prev = None if after is None else self.word_class[after]
        for t in range(length):
            cls[:, t] = (
                rng.choice(self.start.size, size=n, p=self.start) if prev is None else _draw(rng, self.transition[prev])
            )
            prev = cls[:, t]
        return self.words_of(rng, cls)

    def words_of(self, rng: np.random.Generator, cls: np.ndarray) -> np.ndarray:
        """A word of each class in ``cls`` (any shape), drawn by the emission probabilities."""
        out = np.empty(cls.shape, dtype=int)
        for c in np.unique(cls):
            members = np.flatnonzero(self.word_class == c)
            where = cls == c
            out[where] = rng.choice(members, size=int(where.sum()), p=self.emission[members])
        return out


def _draw(rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
    """One index per row of a (n, C) probability table."""
    return np.minimum((rng.random(rows.shape[0])[:, None] > np.cumsum(rows, axis=1)).sum(axis=1), rows.shape[1] - 1)


def make_language(vocab: int, word_classes: int, seed: int) -> Language:
    """The language of ``vocab`` tokens (the last is EOS) in ``word_classes`` classes, from ``seed``.

    >>> lang = make_language(vocab=7, word_classes=2, seed=0)
    >>> lang.word_class.tolist(), lang.eos
    ([0, 1, 0, 1, 0, 1], 6)
    """
    rng = np.random.default_rng([seed, 7])
    n_words = vocab - 1
    word_class = np.arange(n_words) % word_classes
    start = rng.dirichlet(np.full(word_classes, EMISSION_ALPHA))
    transition = rng.dirichlet(np.full(word_classes, TRANSITION_ALPHA), size=word_classes)
    emission = np.empty(n_words)
    for c in range(word_classes):
        members = word_class == c
        emission[members] = rng.dirichlet(np.full(int(members.sum()), EMISSION_ALPHA))
    return Language(word_class, start, transition, emission)


def language_of(spec) -> Language:
    """The language of a ``Network`` spec (``vocab``, ``word_classes``, ``language_seed``)."""
    return make_language(spec.vocab, spec.word_classes, spec.language_seed)


def vocabulary(vocab: int) -> list[str]:
    """The tokens' names, by id: ``"w0"`` .. ``"w{vocab-2}"`` and ``"</s>"`` (EOS) last."""
    return [f"w{i}" for i in range(vocab - 1)] + ["</s>"]


def corpus(spec, n_tokens: int, seed) -> np.ndarray:
    """Pretraining text: sentences of prompt_len + response_len words, about ``n_tokens`` in all, (n, L)."""
    length = spec.prompt_len + spec.response_len
    n = max(2, n_tokens // length)
    return language_of(spec).sample(np.random.default_rng(seed), n, length)


__all__ = ["Language", "corpus", "language_of", "make_language", "vocabulary"]
