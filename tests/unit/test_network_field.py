"""The network's field at the start (the claims read it from the rows): against a tiny GD step and the
tabular closed form; and the claims' group reads it from the columns the model declares.

Skipped without torch (the ``nn`` extra).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from flowsim.analysis.claims.group import Context, Group  # noqa: E402
from flowsim.analysis.verdicts import NotApplicable  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import initial_field, sft  # noqa: E402
from flowsim.model.losses import DPO, IPO  # noqa: E402
from flowsim.model.network.bridge import batch_loss  # noqa: E402
from flowsim.model.network.data import PairData, make_pairs  # noqa: E402
from flowsim.model.network.module import DTYPE, CausalMLP, PairBatch, trainable  # noqa: E402
from flowsim.model.parameterisations import MODELS  # noqa: E402
from flowsim.model.parameterisations.logits import sft_log_probs  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)


def _probs(net, batch) -> np.ndarray:
    with torch.no_grad():
        return torch.exp(batch.log_probs(net)).numpy()


@pytest.mark.parametrize(("train", "loss"), [("all", DPO(beta=0.5)), ("embedding", IPO(beta=0.3))])
def test_the_velocity_is_the_limit_of_a_tiny_gd_step(train, loss):
    """dp/dt at t = 0 = (p after one full-batch SGD step of lr eps - p) / eps, to O(eps)."""
    spec = Network(n_pairs=4, n_prompts=2, layers=1, width=8, train=train, sft_steps=30, sft_lr=0.05)
    net = CausalMLP(spec)
    batch = PairBatch(make_pairs(spec), spec.window, net.pad)
    sft(net, batch, spec)
    with torch.no_grad():
        log_ref = batch.log_probs(net).numpy() - 0.2  # a reference below the start: h != 0, L's gradient not DPO's at 0
    v, gnorm = initial_field(net, batch, loss, log_ref)
    p0 = _probs(net, batch)
    eps = 1e-7
    opt = torch.optim.SGD(trainable(net), lr=eps)
    opt.zero_grad()  # SFT's last gradient is still there
    h = batch.log_probs(net) - torch.as_tensor(log_ref, dtype=DTYPE)
    value = batch_loss(loss, h, torch.as_tensor(log_ref, dtype=DTYPE))
    value.backward()
    g = torch.sqrt(sum(torch.sum(p.grad**2) for p in trainable(net)))
    opt.step()
    fd = (_probs(net, batch) - p0) / eps
    np.testing.assert_allclose(v, fd, rtol=2e-4, atol=1e-9 * np.abs(v).max())
    assert gnorm == pytest.approx(float(g), rel=1e-12)
    assert np.abs(v).min() > 0  # every pair moves: the check compares something


def test_the_tabular_network_has_the_logits_models_field():
    """layers = 0, one-hot one-token prompt, one-token responses: dp/dt = -p (J J^T) dL/dh with
    J = (e_w - p, e_l - p), the softmax's own Jacobian of (log p_w, log p_l) in the logits."""
    k, x, p_start = 6, 4, np.array([0.3, 0.5])
    spec = Network(vocab=k, prompt_len=1, response_len=1, window=1, layers=0, embedding="one-hot", readout_bias=False)
    net = CausalMLP(spec)
    p_all = np.exp(sft_log_probs(p_start, k))
    with torch.no_grad():
        net.readout.weight[:, x] = torch.as_tensor(np.log(p_all), dtype=DTYPE)
    batch = PairBatch(PairData(np.array([[x]]), np.array([[0]]), np.array([[1]])), spec.window, net.pad)
    log_ref = np.log(p_start)[None] + np.array([[0.1, -0.3]])
    v, gnorm = initial_field(net, batch, DPO(beta=0.7), log_ref)
    jac = np.stack([np.eye(k)[0] - p_all, np.eye(k)[1] - p_all])
    dl_dh = DPO(beta=0.7).grad(np.log(p_start)[None] - log_ref, log_ref)[0]
    np.testing.assert_allclose(v[0], -p_start * (jac @ jac.T @ dl_dh), rtol=1e-12)
    assert gnorm == pytest.approx(np.linalg.norm(jac.T @ dl_dh), rel=1e-12)


def _rows(**extra) -> pd.DataFrame:
    base = {
        "p1_0": [0.2, 0.6],
        "p2_0": [0.5, 0.1],
        "x1_0": 1.0,
        "x2_0": 1.0,
        "x1_final": 2.0,
        "x2_final": 0.5,
        "p1_final": [0.4, 0.7],
        "p2_final": [0.1, 0.05],
        "ref_w": [0.2, 0.6],
        "ref_l": [0.5, 0.1],
        "status": "reached_loss",
        "region": ["left", "bottom-right"],
        "t_stop": 1.0,
        "t_w": np.nan,
        "t_l": np.nan,
        "feasible": True,
        "model": "network",
        "loss": "dpo",
    }
    return pd.DataFrame({**base, **extra})


def test_the_group_reads_the_field_from_the_columns_the_model_declares():
    cols = MODELS["network"].field_columns
    g = Group(_rows(**dict(zip(cols, ([0.01, 0.02], [-0.03, -0.01], [0.5, 0.5]), strict=True))), Context(StopRule()))
    v, gnorm = g.field()
    np.testing.assert_array_equal(v, [[0.01, -0.03], [0.02, -0.01]])
    np.testing.assert_array_equal(gnorm, [0.5, 0.5])
    with pytest.raises(NotApplicable, match="lack the field column"):
        Group(_rows(), Context(StopRule())).field()
