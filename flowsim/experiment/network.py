"""Network experiments: the rules of ``[model] kind = "network"`` between fields, dynamics and grid.

A network is trained by the ``network`` engine (:mod:`flowsim.dynamics.engines.network`), one
training per grid point and a row per pair.  The grid is read only by ``sft = "target"``: each
grid point (p1, p2) is the target every pair of the dataset is fine-tuned towards (and p1_0, p2_0
record where it actually landed).  The other SFT kinds ignore the grid, which then defaults to a
single point (one training per combination; replicate with ``init_seed`` / ``data_seed``
lists).  The flow has no network version: a small-lr ``gd`` is its stand-in
(``tests/unit/test_network_flow.py`` measures the first-order agreement).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flowsim._validation import ParamError
from flowsim.experiment.grids import Axis, Grid, product

#: The grid of an experiment whose SFT does not read it: one point (ignored).
ONE_POINT = Grid(kind="mesh", p1=Axis(0.5, 1.0, 1), p2=Axis(0.25, 1.0, 1))


def finish(exp, doc: dict[str, Any], fail) -> Any:
    """Check a parsed network experiment (rules between fields, dynamics, grid); return it completed.

    ``fail(key, value, rule)`` raises the configuration's error for a key.
    """
    from flowsim.model.parameterisations.network import Network

    for combo in product(exp.model_params):
        try:
            Network(**combo).check_relations()
        except ParamError as exc:
            fail(f"model.{exc.key}", exc.value, exc.rule)
    if any(kind == "flow" for kind, _ in exp.dynamics):
        fail("dynamics.kind", "flow", "has no network version: train with an optimiser (gd, momentum, adam, adamw); "
             "a small-lr gd is the flow's stand-in")  # fmt: skip
    targets = "target" in exp.model_params.get("sft", ("chosen",))
    if "grid" not in doc:
        if targets:
            fail("grid", None, 'is required with model.sft = "target": its points are the SFT targets (p_w0, p_l0)')
        return dataclasses.replace(exp, grid=ONE_POINT)
    if not targets and len(exp.grid) > 1:
        fail("grid", exp.grid.as_dict(), 'is read only by model.sft = "target" (its points are the SFT targets); '
             "leave it out, or replicate trainings with model.init_seed / model.data_seed lists")  # fmt: skip
    return exp


def warm_up() -> None:
    """Import torch and what its optimisers import on first use (torch._dynamo), single-threaded.

    Called in the sweep's own process before its workers fork, so that they inherit the modules
    instead of each paying for them: 2.6-3.8 s for ``import torch`` and 2.5-3.1 s for the first
    optimiser step, measured on the shared 2-core machine under load.
    """
    import torch

    torch.set_num_threads(1)  # before any torch op: forked children must not inherit a thread pool
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    p.sum().backward()
    opt.step()


__all__ = ["finish", "warm_up"]
