"""The transformer end to end: a sweep of language pairs with pretraining -> SFT -> DPO into a run folder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", reason="arch = transformer needs transformers: pip install -e '.[nn]'")

from flowsim.experiment.config import ConfigError, parse_experiment  # noqa: E402
from flowsim.experiment.execute import run_sweep  # noqa: E402
from flowsim.experiment.store import read_flows  # noqa: E402

MODEL = {
    "kind": "network",
    "reference": "initial",
    "arch": "transformer",
    "layers": 2,
    "heads": 2,
    "width": 16,
    "context": 8,
    "vocab": 12,
    "pairs": "language",
    "n_pairs": 4,
    "same_class": True,
    "append_eos": True,
    "pretrain_steps": [0, 20],
    "pretrain_lr": 0.03,
    "pretrain_tokens": 300,
    "sft_steps": 20,
    "sft_lr": 0.02,
}
DOC = {
    "name": "tnet",
    "loss": {"kind": "dpo", "beta": 0.5},
    "model": MODEL,
    "dynamics": {"kind": "adam", "adam": {"lr": 0.01}},
    "stop": {"max_steps": 30, "p2_floor": 1e-12},
}


def test_a_transformer_sweep_pretrains_then_trains(tmp_path):
    meta = run_sweep(parse_experiment(DOC), tmp_path / "run", n_jobs=1, progress=False)
    flows = read_flows(tmp_path / "run")
    assert meta["rows"] == len(flows) == 2 * 4 and set(flows["arch"]) == {"transformer"}
    plain, pretrained = (flows[flows["pretrain_steps"] == s].sort_values("pair") for s in (0, 20))
    # the same pairs and initialisation; pretraining moved the SFT start
    assert not np.allclose(plain["logp_w0"].to_numpy(), pretrained["logp_w0"].to_numpy())
    assert np.all(flows["margin_final"] > 0) and np.all(flows["loss_final"] < flows["loss_0"])


def test_a_transformer_key_error_names_key_rule_value():
    with pytest.raises(ConfigError, match=r"model\.heads must divide width = 16 \(arch = transformer\); got 3"):
        parse_experiment({**DOC, "model": {**MODEL, "heads": 3}})
