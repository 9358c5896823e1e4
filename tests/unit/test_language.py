"""The generated language: seeded, the chain it says it is, its pairs' similarity controls, and pretraining on it.

The pretraining tests need torch (the ``nn`` extra); the transformer's also transformers.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.pretraining import next_token_loss, pretrain, text_batch  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.network.language import corpus, language_of, make_language, vocabulary  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)

LANG = dict(vocab=12, word_classes=3, prompt_len=3, response_len=3, pairs="language")


def test_the_language_is_determined_by_its_seed():
    a, b, c = make_language(12, 3, 0), make_language(12, 3, 0), make_language(12, 3, 1)
    assert np.array_equal(a.transition, b.transition) and np.array_equal(a.emission, b.emission)
    assert not np.allclose(a.transition, c.transition)
    spec = Network(**LANG, n_pairs=6, n_prompts=3, data_seed=4).check_relations()
    d1, d2 = make_pairs(spec), make_pairs(spec)
    assert all(
        np.array_equal(x, y)
        for x, y in zip((d1.prompts, d1.chosen, d1.rejected), (d2.prompts, d2.chosen, d2.rejected), strict=True)
    )
    assert not np.array_equal(d1.chosen, make_pairs(Network(**LANG, n_pairs=6, data_seed=5)).chosen)
    assert np.array_equal(corpus(spec, 300, [1, 2]), corpus(spec, 300, [1, 2]))
    assert vocabulary(4) == ["w0", "w1", "w2", "</s>"]


def test_samples_follow_the_chain():
    # bigram frequencies of a long sample = p(w'|w) = transition[class(w), class(w')] emission[w']
    lang = make_language(9, 3, seed=2)
    text = lang.sample(np.random.default_rng(0), 4000, 6)
    assert text.max() < lang.eos  # EOS is never a word
    counts = np.zeros((8, 8))
    np.add.at(counts, (text[:, :-1].ravel(), text[:, 1:].ravel()), 1)
    seen = counts.sum(1) > 1000
    freq = counts[seen] / counts[seen].sum(1, keepdims=True)
    assert seen.sum() >= 3
    np.testing.assert_allclose(freq, lang.word_transitions()[seen], atol=0.03)
    first = np.bincount(text[:, 0], minlength=8) / 4000
    np.testing.assert_allclose(first, lang.start[lang.word_class] * lang.emission, atol=0.03)
    # the floor is the sample's own mean next-token loss under the true chain
    logp = np.log(lang.word_transitions()[text[:, :-1], text[:, 1:]])
    assert abs(-logp.mean() - lang.next_token_floor(6)) < 0.02


@pytest.mark.parametrize("same_class", [True, False])
def test_pairs_follow_their_similarity_controls(same_class):
    spec = Network(
        **{**LANG, "response_len": 5},
        n_pairs=200,
        n_prompts=20,
        edit_distance=2,
        shared_prefix=2,
        same_class=same_class,
        append_eos=True,
    ).check_relations()
    d, lang = make_pairs(spec), language_of(spec)
    assert d.chosen.shape == (200, 6) and np.all(d.chosen[:, -1] == 11) and np.all(d.rejected[:, -1] == 11)
    assert np.all(d.edit_distances() == 2)
    assert np.array_equal(d.chosen[:, :2], d.rejected[:, :2])  # the shared prefix
    assert np.array_equal(d.prompts[:20], d.prompts[20:40])  # prompts shared round-robin
    edited = d.chosen != d.rejected
    same = lang.word_class[d.chosen[edited]] == lang.word_class[d.rejected[edited]]
    assert np.all(same) if same_class else 0.2 < same.mean() < 0.5  # a third of other words share a class
    # y_w continues its prompt in the language: every bigram has positive probability
    seq = np.hstack([d.prompts, d.chosen[:, :-1]])
    assert np.all(lang.word_transitions()[seq[:, :-1], seq[:, 1:]] > 0)


@pytest.mark.parametrize(
    ("arch", "extra", "steps", "lr"),
    [
        ("mlp", dict(layers=1, width=16, window=2), 30, 0.03),
        ("transformer", dict(layers=2, heads=2, width=16, context=8), 30, 0.03),
    ],
)
def test_pretraining_lowers_the_next_token_loss(arch, extra, steps, lr):
    # measured on held-out text (vocab 12 = 11 words + EOS, 3 classes, floor 1.211 nats): mlp 2.641 ->
    # 1.263, transformer 2.518 -> 1.316, from about log 12 = 2.485 to within 0.11 of the floor
    if arch == "transformer":
        pytest.importorskip("transformers")
    spec = Network(
        arch=arch, **LANG, pretrain_steps=steps, pretrain_lr=lr, pretrain_tokens=600, **extra
    ).check_relations()
    net, _ = build(spec, make_pairs(spec))
    held = text_batch(spec, corpus(spec, 3000, [99]), net)
    with torch.no_grad():
        h0 = float(next_token_loss(net, held))
    before, after = pretrain(net, spec)
    with torch.no_grad():
        h1 = float(next_token_loss(net, held))
    floor = language_of(spec).next_token_floor(6)
    assert abs(h0 - np.log(12)) < 0.25 and after < before - 1.0
    assert h1 < h0 - 1.0 and h1 - floor < 0.15, (h0, h1, floor)


def test_language_keys_are_validated():
    with pytest.raises(ValueError, match="shared_prefix is a control of pairs"):
        Network(shared_prefix=1).check_relations()
    with pytest.raises(ValueError, match="word_classes must be <= \\(vocab - 1\\) / 2 = 5"):
        Network(**{**LANG, "word_classes": 6}, same_class=True).check_relations()
    with pytest.raises(ValueError, match="edit_distance must be <= response_len - shared_prefix = 1"):
        Network(**LANG, shared_prefix=2, edit_distance=2).check_relations()
    with pytest.raises(ValueError, match="token_pool must be 0 with pairs"):
        Network(**LANG, token_pool=4).check_relations()
    with pytest.raises(ValueError, match="pairs must be one of"):
        Network(pairs="web")
    with pytest.raises(ValueError, match="pretrain_lr"):
        Network(pretrain_lr=0.0)


def test_a_pretraining_done_before_is_loaded_bit_for_bit_and_only_for_the_same_inputs(monkeypatch):
    import flowsim.dynamics.pretraining as pre

    spec = Network(arch="mlp", **LANG, layers=1, width=16, window=2, pretrain_steps=5, pretrain_tokens=200)
    monkeypatch.setattr(pre, "_DONE", type(pre._DONE)())
    fresh = []
    for _ in range(2):  # computed twice without the memo, then once more with it
        net, _ = build(spec, make_pairs(spec))
        pre._DONE.clear()
        fresh.append((pretrain(net, spec), net.state_dict()))
    net, _ = build(spec, make_pairs(spec))
    assert pretrain(net, spec) == fresh[0][0] and len(pre._DONE) == 1  # a hit: nothing new stored
    for k, v in net.state_dict().items():
        assert torch.equal(v, fresh[0][1][k]) and torch.equal(v, fresh[1][1][k])
    calls = []
    monkeypatch.setattr(pre, "_pretrain", lambda *a: calls.append(a) or (0.0, 0.0))
    for change in (dict(data_seed=1), dict(activation="relu"), dict(pretrain_lr=0.02), dict(init_seed=3)):
        other = Network(**{**spec.__dict__, **change})
        pretrain(build(other, make_pairs(other))[0], other)
    assert len(calls) == 4  # text, structure, optimiser and initialisation each make it a new pretraining


@pytest.mark.parametrize("pairs", ["uniform", "language"])
def test_every_pair_has_its_own_prompt_unless_prompts_are_shared(pairs):
    from flowsim.model.network.data import distinct_rows, make_pairs

    lang = LANG | {"pairs": pairs, "prompt_len": 2} if pairs == "language" else {"vocab": 5, "prompt_len": 2}
    repeats = 0
    for seed in range(40):
        spec = Network(**lang, n_pairs=8, data_seed=seed).check_relations()
        prompts = make_pairs(spec).prompts
        assert len(np.unique(prompts, axis=0)) == 8, seed
        shared = make_pairs(Network(**lang, n_pairs=8, n_prompts=3, data_seed=seed).check_relations()).prompts
        assert len(np.unique(shared, axis=0)) == 3 and np.array_equal(shared[3:6], shared[:3])
        if pairs == "uniform":  # a first draw without repeats is kept, as are the draws after it
            first = np.random.default_rng(seed).integers(0, 5, size=(8, 2))
            repeats += len(np.unique(first, axis=0)) < 8
            if len(np.unique(first, axis=0)) == 8:
                assert np.array_equal(prompts, first)
    assert pairs == "language" or 0 < repeats < 40  # the redrawing was exercised, and so was keeping
    with pytest.raises(RuntimeError, match="no 3 distinct rows"):
        distinct_rows(lambda k: np.zeros((k, 2), dtype=int), 3)


def test_more_pairs_than_distinct_prompts_are_refused():
    with pytest.raises(ValueError, match=r"n_pairs must draw at most 3\^prompt_len = 9 distinct prompts"):
        Network(vocab=3, prompt_len=2, n_pairs=10).check_relations()
    with pytest.raises(ValueError, match=r"n_prompts must draw at most 11\^prompt_len = 11"):
        Network(**LANG | {"prompt_len": 1}, n_pairs=20, n_prompts=12).check_relations()
    pool = dict(vocab=3, prompt_len=2, n_pairs=4, select="random", response_len=3)
    Network(**pool, pool=18, edit_distance=2).check_relations()  # shares of 9: just enough
    with pytest.raises(ValueError, match=r"pool must draw at most 3\^prompt_len = 9 .* = 10 pairs\)"):
        Network(**pool, pool=20, edit_distance=2).check_relations()
