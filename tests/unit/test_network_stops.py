"""A network training's stop, on 4 pairs: the first step where the *dataset's* condition holds.

Every expected step is computed here, from a plain torch.optim.SGD loop over the same network
(its log-probabilities, its |grad L|), with the conditions written out in numpy: every pair's
p_l <= p2_floor (``converged``), the MEAN loss <= loss_target (``reached_loss``), every pair's
margin >= margin_target (``reached_margin``), |grad L| <= stationary_tol (``stationary``, full
batches only), the last point before any pair's loss or the gradient is not finite
(``diverged``).  Each scenario is built so that one pair meets its criterion well before the
dataset does (asserted), so "any pair" or "the least loss" stops too early and fails here.
DPO's loss is recomputed as log(1 + e^(-beta m)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.optimisers import GD  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import sft, train_pairs  # noqa: E402
from flowsim.model.losses import DPO  # noqa: E402
from flowsim.model.network.bridge import batch_loss  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.network.module import DTYPE, CausalMLP, PairBatch  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)

BETA, LR, STEPS = 0.5, 0.05, 120
#: Off unless a test sets it: no floor, no clock, no stationary stop.
QUIET = {"p2_floor": 1e-12, "p2_target": 1e-12, "t_max": 1e9, "stationary_tol": 0.0, "max_steps": STEPS}


class Start:
    """A 4-pair network fine-tuned towards (p_w, p_l) = (0.3, 0.5), its batch and log pi_sft."""

    def __init__(self) -> None:
        spec = Network(vocab=8, width=8, n_pairs=4, sft="target", sft_steps=200, sft_lr=0.05)
        self.net = CausalMLP(spec)
        self.batch = PairBatch(make_pairs(spec), spec.window, self.net.pad)
        sft(self.net, self.batch, spec, target=np.array([0.3, 0.5]))
        with torch.no_grad():
            self.log_ref = self.batch.log_probs(self.net).numpy().copy()

    def train(self, loss, stop: StopRule, lr: float = LR, **kw):
        """train_pairs (the code under test) from a copy of the start."""
        return train_pairs(copy.deepcopy(self.net), self.batch, loss, GD(lr=lr), stop, self.log_ref, **kw)

    def reference(self, loss, steps: int, lr: float = LR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log p (k, n, 2), per-pair finite loss, |grad L| (k,)) of plain SGD for up to ``steps`` steps,
        ending at the first point whose log p, loss or gradient is not finite (included)."""
        net = copy.deepcopy(self.net)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=lr)
        ref = torch.as_tensor(self.log_ref, dtype=DTYPE)
        logp, gnorm = [], []
        for _ in range(steps + 1):
            opt.zero_grad()
            lp = self.batch.log_probs(net)
            value = batch_loss(loss, lp - ref, ref)
            value.backward()
            grads = torch.cat([p.grad.reshape(-1) for p in params])
            logp.append(lp.detach().numpy().copy())
            gnorm.append(float(torch.sqrt(torch.sum(grads**2))) if torch.all(torch.isfinite(grads)) else np.inf)
            if not (np.all(np.isfinite(logp[-1])) and np.isfinite(value.item()) and np.isfinite(gnorm[-1])):
                break
            opt.step()
        return np.array(logp), np.array(gnorm)


@pytest.fixture(scope="module")
def start():
    return Start()


@pytest.fixture(scope="module")
def dpo_path(start):
    """The reference path of DPO: log p, margins, per-pair losses, |grad L| at every step."""
    logp, gnorm = start.reference(DPO(beta=BETA), STEPS)
    h = logp - start.log_ref
    margin = h[..., 0] - h[..., 1]
    return {
        "logp": logp,
        "p_l": np.exp(logp[..., 1]),
        "margin": margin,
        "loss": np.logaddexp(0.0, -BETA * margin),
        "gnorm": gnorm,
    }


def first(condition: np.ndarray) -> int:
    """The first step at which ``condition`` (k,) holds (the test's scenario must reach it)."""
    assert condition.any(), "the scenario never meets the condition: make it longer"
    return int(np.argmax(condition))


def test_the_reference_loop_is_the_training(start, dpo_path):
    rec = start.train(DPO(beta=BETA), StopRule(**QUIET), path=True)
    assert rec.train_status == "timeout" and rec.steps == STEPS
    np.testing.assert_allclose(rec.path_logp, dpo_path["logp"], rtol=0, atol=1e-12)


def test_converged_waits_for_every_pair(start, dpo_path):
    floor = 0.2
    below = dpo_path["p_l"] <= floor
    k = first(below.all(axis=1))
    assert first(below.any(axis=1)) < k - 10  # one pair is there long before the dataset
    rec = start.train(DPO(beta=BETA), StopRule(**QUIET | {"p2_floor": floor, "p2_target": floor}))
    assert (rec.train_status, rec.steps) == ("converged", k)
    assert rec.t_stop == pytest.approx(k * LR, rel=1e-12)
    np.testing.assert_allclose(rec.logp, dpo_path["logp"][k], rtol=0, atol=1e-12)
    assert list(rec.status) == ["converged"] * 4


def test_reached_loss_reads_the_mean_loss(start, dpo_path):
    target = 0.5
    k = first(dpo_path["loss"].mean(axis=1) <= target)
    assert first(dpo_path["loss"].min(axis=1) <= target) < k - 3  # the best pair is there first
    assert np.all(dpo_path["loss"].max(axis=1)[: k + 1] > target)  # and the worst only later
    rec = start.train(DPO(beta=BETA), StopRule(**QUIET | {"loss_target": target}))
    assert (rec.train_status, rec.steps) == ("reached_loss", k)
    np.testing.assert_allclose(rec.loss_final, dpo_path["loss"][k], rtol=1e-12)
    np.testing.assert_allclose(rec.loss_0, dpo_path["loss"][0], rtol=1e-12)


def test_reached_margin_waits_for_every_pair_and_pairs_below_the_floor_are_converged(start, dpo_path):
    target = 2.0
    met = dpo_path["margin"] >= target
    k = first(met.all(axis=1))
    assert first(met.any(axis=1)) < k - 10
    # a floor some pairs are under at the stop, not all: those pairs are "converged", the rest the dataset's
    floor = float(np.median(dpo_path["p_l"][k]))
    under = dpo_path["p_l"][k] <= floor
    assert 0 < under.sum() < 4 and not (dpo_path["p_l"][: k + 1] <= floor).all(axis=1).any()
    rec = start.train(
        DPO(beta=BETA), StopRule(**QUIET | {"margin_target": target, "p2_floor": floor, "p2_target": floor})
    )
    assert (rec.train_status, rec.steps) == ("reached_margin", k)
    np.testing.assert_allclose(rec.h[:, 0] - rec.h[:, 1], dpo_path["margin"][k], rtol=1e-12)
    assert list(rec.status) == np.where(under, "converged", "reached_margin").tolist()


def test_stationary_is_the_full_batch_gradient_norm(start, dpo_path):
    g = dpo_path["gnorm"]
    tol = float(np.sqrt(g[60] * g[61]))  # between two steps' norms: no tie with either
    assert np.min(np.abs(g / tol - 1)) > 1e-6
    k = first(g <= tol)
    assert k > 10
    rec = start.train(DPO(beta=BETA), StopRule(**QUIET | {"stationary_tol": tol}))
    assert (rec.train_status, rec.steps) == ("stationary", k)
    # mini-batches: the step's gradient is not the dataset's, so no stationary stop even with a huge tol
    rec = start.train(DPO(beta=BETA), StopRule(**QUIET | {"stationary_tol": 1e9, "max_steps": 5}), batch_size=2)
    assert (rec.train_status, rec.steps) == ("timeout", 5)


def test_the_order_of_precedence_at_the_start(start):
    # at the start every pair's margin is 0 and the mean loss log 2: each rule below is met at once
    met = {"stationary_tol": 1e9, "margin_target": -1.0, "loss_target": 1.0, "p2_floor": 0.9}
    for n, status in zip((1, 2, 3, 4), ("stationary", "reached_margin", "reached_loss", "converged"), strict=True):
        rules = dict(list(met.items())[:n])
        rec = start.train(DPO(beta=BETA), StopRule(**QUIET | rules | {"p2_target": rules.get("p2_floor", 1e-12)}))
        assert (rec.train_status, rec.steps, rec.t_stop) == (status, 0, 0.0), rules


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


@pytest.mark.parametrize(("where", "what"), [("value", "the loss or log-probabilities"), ("grad", "the gradient")])
def test_diverged_stops_at_the_last_finite_point(start, dpo_path, where, what):
    hit = dpo_path["margin"] >= 1.5
    k = first(hit.any(axis=1)) - 1  # the last point where every pair's loss and the gradient are finite
    assert k > 3 and first(hit.all(axis=1)) > k + 10  # one pair turns non-finite long before the others
    rec = start.train(Poisoned(beta=BETA, where=where), StopRule(**QUIET), path=True)
    assert (rec.train_status, rec.steps) == ("diverged", k), rec.message
    assert rec.message == f"step {k + 1}: {what} {'is' if where == 'grad' else 'are'} not finite"
    assert rec.t_stop == pytest.approx(k * LR, rel=1e-12) and list(rec.status) == ["diverged"] * 4
    np.testing.assert_allclose(rec.logp, dpo_path["logp"][k], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.loss_final, dpo_path["loss"][k], rtol=1e-12)
    assert len(rec.path_logp) == k + 1


class UnderflowingBatch(PairBatch):
    """The pairs, with log p_l = -inf for a pair once its margin reaches 1.5 (the loss stays finite: 0)."""

    log_ref: torch.Tensor

    def log_probs(self, net):
        lp = super().log_probs(net)
        hit = (lp[:, 0] - self.log_ref[:, 0]) - (lp[:, 1] - self.log_ref[:, 1]) >= 1.5
        return torch.stack([lp[:, 0], torch.where(hit, -torch.inf, lp[:, 1])], dim=-1)


def test_a_non_finite_log_probability_diverges_though_the_loss_is_finite(start, dpo_path):
    """A log-probability of -inf gives DPO a finite loss (0) and gradient: the training stops all the same."""
    k = first((dpo_path["margin"] >= 1.5).any(axis=1)) - 1
    batch = copy.copy(start.batch)
    batch.__class__ = UnderflowingBatch
    batch.log_ref = torch.as_tensor(start.log_ref, dtype=DTYPE)
    rec = train_pairs(copy.deepcopy(start.net), batch, DPO(beta=BETA), GD(lr=LR), StopRule(**QUIET), start.log_ref)
    assert (rec.train_status, rec.steps) == ("diverged", k), rec.message
    assert rec.message == f"step {k + 1}: the loss or log-probabilities are not finite"
