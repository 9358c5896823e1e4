"""The batched ensemble (torch.func vmap over stacked members) trains each member as train_pairs does alone.

Skipped without torch; the transformer's case also without transformers.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flowsim.dynamics.ensemble import train_ensemble  # noqa: E402
from flowsim.dynamics.optimisers import GD, Adam  # noqa: E402
from flowsim.dynamics.record import StopRule  # noqa: E402
from flowsim.dynamics.training import sft, train_pairs  # noqa: E402
from flowsim.model.losses import DPO, IPO  # noqa: E402
from flowsim.model.network.archs import build  # noqa: E402
from flowsim.model.network.data import make_pairs  # noqa: E402
from flowsim.model.parameterisations.network import Network  # noqa: E402

torch.set_num_threads(1)

SIZES = {"mlp": {}, "transformer": dict(layers=2, heads=2, width=16, context=8)}


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
    if arch == "transformer":
        pytest.importorskip("transformers")
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
