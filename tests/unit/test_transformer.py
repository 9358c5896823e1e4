"""The network's transformer (arch = "transformer"): indexing, causality, its exact special case, the
trainer applied unchanged, order-1 convergence of GD to the flow, and its validation.

Skipped without torch or transformers (the ``nn`` extra).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", reason="arch = transformer needs transformers: pip install -e '.[nn]'")

from flowsim.dynamics.optimisers import GD, Adam, Momentum  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import initial_field, sft, train_pairs  # noqa: E402
from flowsim.model.losses import DPO, IPO, SimPO  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.data import PairData, make_pairs  # noqa: E402
from flowsim.model.network.module import DTYPE, trainable  # noqa: E402
from flowsim.model.network.transformer import CausalTransformer, SequenceBatch  # noqa: E402
from flowsim.model.objective import Objective  # noqa: E402
from flowsim.model.parameterisations import SoftmaxLogits  # noqa: E402
from flowsim.model.parameterisations.logits import sft_log_probs  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)

SMALL = dict(arch="transformer", vocab=9, layers=2, heads=2, width=16, context=8, prompt_len=2, response_len=3)
K, X = 6, 4  # the special case's vocab and prompt token
P0 = np.array([0.3, 0.5])


def test_sequence_log_prob_is_the_causal_sum_of_token_log_probs():
    # each response token scored from a forward over its prefix alone: right positions, and causal
    spec = Network(**SMALL, n_pairs=3).check_relations()
    data = make_pairs(spec)
    net, batch = build(spec, data)
    assert isinstance(net, CausalTransformer) and isinstance(batch, SequenceBatch)
    got = batch.log_probs(net).detach().numpy()
    for i in range(3):
        for j, y in enumerate((data.chosen[i], data.rejected[i])):
            seq = [*data.prompts[i], *y]
            total = sum(torch.log_softmax(net(torch.as_tensor(seq[: 2 + t])), -1)[-1, y[t]].item() for t in range(3))
            assert abs(got[i, j] - total) < 1e-12
    rows = torch.as_tensor([2, 0])
    np.testing.assert_array_equal(batch.log_probs(net, rows).detach().numpy(), got[[2, 0]])


def test_same_seed_same_network_float64():
    spec = Network(**SMALL)
    a, b = CausalTransformer(spec), CausalTransformer(spec)
    assert all(p.dtype == DTYPE for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = CausalTransformer(Network(**SMALL, init_seed=1))
    assert not torch.equal(a.lm.transformer.wte.weight, c.lm.transformer.wte.weight)


def _zero_layer_net():
    """layers = 0, untied head, train = readout; the head set so that z0 = W phi = the logits model's theta0."""
    spec = Network(
        arch="transformer",
        vocab=K,
        prompt_len=1,
        response_len=1,
        layers=0,
        width=8,
        tie_embeddings=False,
        train="readout",
    ).check_relations()
    net, batch = build(spec, PairData(np.array([[X]]), np.array([[0]]), np.array([[1]])))
    with torch.no_grad():
        phi = net.lm.transformer(input_ids=torch.as_tensor([[X]])).last_hidden_state[0, 0]
        theta0 = torch.as_tensor(sft_log_probs(P0, K), dtype=DTYPE)
        net.lm.lm_head.weight.copy_(torch.outer(theta0, phi) / phi.dot(phi))
    return net, batch, float(phi.dot(phi))


@pytest.mark.parametrize("loss", [DPO(beta=0.5), IPO(beta=0.5), SimPO()], ids=lambda x: x.kind)
@pytest.mark.parametrize("kind", ["gd", "momentum"])
def test_zero_layer_transformer_is_the_logits_model(loss, kind):
    # z = W phi with phi = LN(wte[x] + wpe[0]) fixed: every update of W is g phi^T, so z moves as the
    # logits model's theta under the same optimiser at lr * |phi|^2 -- exactly, to 1e-10
    net, batch, phi2 = _zero_layer_net()
    assert [p.shape for p in trainable(net)] == [net.lm.lm_head.weight.shape]
    lr = 0.05 if kind == "gd" else 0.02  # |phi|^2 ~ width: the twin's lr ~ 0.4, 0.16
    opt, twin = (GD(lr=lr), GD(lr=lr * phi2)) if kind == "gd" else (Momentum(lr=lr), Momentum(lr=lr * phi2))
    policy = SoftmaxLogits(K=K).bind(P0[None], P0[None])
    obj, theta = Objective(loss, policy), policy.theta0
    state, want = twin.init(theta), [theta[0]]
    for k in range(1, 41):
        theta, state = twin.step(theta, obj.grad(theta), state, k)
        want.append(theta[0])
    want = np.array(want)
    lp = want - np.logaddexp.reduce(want, axis=1, keepdims=True)
    rec = train_pairs(
        net, batch, loss, opt, StopRule(max_steps=40, p2_floor=1e-12, stationary_tol=0.0), np.log(P0)[None], path=True
    )
    assert rec.steps == 40
    np.testing.assert_allclose(rec.path_logp[:, 0], lp[:, :2], rtol=0, atol=1e-10)


def test_sft_then_dpo_train_the_transformer_unchanged():
    spec = Network(**SMALL, n_pairs=4, sft_steps=30, sft_lr=0.02).check_relations()
    net, batch = build(spec, make_pairs(spec))
    before = batch.log_probs(net).detach().numpy()
    sft(net, batch, spec)
    logp0 = batch.log_probs(net).detach().numpy()
    assert np.all(logp0[:, 0] > before[:, 0])
    rec = train_pairs(net, batch, DPO(beta=0.5), Adam(lr=0.01), StopRule(max_steps=30, p2_floor=1e-100), logp0)
    assert rec.steps == 30 and np.mean(rec.loss_final) < np.mean(rec.loss_0)
    assert np.all(rec.h[:, 0] - rec.h[:, 1] > 0)


def test_small_lr_gd_approaches_the_flow_at_order_one():
    # GD to t = 0.16 at lr eta vs at eta / 2: the gap in log pi halves with eta (order 1; measured
    # gaps 6.6e-3, 3.5e-3, 1.8e-3, fitted slope 0.95), and the first step's velocity is
    # initial_field's d(p_w, p_l)/dt
    spec = Network(**SMALL, n_pairs=3, sft="none").check_relations()
    loss, t_end = DPO(beta=0.1), 0.16
    etas = np.array([0.02, 0.01, 0.005, 0.0025])
    finals = []
    for eta in etas:
        net, batch = build(spec, make_pairs(spec))
        log_ref = batch.log_probs(net).detach().numpy()
        v0, _ = initial_field(net, batch, loss, log_ref)
        stop = StopRule(max_steps=round(t_end / eta), p2_floor=1e-300, stationary_tol=0.0)
        rec = train_pairs(net, batch, loss, GD(lr=float(eta)), stop, log_ref, path=True)
        assert rec.steps == round(t_end / eta)
        finals.append(rec.logp)
    fd = (np.exp(rec.path_logp[1]) - np.exp(rec.path_logp[0])) / etas[-1]
    gaps = [np.max(np.abs(a - b)) for a, b in itertools.pairwise(finals)]
    slope = np.polyfit(np.log(etas[:-1]), np.log(gaps), 1)[0]
    assert 0.9 < slope < 1.1, (gaps, slope)
    assert np.max(np.abs(fd - v0)) < 0.02 * np.max(np.abs(v0))


def test_transformer_spec_is_validated():
    with pytest.raises(ValueError, match="arch must be one of"):
        Network(arch="rnn")
    with pytest.raises(ValueError, match="heads must divide width = 16"):
        Network(arch="transformer", heads=3).check_relations()
    with pytest.raises(ValueError, match="context must be >= prompt_len \\+ response_len = 5"):
        Network(arch="transformer", context=4).check_relations()
    with pytest.raises(ValueError, match="tie_embeddings must be false"):
        Network(arch="transformer", train="readout").check_relations()
    with pytest.raises(ValueError, match="tie_embeddings must be true or false"):
        Network(tie_embeddings="no")
    Network(heads=3).check_relations()  # the MLP ignores the transformer's keys


def test_without_transformers_the_error_names_the_extra(monkeypatch):
    import flowsim.model.parameterisations.network as mod

    monkeypatch.setattr(mod, "transformers_available", lambda: False)
    with pytest.raises(ValueError, match=r"arch needs transformers, which is not installed: pip install -e \"\.\[nn\]"):
        Network(arch="transformer")
    Network()  # the MLP does not need it


def test_train_names_the_trained_parts():
    nets = {
        train: CausalTransformer(Network(**SMALL, train=train, tie_embeddings=False))
        for train in ("embedding", "readout")
    }
    names = {train: [k for k, p in net.named_parameters() if p.requires_grad] for train, net in nets.items()}
    assert names == {
        "embedding": ["lm.transformer.wte.weight", "lm.transformer.wpe.weight"],
        "readout": ["lm.lm_head.weight"],
    }
    assert len(trainable(CausalTransformer(Network(**SMALL)))) == 2 + 12 * 2 + 2  # wte, wpe, 12 per block, ln_f
