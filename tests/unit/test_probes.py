"""The predictors of displacement (issue 31): CHES against its definition, the first-order rates against a
measured gradient step on every model, the closed forms against autograd, edit distances by hand.

The oracle of ``ent_own`` and ``ent_own + ent_cross``: one gradient-descent step of lr 1e-7 on the
dataset's mean loss, the change of log pi(y_w) divided by lr (float64, rtol 1e-4).  Skipped without
torch (the ``nn`` extra); the transformer's cases also without transformers.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.engines.base import Task  # noqa: E402
from flowsim.dynamics.engines.network import train_one  # noqa: E402
from flowsim.dynamics.optimisers import GD  # noqa: E402
from flowsim.dynamics.record import PATH_FIELDS, PathTrack, StopRule, finish_rows  # noqa: E402
from flowsim.dynamics.training import sft  # noqa: E402
from flowsim.model.losses import DPO, IPO, SimPO  # noqa: E402
from flowsim.model.network import probes as net_probes  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.bridge import batch_loss  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.network.module import DTYPE, trainable  # noqa: E402
from flowsim.model.objective import Objective  # noqa: E402
from flowsim.model.parameterisations import MODELS, LogLinearFeatures, SoftmaxLogits  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402
from flowsim.model.probes import (  # noqa: E402
    PROBE_COLUMNS,
    RECORD_PROBES,
    START_PROBES,
    edit_distance,
    entanglement,
    token_overlap,
)

torch.set_num_threads(1)

LR, RTOL = 1e-7, 1e-4
HAS_TRANSFORMERS = importlib.util.find_spec("transformers") is not None
ARCHS = [
    "mlp",
    pytest.param("transformer", marks=pytest.mark.skipif(not HAS_TRANSFORMERS, reason="needs transformers")),
]
SIZES = {
    "mlp": dict(vocab=6, prompt_len=2, response_len=3, window=3, layers=1, width=8),
    "transformer": dict(arch="transformer", vocab=6, prompt_len=2, response_len=3, layers=1, heads=2, width=8),
}


# -- CHES -----------------------------------------------------------------------------------------


def _ches_by_definition(h, prompt_len, lengths):
    """CHES and its length-normalised form, pair by pair, from slices of hidden states (n, 2, L, d)."""
    out = []
    for hi, (lw, ll) in zip(h, lengths, strict=True):
        hp = hi[0, prompt_len - 1 : prompt_len - 1 + lw].sum(0)
        hm = hi[1, prompt_len - 1 : prompt_len - 1 + ll].sum(0)
        out.append((hp @ hm - hp @ hp, hp @ hm / (lw * ll) - hp @ hp / lw**2))
    return np.array(out).T


def _ches_like_razin(h, prompt_len):
    """ches/ches.py's recipe on unpadded sequences (n, L, d) per response: zero the prompt's positions but
    its last, drop the last position, sum; lengths L - P."""
    keep = (np.arange(h.shape[-2]) >= prompt_len - 1)[:, None]
    summed = (h * keep)[:, :, :-1].sum(-2)
    hp, hm = summed[:, 0], summed[:, 1]
    n_resp = h.shape[-2] - prompt_len
    ip, sq = np.sum(hp * hm, -1), np.sum(hp * hp, -1)
    return np.array([ip - sq, ip / n_resp**2 - sq / n_resp**2])


def test_ches_is_its_definition_on_padded_hand_built_states():
    rng = np.random.default_rng(3)
    prompt_len, length = 2, 7
    lengths = np.array([[5, 5], [3, 4], [1, 2]])
    h = rng.normal(size=(3, 2, length, 4))
    mask = net_probes.response_mask(prompt_len, lengths, length)
    h[~mask & (np.arange(length) > prompt_len - 1)] = 1e6  # right padding (and the last token): never summed
    got = np.array(net_probes.masked_ches(h, mask))
    np.testing.assert_allclose(got, _ches_by_definition(h, prompt_len, lengths), rtol=1e-12)


def test_ches_matches_razin_et_al_on_unpadded_sequences():
    rng = np.random.default_rng(4)
    h = rng.normal(size=(5, 2, 6, 3))  # prompt 2, responses 4: sequences end where the responses end
    mask = net_probes.response_mask(2, np.full((5, 2), 4), 6)
    np.testing.assert_allclose(np.array(net_probes.masked_ches(h, mask)), _ches_like_razin(h, 2), rtol=1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_hidden_states_are_the_heads_input(arch):
    # the summed state is the LM head's input: the readout of it gives the logits that score y
    spec = Network(**SIZES[arch], n_pairs=2).check_relations()
    net, batch = build(spec, make_pairs(spec))
    post, pre, final = (t[0] for t in net_probes.HIDDEN[type(batch)](net_probes.Members.of(net), batch))
    head = net.readout if arch == "mlp" else net.lm.lm_head
    lp = torch.log_softmax(head(post), -1)
    tokens = batch.tokens if arch == "mlp" else batch.ids[..., spec.prompt_len :]
    got = lp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(-1)
    torch.testing.assert_close(got, batch.log_probs(net), rtol=1e-12, atol=1e-12)
    if arch == "transformer":  # the hook's state is hidden_states[-1]; the one before ln_f differs
        out = net.lm(input_ids=batch.ids.reshape(-1, batch.ids.shape[-1]), output_hidden_states=True)
        last = out.hidden_states[-1].reshape(*batch.ids.shape, -1)[:, :, spec.prompt_len - 1 : -1]
        torch.testing.assert_close(post, last, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(final, out.hidden_states[-1].reshape(*batch.ids.shape, -1)[:, :, -1])
        assert not torch.allclose(pre, post)
    else:  # the final token's state: the readout of it is the next token's distribution after x + y
        ctx = torch.cat([batch.ctx[:, :, -1, 1:], batch.tokens[:, :, -1:]], -1)  # the window ending at y's last
        torch.testing.assert_close(net.readout(final), net(ctx), rtol=1e-12, atol=1e-12)


# -- first-order rates: measured against one small gradient step ---------------------------------


def _sft_net(spec):
    net, batch = build(spec, make_pairs(spec))
    sft(net, batch, spec)
    return net, batch


def _measured_rate(net, batch, loss, log_ref):
    """(log pi(y_w) after one GD step of lr LR on the mean loss - before) / LR, per pair."""
    net = copy.deepcopy(net)
    log_ref_t = torch.as_tensor(log_ref, dtype=DTYPE)
    logp0 = batch.log_probs(net)
    batch_loss(loss, logp0 - log_ref_t, log_ref_t).backward()
    with torch.no_grad():
        for p in trainable(net):
            p -= LR * p.grad
        return ((batch.log_probs(net) - logp0)[:, 0] / LR).numpy()


@pytest.mark.parametrize("loss", [DPO(beta=0.5), SimPO(beta=2.0, simpo_gamma=0.5)], ids=["dpo", "simpo"])
@pytest.mark.parametrize("n_pairs", [1, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_network_rates_are_the_measured_first_order_change(arch, n_pairs, loss):
    spec = Network(**SIZES[arch], n_pairs=n_pairs, token_pool=3, sft_steps=15, sft_lr=0.03).check_relations()
    net, batch = _sft_net(spec)
    with torch.no_grad():
        log_ref = batch.log_probs(net).numpy() + np.random.default_rng(0).normal(0, 0.5, (n_pairs, 2))
    got = net_probes.member(net_probes.start_probes(net_probes.Members.of(net), batch, spec, loss, log_ref[None]), 0)
    measured = _measured_rate(net, batch, loss, log_ref)
    np.testing.assert_allclose(got["dlogpw_dt0"], measured, rtol=RTOL)
    np.testing.assert_allclose(got["ent_own"] + got["ent_cross"], got["dlogpw_dt0"], rtol=1e-12)
    if n_pairs == 1:
        assert got["ent_cross"].tolist() == [0.0]
        np.testing.assert_allclose(got["ent_own"], measured, rtol=RTOL)
    else:  # the other pairs pull: without their terms the rate is not the measured one
        assert np.all(np.abs(got["ent_cross"]) > 1e-3 * np.abs(measured))


@pytest.mark.parametrize("arch", ARCHS)
def test_network_rows_record_the_rates_and_the_first_step(arch):
    # through the engine: the rows' dlogpw_first (the record's first GD step) is their dlogpw_dt0
    spec = Network(**SIZES[arch], n_pairs=3, token_pool=3, sft_steps=15, sft_lr=0.03).check_relations()
    task = Task(DPO(beta=0.5), spec, GD(lr=LR), StopRule(max_steps=3), reference="initial")
    probes = train_one(task, None)[-1]
    assert set(probes) == set(PROBE_COLUMNS)
    np.testing.assert_allclose(probes["dlogpw_first"], probes["dlogpw_dt0"], rtol=RTOL)
    np.testing.assert_array_equal(probes["pair_edit_distance"], make_pairs(spec).edit_distances())


POLICY_MODELS = [
    SoftmaxLogits(K=5, zipf=1.0),
    LogLinearFeatures(K=5, d=3, cos_wl=0.6, norm_ratio=1.5),
    LogLinearFeatures(K=6, d=4, cos_wl=-0.3, train_bias=True),
]


def _model_id(m) -> str:
    return m.kind + ("+bias" if getattr(m, "train_bias", False) else "")


STARTS = np.array([[0.1, 0.1], [0.1, 0.6], [0.5, 0.2], [0.7, 0.25]])
REFS = np.array([[0.2, 0.3], [0.1, 0.6], [0.4, 0.05], [0.5, 0.5]])


@pytest.mark.parametrize("loss", [DPO(beta=0.5), SimPO(beta=2.0, simpo_gamma=0.5), IPO(beta=0.3)], ids=str)
@pytest.mark.parametrize("model", POLICY_MODELS, ids=lambda m: _model_id(m))
def test_policy_rates_are_the_measured_first_order_change(model, loss):
    cols = model.start_columns(STARTS, REFS, loss)
    pol = model.bind(STARTS, REFS)
    theta = pol.theta0
    theta1 = theta - LR * Objective(loss, pol).grad(theta)
    measured = (pol.log_probs(theta1)[:, 0] - pol.log_probs(theta)[:, 0]) / LR
    np.testing.assert_allclose(cols["ent_own"], measured, rtol=RTOL)
    assert np.all(cols["ent_cross"] == 0.0) and set(cols) == set(START_PROBES) - {"dlogpw_first"}


def _autograd_gradients(model, p0, ref):
    """grad_theta log pi(y_w), log pi(y_l) at the start, by torch autograd of the model's own formula."""
    pol = model.bind(p0, ref)
    theta = torch.tensor(pol.theta0, dtype=DTYPE, requires_grad=True)
    if model.kind == "logits":
        logits = theta
    else:
        d = model.d
        bias = theta[d:] if model.train_bias else torch.as_tensor(pol.bias)
        logits = bias + torch.as_tensor(np.array(model.phi)) @ theta[:d]
    lp = torch.log_softmax(logits, -1)
    return [torch.autograd.grad(lp[k], theta, retain_graph=True)[0].numpy() for k in (0, 1)]


@pytest.mark.parametrize("model", POLICY_MODELS, ids=lambda m: _model_id(m))
def test_closed_forms_are_autograd(model):
    cols = model.start_columns(STARTS, REFS, DPO(beta=0.5))
    for i, (p0, ref) in enumerate(zip(STARTS, REFS, strict=True)):
        g_w, g_l = _autograd_gradients(model, p0, ref)
        np.testing.assert_allclose([cols["gw_sq"][i], cols["gw_gl"][i]], [g_w @ g_w, g_w @ g_l], rtol=1e-12)
    phi = np.eye(model.K) if model.kind == "logits" else model.phi
    ches = phi[0] @ phi[1] - phi[0] @ phi[0]
    np.testing.assert_allclose(cols["ches"], ches, rtol=1e-12)
    np.testing.assert_allclose(cols["hidden_ip"], phi[0] @ phi[1], rtol=1e-12)
    pol = model.bind(STARTS, REFS)
    np.testing.assert_allclose(cols["top_other_0"], pol.probs(pol.theta0)[:, 2:].max(1), rtol=1e-12)


@pytest.mark.parametrize("kind", ["logits", "features"])
def test_cross_pair_rates_on_a_shared_softmax_are_the_measured_change(kind):
    # a dataset of 4 pairs (w_i, l_i) over one softmax's K = 6 responses: the closed-form gradients'
    # kernel in entanglement() against a GD step of the mean DPO loss, by autograd
    rng = np.random.default_rng(7)
    k, d = 6, 4
    phi = np.eye(k) if kind == "logits" else rng.normal(size=(k, d))
    theta0 = rng.normal(size=phi.shape[1])
    bias = rng.normal(size=k)
    pairs = np.array([[0, 1], [2, 1], [3, 4], [0, 5]])
    log_ref = rng.normal(-1.5, 0.3, size=(4, 2))
    loss = DPO(beta=0.7)

    def log_pi(theta):
        return torch.log_softmax(torch.as_tensor(bias) + torch.as_tensor(phi) @ theta, -1)

    p = np.exp(log_pi(torch.as_tensor(theta0)).numpy())
    g = phi[pairs] - (p @ phi)[None, None]  # g_y = phi_y - E_p[phi]: (4, 2, d)
    kernel = np.einsum("id,jkd->ijk", g[:, 0], g)
    h0 = np.log(p)[pairs] - log_ref
    ab = -loss.grad(h0, log_ref)
    rates = entanglement(kernel, ab[:, 0], ab[:, 1])
    theta = torch.tensor(theta0, requires_grad=True)
    h = log_pi(theta)[torch.as_tensor(pairs)] - torch.as_tensor(log_ref)
    batch_loss(loss, h, torch.as_tensor(log_ref)).backward()
    theta1 = theta.detach() - LR * theta.grad
    measured = ((log_pi(theta1) - log_pi(theta.detach()))[pairs[:, 0]] / LR).numpy()
    np.testing.assert_allclose(rates["ent_own"] + rates["ent_cross"], measured, rtol=RTOL)
    assert not np.allclose(rates["ent_own"], measured, rtol=1e-2)  # the cross terms matter here


# -- the sweep's rows ----------------------------------------------------------------------------


def test_policy_rows_measure_the_first_step_and_the_squeeze():
    from flowsim.experiment.config import parse_experiment
    from flowsim.experiment.sweep import chunks, run_chunk

    grid = {"p1": {"start": 0.1, "stop": 0.5, "num": 2}, "p2": {"start": 0.1, "stop": 0.4, "num": 2}}
    for dyn, stop in (({"kind": "gd", "gd": {"lr": LR}}, {"max_steps": 1}), ({"kind": "flow"}, {"t_max": 1.0})):
        model = {"kind": "features", "K": 5, "d": 3, "cos_wl": 0.6, "zipf": 1.0}
        doc = {"name": "s", "model": model, "loss": {"kind": "dpo"}}
        exp = parse_experiment(doc | {"dynamics": dyn, "grid": grid, "stop": stop})
        rows = run_chunk(exp, next(chunks(exp, 100)))
        np.testing.assert_allclose(rows["dlogpw_first"], rows["dlogpw_dt0"], rtol=RTOL)
        assert set(PROBE_COLUMNS) <= set(rows.columns)
        assert np.all(np.isnan(rows["pair_edit_distance"]))


def test_record_gain_is_the_start_top_others():
    p0 = np.array([[0.2, 0.3, 0.1, 0.25, 0.15]])  # the start's top other: response 3
    track = PathTrack(p0, StopRule())
    end = np.array([[0.3, 0.1, 0.35, 0.2, 0.05]])  # now response 2 is the top other; 3 lost 0.05
    cols = finish_rows(end, np.zeros((1, 2)), 1.0, track)
    np.testing.assert_allclose(cols["top_other_gain"], [-0.05])
    assert cols["top_other"].tolist() == [2.0]


def test_top_other_is_the_most_likely_other_response():
    spec = Network(**SIZES["mlp"], n_pairs=3, token_pool=2, sft_steps=30, sft_lr=0.05).check_relations()
    net, batch = _sft_net(spec)
    data = batch.data
    every = np.array(list(itertools.product(range(spec.vocab), repeat=spec.response_len)))
    one = net_probes.Members.of(net)
    best, p_best = (v[0] for v in net_probes.top_other(one, spec, data))
    for i in range(data.n_pairs):
        logp = net_probes.score(one, spec, np.repeat(data.prompts[i : i + 1], len(every), 0), every[None])[0]
        np.testing.assert_allclose(np.exp(logp).sum(), 1.0, rtol=1e-12)  # the fixed-length responses: a distribution
        other = ~(np.all(every == data.chosen[i], 1) | np.all(every == data.rejected[i], 1))
        assert best[i].tolist() == every[other][np.argmax(logp[other])].tolist()
        np.testing.assert_allclose(p_best[i], np.exp(logp[other].max()), rtol=1e-12)


def test_beam_search_finds_the_top_other_when_wide_enough(monkeypatch):
    spec = Network(**SIZES["mlp"], n_pairs=3, token_pool=2, sft_steps=30, sft_lr=0.05).check_relations()
    net, batch = _sft_net(spec)
    one = net_probes.Members.of(net)
    exact = net_probes.top_other(one, spec, batch.data)
    monkeypatch.setattr(net_probes, "EXACT_LIMIT", 0)
    monkeypatch.setattr(net_probes, "BEAM", spec.vocab**spec.response_len)
    beam = net_probes.top_other(one, spec, batch.data)
    np.testing.assert_array_equal(beam[0], exact[0])
    np.testing.assert_allclose(beam[1], exact[1], rtol=1e-12)


# -- edit distance, token overlap, declarations ----------------------------------------------------


@pytest.mark.parametrize(
    ("u", "v", "dist", "overlap"),
    [
        ([1, 2, 3], [1, 2, 3], 0, 1.0),
        ([1, 2, 3], [3, 2, 1], 2, 1.0),  # two substitutions; the same multiset
        ([1, 2, 3, 4], [1, 3, 4], 1, 0.75),  # one deletion
        ([5, 5, 6], [6, 5, 5], 2, 1.0),
        ([1, 1, 2], [1, 2, 2], 1, 2 / 3),
        ([], [7, 8], 2, 0.0),
        ([1, 2], [3, 4, 5], 3, 0.0),
    ],
)
def test_edit_distance_and_overlap_by_hand(u, v, dist, overlap):
    assert edit_distance(u, v) == dist == edit_distance(v, u)
    assert token_overlap(u, v) == pytest.approx(overlap, abs=1e-15)


def test_models_declare_their_predictors():
    assert set(RECORD_PROBES) <= set(PATH_FIELDS)
    for kind, cls in MODELS.items():
        assert cls.probe_columns in ((), PROBE_COLUMNS), kind
        if cls.probe_columns:
            assert set(START_PROBES) <= set(cls.extra_columns), kind
            assert not set(RECORD_PROBES) & set(cls.extra_columns), kind
    assert MODELS["ratio"].probe_columns == ()
