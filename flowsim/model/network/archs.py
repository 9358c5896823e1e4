"""The network architectures by ``[model] arch``: each a module class and the batch type its stages read.

One line per architecture in :data:`ARCHS`; :func:`build` makes a spec's network and batch.  The
transformer's module imports ``transformers`` only when a network is built.
"""

from __future__ import annotations

from flowsim.model.network.data import PairData
from flowsim.model.network.module import CausalMLP, PairBatch
from flowsim.model.network.transformer import CausalTransformer, SequenceBatch

#: arch -> (module class, batch of a dataset for that network: (spec, data, net) -> batch)
ARCHS = {
    "mlp": (CausalMLP, lambda spec, data, net: PairBatch(data, spec.window, net.pad)),
    "transformer": (CausalTransformer, lambda spec, data, net: SequenceBatch(data)),
}


def build(spec, data: PairData):
    """The network of a spec (initialised from ``init_seed``) and its dataset as that network's batch."""
    net = ARCHS[spec.arch][0](spec)
    return net, as_batch(spec, data, net)


def as_batch(spec, data: PairData, net):
    """``data`` as the batch type of ``spec.arch`` (which has ``log_probs(net, rows)``)."""
    return ARCHS[spec.arch][1](spec, data, net)


__all__ = ["ARCHS", "as_batch", "build"]
