"""The batched ensemble trains each member as the one-at-a-time loop does, stop rule included.

* the stacked forwards (batched parameter tensors) equal the modules member by member;
* the network engine's rows (one ensemble per chunk) equal :func:`run_loop`'s (``train_one`` per
  start) to 1e-10, for the MLP and the transformer, GD, momentum, Adam and AdamW, full and
  mini-batches, and with every stop status in one ensemble;
* a member's rows do not depend on which members train beside it (members that stop early leave
  the stack without changing the others; Adam's step count stays each member's own);
* ``train_ensemble`` (no stop but the step count) equals ``train_pairs`` one at a time;
* the probes of a stack of members (every predictor column at once) are each member's alone, and
  its per-sequence gradients are ``jacrev`` of the member's own module.

Skipped without torch; the transformer's cases also without transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.engines.base import Task  # noqa: E402
from flowsim.dynamics.engines.network import Network as NetworkEngine  # noqa: E402
from flowsim.dynamics.engines.network import ensemble_rows, run_loop  # noqa: E402
from flowsim.dynamics.ensemble import Stack, train_ensemble  # noqa: E402
from flowsim.dynamics.optimisers import GD, Adam, AdamW, Momentum  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import sft, train_pairs  # noqa: E402
from flowsim.model.losses import DPO, IPO  # noqa: E402
from flowsim.model.network import probes  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.network.probes import Members, end_probes, member, pair_gradients, start_probes  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)

SIZES = {"mlp": {}, "transformer": dict(layers=2, heads=2, width=16, context=8)}
#: Starts (SFT targets (p_w0, p_l0)) of the engine's cases: they stop at different steps.
STARTS = np.array([[0.05, 0.6], [0.3, 0.2], [0.6, 0.05], [0.2, 0.4], [0.4, 0.5]])


@dataclass(frozen=True)
class Poisoned(DPO):
    """DPO whose loss (or gradient) is NaN for a pair once its margin h_w - h_l reaches 1.5."""

    kind = "poisoned"
    where: str = "value"

    def value(self, h, log_ref=0.0):
        out = super().value(h, log_ref)
        return np.where(self._hit(h), np.nan, out) if self.where == "value" else out

    def grad(self, h, log_ref=0.0):
        out = super().grad(h, log_ref)
        return np.where(self._hit(h)[..., None], np.nan, out) if self.where == "grad" else out

    @staticmethod
    def _hit(h):
        h = np.asarray(h, dtype=float)
        return h[..., 0] - h[..., 1] >= 1.5


def needs(arch: str) -> None:
    if arch == "transformer":
        pytest.importorskip("transformers")


def assert_rows_equal(a: dict, b: dict, atol: float = 1e-10) -> None:
    """Every column of two engines' rows: numbers to ``atol`` (NaN where NaN), the rest exactly."""
    assert a.keys() == b.keys()
    for k in b:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if k == "path":
            for p, q in zip(x, y, strict=True):
                np.testing.assert_allclose(json.loads(p or "[]"), json.loads(q or "[]"), rtol=0, atol=atol, err_msg=k)
        elif x.dtype.kind in "fc" or (x.dtype == object and all(isinstance(v, float) for v in x.tolist())):
            x, y = x.astype(float), y.astype(float)
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=k)
        else:
            assert x.tolist() == y.tolist(), k


def task_of(arch: str, optimiser, stop: StopRule, loss=None, **model) -> Task:
    spec = Network(
        arch=arch, n_pairs=4, sft="target", sft_steps=20, sft_lr=0.02, path_points=4, **SIZES[arch] | model
    ).check_relations()
    return Task(loss or DPO(beta=0.5), spec, optimiser, stop, reference="initial")


# -- the stacked forwards ---------------------------------------------------------------------------


def random_members(spec: Network, n: int):
    """n modules of ``spec`` with random weights (their init perturbed), and the dataset's batch."""
    nets = []
    for i in range(n):
        net, batch = build(spec.__class__(**spec.__dict__ | {"init_seed": i}), make_pairs(spec))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.5 * torch.randn_like(p))
        nets.append(net)
    return nets, batch


@pytest.mark.parametrize(
    ("arch", "model"),
    [
        ("mlp", {}),
        ("mlp", dict(layers=0, readout_bias=False)),
        ("mlp", dict(layers=2, activation="gelu", embedding="one-hot")),
        ("mlp", dict(activation="relu", train="readout")),
        ("transformer", {}),
        ("transformer", dict(layers=1, tie_embeddings=False, heads=4)),
        ("transformer", dict(pairs="language", append_eos=True, prompt_len=3)),
    ],
)
def test_the_stacked_forward_is_each_module(arch, model):
    needs(arch)
    spec = Network(arch=arch, n_pairs=3, **SIZES[arch] | model).check_relations()
    nets, batch = random_members(spec, 3)
    stack = Stack(nets, [batch] * 3)
    x = stack.data["ids" if arch == "transformer" else "ctx"]
    with torch.no_grad():
        got = stack.forward(x)
        want = torch.stack([net(x[i]) for i, net in enumerate(nets)])
        logp = stack.log_probs()
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(logp.numpy(), [batch.log_probs(n).detach().numpy() for n in nets], rtol=0, atol=1e-12)
    assert float(torch.max(torch.abs(want[0] - want[1]))) > 1e-2  # the members differ


# -- the engine: ensemble rows == loop rows ---------------------------------------------------------


@pytest.mark.parametrize("arch", ["mlp", pytest.param("transformer", marks=pytest.mark.slow)])
@pytest.mark.parametrize(
    ("optimiser", "batch_size"),
    [(GD(lr=0.1), 0), (Momentum(lr=0.05, momentum=0.9), 0), (Adam(lr=0.01), 0), (AdamW(lr=0.01, weight_decay=0.1), 2)],
    ids=["gd", "momentum", "adam", "adamw-minibatch"],
)
def test_the_engine_rows_are_the_loop_rows(arch, optimiser, batch_size):
    needs(arch)
    task = task_of(arch, optimiser, StopRule(loss_target=0.2, max_steps=60), batch_size=batch_size, batch_seed=3)
    got = NetworkEngine().run(task, STARTS, STARTS.copy())
    assert_rows_equal(got, run_loop(task, STARTS, STARTS.copy()))
    steps = got["steps"][:: task.model.n_pairs]
    assert steps.min() > 0 and len(set(steps.tolist())) > 1, steps  # trained, and stopped at different steps


#: A stop rule for each status but diverged (GD at lr 0.1 from :data:`STARTS`): members end there.
STATUS_RULES = {
    "converged": dict(p2_floor=0.1, p2_target=0.1),
    "reached_loss": dict(loss_target=0.3),
    "reached_margin": dict(margin_target=1.0),
    "stationary": dict(stationary_tol=0.5),
    "timeout": dict(max_steps=12),
}


@pytest.mark.parametrize("status", [*STATUS_RULES, "diverged-value", "diverged-grad"])
def test_every_stop_status_is_the_loops(status):
    if status.startswith("diverged"):  # a pair's loss or gradient turns NaN at margin 1.5
        task = task_of("mlp", GD(lr=0.05), StopRule(max_steps=60), loss=Poisoned(beta=0.5, where=status[9:]))
    else:
        task = task_of("mlp", GD(lr=0.1), StopRule(**{"max_steps": 60} | STATUS_RULES[status]))
    got = NetworkEngine().run(task, STARTS, STARTS.copy())
    assert status.split("-")[0] in set(got["train_status"])
    assert_rows_equal(got, run_loop(task, STARTS, STARTS.copy()))
    if status.startswith("diverged"):  # members diverge at different steps; the others go on
        assert len(set(got["steps"].tolist())) > 1


def test_the_stops_mix_in_one_ensemble():
    """Members stopping for different reasons at different steps, in one stack, are the loop's."""
    stop = StopRule(loss_target=0.3, margin_target=1.3, p2_floor=0.1, p2_target=0.1, stationary_tol=0.3, max_steps=8)
    task = task_of("mlp", GD(lr=0.1), stop)
    starts = np.vstack([STARTS, [[0.1, 0.1], [0.05, 0.15]]])
    got = NetworkEngine().run(task, starts, starts.copy())
    assert {"converged", "reached_margin", "timeout"} <= set(got["train_status"])
    assert len(set(got["steps"].tolist())) >= 3
    assert_rows_equal(got, run_loop(task, starts, starts.copy()))


@pytest.mark.parametrize("arch", ["mlp", pytest.param("transformer", marks=pytest.mark.slow)])
@pytest.mark.parametrize("optimiser", [Adam(lr=0.02), Momentum(lr=0.1, momentum=0.9)], ids=["adam", "momentum"])
def test_a_member_does_not_depend_on_the_others(arch, optimiser):
    """The last member to stop has the same rows, bit for bit, alone and after the others left the stack
    (their parameters, gradients and optimiser state cut out; Adam's step count its own)."""
    needs(arch)
    task = task_of(arch, optimiser, StopRule(loss_target=0.1, max_steps=60))
    together = ensemble_rows(task, list(STARTS), STARTS)
    steps = [int(r["steps"][0]) for r in together]
    last = int(np.argmax(steps))
    assert min(steps) < steps[last], steps  # some members stopped before it
    alone = ensemble_rows(task, [STARTS[last]], STARTS[last : last + 1])[0]
    assert_rows_equal(together[last], alone, atol=0.0)


# -- train_ensemble: a fixed number of steps ---------------------------------------------------------


def members(arch: str, n: int):
    """n networks after SFT, each with its own init and data seed, and their reference log-probs."""
    out = []
    for i in range(n):
        spec = Network(arch=arch, n_pairs=3, init_seed=i, data_seed=i, sft_steps=5, **SIZES[arch]).check_relations()
        net, batch = build(spec, make_pairs(spec))
        sft(net, batch, spec)
        with torch.no_grad():
            out.append((net, batch, batch.log_probs(net).numpy().copy()))
    return out


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
@pytest.mark.parametrize(
    ("loss", "opt"), [(DPO(beta=0.5), GD(lr=0.2)), (IPO(beta=0.5), Adam(lr=0.01))], ids=["dpo-gd", "ipo-adam"]
)
def test_the_ensemble_rows_are_the_loop_rows(arch, loss, opt):
    needs(arch)
    steps, m = 12, members(arch, 3)
    path, _ = train_ensemble([x[0] for x in m], [x[1] for x in m], loss, opt, steps, np.array([x[2] for x in m]))
    stop = StopRule(max_steps=steps, p2_floor=1e-300, stationary_tol=0.0)
    loop = np.array(
        [train_pairs(net, b, loss, opt, stop, ref, path=True).path_logp for net, b, ref in members(arch, 3)]
    )
    assert path.shape == (steps + 1, 3, 3, 2)
    np.testing.assert_allclose(path, loop.transpose(1, 0, 2, 3), rtol=0, atol=1e-10)
    assert np.min(np.abs(path[-1] - path[0])) > 1e-4  # every member trained
    assert np.max(np.abs(path[-1, 0] - path[-1, 1])) > 1e-2  # and the members differ


# -- the probes of E members at once -----------------------------------------------------------------


def module_gradients(net, batch) -> np.ndarray:
    """grad_theta log pi of every pair's y_w, y_l by ``jacrev`` of the module itself (N, 2, D): the oracle."""
    theta = {k: v.detach() for k, v in net.named_parameters() if v.requires_grad}
    jac = torch.func.jacrev(lambda th: batch.log_probs(lambda x: torch.func.functional_call(net, th, (x,))))(theta)
    return torch.cat([jac[k].reshape(batch.data.n_pairs, 2, -1) for k in theta], dim=-1).numpy()


def assert_columns_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize(
    ("arch", "model"), [("mlp", {}), ("transformer", dict(pairs="language", append_eos=True, prompt_len=3))]
)
def test_the_batched_probes_are_each_members(arch, model, monkeypatch):
    """Members with different parameters (and references, and first steps): every probe column of the
    stack is that member's alone (E = 1), its gradients its module's; the end's columns at other
    parameters (the members in reverse order) too; the gradients taken a member at a time (memory)
    change nothing."""
    needs(arch)
    spec = Network(arch=arch, n_pairs=3, **SIZES[arch] | model).check_relations()
    nets, batch = random_members(spec, 3)
    stack = Stack(nets, [batch] * 3)
    members = Members(nets[0], {k: v.detach() for k, v in stack.params.items()})
    with torch.no_grad():
        logp0 = stack.log_probs().numpy()
    rng = np.random.default_rng(5)
    log_refs, logp1 = logp0 + rng.normal(0, 0.5, logp0.shape), logp0 + rng.normal(0, 0.01, logp0.shape)
    logp1[1] = np.nan  # a member that took no step
    loss, lr = DPO(beta=0.5), 0.01
    start = start_probes(members, batch, spec, loss, log_refs)
    reverse = Members(nets[0], {k: v.flip(0) for k, v in members.params.items()})
    end = end_probes(reverse, spec, batch.data, start, logp0, logp1, lr)
    grads = pair_gradients(members, batch).numpy()
    for i, net in enumerate(nets):
        alone = start_probes(Members.of(net), batch, spec, loss, log_refs[i : i + 1])
        assert_columns_equal(member(start, i), member(alone, 0))
        np.testing.assert_allclose(grads[i], module_gradients(net, batch), rtol=1e-10, atol=1e-12)
        at_end = end_probes(Members.of(nets[2 - i]), spec, batch.data, alone, logp0[i : i + 1], logp1[i : i + 1], lr)
        assert_columns_equal(member(end, i), member(at_end, 0))
    assert np.isnan(end["dlogpw_first"][1]).all() and np.isfinite(end["dlogpw_first"][[0, 2]]).all()
    monkeypatch.setattr(probes, "GRADIENT_BYTES", 1)  # one member's gradients at a time: the same, bit for bit
    in_turns = start_probes(members, batch, spec, loss, log_refs)
    for k in start:
        np.testing.assert_array_equal(in_turns[k], start[k], err_msg=k)
    differ = ("hidden_ip", "gw_sq", "dlogpw_dt0", "top_other_0", "top_other_gain")  # the MLP's CHES: 0 here
    for k in differ + (("ches", "ches_pre") if arch == "transformer" else ()):
        assert np.ptp(end[k][:, 0]) > 1e-6, k  # the members' columns differ
