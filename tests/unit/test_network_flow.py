"""Small-lr GD on the network as the flow's stand-in: first-order agreement with the exact flow.

In the tabular reduction (layers = 0, one-hot prompt, one-token responses) the network's flow
is the logits model's, which flowsim integrates (DOP853, rtol 1e-9): GD at lr approaches it at
rate O(lr), so log|error| against log lr has slope 1.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.driver import integrate  # noqa: E402
from flowsim.dynamics.optimisers import GD  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import train_pairs  # noqa: E402
from flowsim.model.losses import DPO  # noqa: E402
from flowsim.model.network.data import PairData  # noqa: E402
from flowsim.model.network.module import DTYPE, CausalMLP, PairBatch  # noqa: E402
from flowsim.model.parameterisations import SoftmaxLogits  # noqa: E402
from flowsim.model.parameterisations.logits import sft_log_probs  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)
K, T_END = 6, 2.0
P0 = np.array([0.3, 0.5])


def network_at(lr: float) -> np.ndarray:
    """(p_w, p_l) at t = T_END of GD at lr on the tabular network from P0 (reference: the start)."""
    spec = Network(vocab=K, prompt_len=1, response_len=1, window=1, layers=0, embedding="one-hot", readout_bias=False)
    net = CausalMLP(spec)
    with torch.no_grad():
        net.readout.weight[:, 0] = torch.as_tensor(sft_log_probs(P0, K), dtype=DTYPE)
    batch = PairBatch(PairData(np.array([[0]]), np.array([[0]]), np.array([[1]])), 1, net.pad)
    rec = train_pairs(net, batch, DPO(beta=1.0), GD(lr=lr), StopRule(t_max=T_END, p2_floor=1e-12), np.log(P0)[None])
    assert rec.train_status == "timeout" and abs(rec.t_stop - T_END) < 1e-12
    return np.exp(rec.logp[0])


def test_small_lr_gd_is_first_order_in_lr():
    flow = integrate(
        DPO(beta=1.0), P0, policy=SoftmaxLogits(K=K).bind(P0, P0), stop=StopRule(t_max=T_END, p2_floor=1e-12)
    )
    assert flow.status == "timeout"
    want = np.array([flow.p1_final, flow.p2_final])
    lrs = np.array([0.1, 0.05, 0.025, 0.0125])
    err = np.array([np.max(np.abs(network_at(lr) - want)) for lr in lrs])
    slope = np.polyfit(np.log(lrs), np.log(err), 1)[0]
    assert 0.9 < slope < 1.1, (slope, err)
    assert err[-1] < 5e-3
