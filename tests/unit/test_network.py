"""The network model: its exact reductions to ``logits`` and ``features``, TRL's DPO loss, the data, SFT.

Skipped without torch (the ``nn`` extra).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.optimisers import GD, Adam, AdamW, Momentum, run_discrete  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import sft, sft_weights, train_pairs  # noqa: E402
from flowsim.model.losses import DPO, IPO, SimPO  # noqa: E402
from flowsim.model.network.bridge import batch_loss  # noqa: E402
from flowsim.model.network.data import PairData, make_pairs  # noqa: E402
from flowsim.model.network.module import DTYPE, CausalMLP, PairBatch  # noqa: E402
from flowsim.model.objective import Objective  # noqa: E402
from flowsim.model.parameterisations import LogLinearFeatures, SoftmaxLogits  # noqa: E402
from flowsim.model.parameterisations.logits import sft_log_probs  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)  # as in the sweep's workers: at this size threads only cost (2.9 s vs 0.13 s for 60 SFT steps)

K, X = 6, 4  # responses (= the vocab) and the one prompt token
ONE_PAIR = PairData(np.array([[X]]), np.array([[0]]), np.array([[1]]))  # y_w = token 0, y_l = token 1
P0 = np.array([0.3, 0.5])
TABULAR = dict(vocab=K, prompt_len=1, response_len=1, window=1, layers=0, embedding="one-hot", readout_bias=False)


def tabular_net(p0=P0):
    """The network that is the logits model: the prompt's readout column = log p0 of all K responses."""
    spec = Network(**TABULAR)
    net = CausalMLP(spec)
    with torch.no_grad():
        net.readout.weight[:, X] = torch.as_tensor(sft_log_probs(p0, K), dtype=DTYPE)
    return spec, net, PairBatch(ONE_PAIR, spec.window, net.pad)


def flowsim_steps(loss, policy, opt, n):
    """theta_k of flowsim's own optimiser on flowsim's objective, k = 0..n."""
    obj, theta = Objective(loss, policy), policy.theta0
    state, out = opt.init(theta), [theta[0]]
    for k in range(1, n + 1):
        theta, state = opt.step(theta, obj.grad(theta), state, k)
        out.append(theta[0])
    return np.array(out)


@pytest.mark.parametrize("loss", [DPO(beta=0.5), IPO(beta=0.5), SimPO()], ids=lambda x: x.kind)
@pytest.mark.parametrize(
    "opt", [GD(lr=0.5), Momentum(lr=0.1), Adam(lr=0.05), AdamW(lr=0.05, weight_decay=0.1)], ids=lambda o: o.kind
)
def test_tabular_network_is_the_logits_model(loss, opt):
    # layers = 0, a one-hot prompt, one-token responses: the same trajectory as `logits`, to 1e-10
    _, net, batch = tabular_net()
    policy = SoftmaxLogits(K=K).bind(P0[None], P0[None])  # the standard reference: the SFT model
    want = flowsim_steps(loss, policy, opt, 60)
    log_ref = np.log(P0)[None]
    rec = train_pairs(
        net, batch, loss, opt, StopRule(max_steps=60, p2_floor=1e-12, stationary_tol=0.0), log_ref, path=True
    )
    assert rec.steps == 60 and rec.train_status == "timeout"
    lp = want - np.logaddexp.reduce(want, axis=1, keepdims=True)  # log softmax(theta_k)
    np.testing.assert_allclose(rec.path_logp[:, 0], lp[:, :2], rtol=0, atol=1e-10)
    theta_net = net.readout.weight[:, X].detach().numpy()
    np.testing.assert_allclose(theta_net - np.logaddexp.reduce(theta_net), lp[-1], atol=1e-10)


def test_tabular_network_record_matches_run_discrete():
    # the per-pair record (status, steps, crossings, p_w_min, finals) is run_discrete's on `logits`
    stop = StopRule(p2_floor=1e-3, p1_target=0.6, p2_target=0.2, max_steps=5000)
    _, net, batch = tabular_net(np.array([0.2, 0.6]))
    ref = run_discrete(DPO(beta=0.5), SoftmaxLogits(K=K).bind([[0.2, 0.6]], [[0.2, 0.6]]), GD(lr=0.5), stop)
    rec = train_pairs(net, batch, DPO(beta=0.5), GD(lr=0.5), stop, np.log([[0.2, 0.6]]))
    assert rec.status[0] == ref["status"][0] == "converged" and rec.steps == ref["steps"][0]
    for mine, theirs in (
        (rec.t_stop, ref["t_stop"]),
        (rec.track.t_w, ref["t_w"]),
        (rec.track.t_l, ref["t_l"]),
        (rec.track.p_w_min, ref["p_w_min"]),
        (np.exp(rec.logp[:, 0]), ref["p1_final"]),
        (np.exp(rec.logp[:, 1]), ref["p2_final"]),
        (rec.loss_final, ref["loss_final"]),
    ):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)
    assert rec.displaced[0] == ref["displaced"][0]


def test_log_linear_network_is_the_features_model():
    # layers = 0, frozen readout Phi and bias log p0, train the prompt's embedding: z = b + Phi theta
    par = LogLinearFeatures(K=K, d=3, cos_wl=0.6, norm_ratio=1.5)
    spec = Network(vocab=K, prompt_len=1, response_len=1, window=1, layers=0, width=3, train="embedding")
    net = CausalMLP(spec)
    with torch.no_grad():
        net.readout.weight.copy_(torch.as_tensor(np.array(par.phi)))
        net.readout.bias.copy_(torch.as_tensor(sft_log_probs(P0, K)))
        net.embed.weight[X] = 0.0
    batch = PairBatch(ONE_PAIR, 1, net.pad)
    for opt in (GD(lr=0.5), Adam(lr=0.05)):
        policy = par.bind(P0[None], P0[None])
        want = flowsim_steps(DPO(beta=0.5), policy, opt, 50)
        with torch.no_grad():
            net.embed.weight[X] = 0.0
        rec = train_pairs(net, batch, DPO(beta=0.5), opt, StopRule(max_steps=50), np.log(P0)[None], path=True)
        lp = policy.log_probs(want)[:, :2]
        np.testing.assert_allclose(rec.path_logp[:, 0], lp, rtol=0, atol=1e-10)
        np.testing.assert_allclose(net.embed.weight[X].detach().numpy(), want[-1], atol=1e-10)


def test_trl_dpo_loss_on_sequence_log_probs():
    # TRL's dpo_loss, loss_type "sigmoid" (trl/trainer/dpo_trainer.py < 0.29), written from its formula:
    # logits = (pi_w - pi_l) - (ref_w - ref_l);
    # losses = -logsigmoid(beta logits) (1 - ls) - logsigmoid(-beta logits) ls;  loss = losses.mean()
    rng = np.random.default_rng(3)
    pi = torch.tensor(-rng.uniform(1, 40, size=(64, 2)), dtype=DTYPE, requires_grad=True)
    ref = torch.as_tensor(-rng.uniform(1, 40, size=(64, 2)), dtype=DTYPE)
    F = torch.nn.functional
    for beta, ls in ((0.1, 0.0), (0.5, 0.2), (2.0, 0.45)):
        logits = (pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1])
        trl = (-F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls).mean()
        (g_trl,) = torch.autograd.grad(trl, pi)
        mine = batch_loss(DPO(beta=beta, label_smoothing=ls), pi - ref, ref)
        (g_mine,) = torch.autograd.grad(mine, pi)
        assert abs(mine.item() - trl.item()) <= 1e-12 * max(1.0, abs(trl.item()))
        np.testing.assert_allclose(g_mine.numpy(), g_trl.numpy(), rtol=1e-12, atol=1e-15)


def test_sequence_log_prob_is_the_sum_of_token_log_probs():
    spec = Network(vocab=7, prompt_len=2, response_len=3, window=2, layers=2, width=5, n_pairs=3)
    net, data = CausalMLP(spec), make_pairs(spec)
    got = PairBatch(data, spec.window, net.pad).log_probs(net).detach().numpy()
    for i in range(3):
        for j, y in enumerate((data.chosen[i], data.rejected[i])):
            seq = [net.pad] * spec.window + list(data.prompts[i]) + list(y)
            total = 0.0
            for t in range(3):
                end = spec.window + 2 + t
                ctx = torch.as_tensor(seq[end - spec.window : end])
                total += torch.log_softmax(net(ctx), -1)[y[t]].item()
            assert abs(got[i, j] - total) < 1e-12


def test_datasets_follow_their_controls():
    d = make_pairs(Network(vocab=10, response_len=4, edit_distance=3, n_pairs=50, n_prompts=5, token_pool=4))
    assert d.n_pairs == 50 and np.all(d.edit_distances() == 3)
    assert len({tuple(p) for p in d.prompts}) <= 5 and np.all(d.prompts[::5] == d.prompts[0])
    assert d.chosen.max() < 4 and d.rejected.max() < 4
    a, b = make_pairs(Network(n_pairs=8, data_seed=1)), make_pairs(Network(n_pairs=8, data_seed=1))
    assert np.array_equal(a.chosen, b.chosen) and np.array_equal(a.rejected, b.rejected)
    assert not np.array_equal(a.chosen, make_pairs(Network(n_pairs=8, data_seed=2)).chosen)


def test_sft_moves_the_start_as_asked():
    base = dict(n_pairs=6, sft_steps=60, sft_lr=0.05)
    starts = {}
    for name, extra in (("chosen", {}), ("mix", {"sft_mix": 1.0}), ("noisy", {"sft_noise": 0.5})):
        spec = Network(**base, **extra)
        net = CausalMLP(spec)
        batch = PairBatch(make_pairs(spec), spec.window, net.pad)
        before = batch.log_probs(net).detach().numpy()
        value = sft(net, batch, spec)
        starts[name] = (before, batch.log_probs(net).detach().numpy())
        if name != "noisy":  # the objective returned: the mean NLL of y_w (plus sft_mix times that of y_l)
            lp = starts[name][1]
            assert value == pytest.approx(-np.mean(lp[:, 0] + spec.sft_mix * lp[:, 1]), rel=1e-12)
    before, after = starts["chosen"]
    assert np.all(after[:, 0] > before[:, 0]) and np.exp(after[:, 0]).mean() > 0.5
    assert np.exp(starts["mix"][1][:, 1]).mean() > np.exp(after[:, 1]).mean()  # y_l learned too
    flipped = sft_weights(Network(**base, sft_noise=0.5), 6)[:, 1] == 1.0
    assert flipped.sum() == 3 and np.all(starts["noisy"][1][flipped, 1] > starts["noisy"][1][flipped, 0])


@pytest.mark.parametrize("kind", [{"sft": "none", "sft_steps": 60}, {"sft": "chosen", "sft_steps": 0}])
def test_no_sft_leaves_the_initialisation(kind):
    spec = Network(n_pairs=2, sft_lr=0.05, **kind)
    net = CausalMLP(spec)
    batch = PairBatch(make_pairs(spec), spec.window, net.pad)
    before = batch.log_probs(net).detach().numpy()
    assert np.isnan(sft(net, batch, spec))
    np.testing.assert_array_equal(batch.log_probs(net).detach().numpy(), before)


def test_sft_towards_a_target():
    spec = Network(n_pairs=4, sft="target", sft_steps=300, sft_lr=0.05)
    net = CausalMLP(spec)
    batch = PairBatch(make_pairs(spec), spec.window, net.pad)
    sft(net, batch, spec, target=np.array([0.4, 0.2]))
    p = np.exp(batch.log_probs(net).detach().numpy())
    np.testing.assert_allclose(p, np.broadcast_to([0.4, 0.2], p.shape), rtol=0.05)


def test_minibatches_and_a_dataset_of_pairs_train():
    spec = Network(n_pairs=8, batch_size=2, sft_steps=40, sft_lr=0.05)
    net = CausalMLP(spec)
    batch = PairBatch(make_pairs(spec), spec.window, net.pad)
    sft(net, batch, spec)
    lr0 = batch.log_probs(net).detach().numpy()
    rec = train_pairs(
        net, batch, DPO(beta=0.5), Adam(lr=0.01), StopRule(max_steps=100, p2_floor=1e-100), lr0, batch_size=2
    )
    assert rec.steps == 100 and np.mean(rec.loss_final) < np.mean(rec.loss_0)
    assert np.all(rec.h[:, 0] - rec.h[:, 1] > 0)


def test_network_spec_is_validated():
    with pytest.raises(ValueError, match="edit_distance must be <= response_len"):
        Network(response_len=2, edit_distance=3).check_relations()
    with pytest.raises(ValueError, match="sft must be one of"):
        Network(sft="rlhf")
    with pytest.raises(ValueError, match="layers must be"):
        Network(layers=-1)
