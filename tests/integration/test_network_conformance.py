"""The conformance sweep's network slice (issue #20): every loss, at its default temperature and both
ends of its declared range, x reference (the SFT checkpoint, none) x every optimiser, trained on a
small network of two pairs: no row `failed`, every training within its step budget."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from flowsim.experiment.config import parse_experiment
from flowsim.experiment.execute import run_sweep
from flowsim.experiment.store import read_flows
from flowsim.model.losses import LOSSES

MAX_STEPS = 25


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_every_loss_reference_and_optimiser_trains_a_network_without_a_failed_row(tmp_path, kind, conformance_script):
    hyper, lr = conformance_script.hyper, conformance_script.LR
    model = {
        "kind": "network",
        "vocab": 8,
        "width": 8,
        "n_pairs": 2,
        "sft_steps": 10,
        "sft_lr": 0.05,
        "reference": ["initial", "none"],
    }
    dynamics = {"kind": list(lr), **{k: {"lr": v} for k, v in lr.items()}}
    name, values = hyper(kind)
    doc = {
        "name": kind,
        "loss": {"kind": kind, name: list(values)},
        "model": model,
        "dynamics": dynamics,
        "stop": {"max_steps": MAX_STEPS},
    }
    run_sweep(parse_experiment(doc), tmp_path, n_jobs=1, progress=False)  # xdist spreads the losses
    flows = read_flows(tmp_path)
    assert not (flows["status"] == "failed").any(), flows.loc[flows["status"] == "failed", "message"].iloc[0]
    assert (flows["steps"] <= MAX_STEPS).all()
    assert len(flows) == 3 * 2 * len(lr) * 2  # temperatures x references x optimisers x pairs
