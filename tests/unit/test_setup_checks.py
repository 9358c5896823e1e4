"""Warnings for settings that cannot show an effect: p_l already at the floor, a preference stage of a few steps."""

import numpy as np

from flowsim.analysis.setup_checks import HANDFUL, setup_warnings
from flowsim.analysis.testing import make_flows
from flowsim.cli import main


def test_each_trap_is_named_with_its_setting_and_only_there():
    flows = make_flows([0.2, 0.5], [1e-7, 0.3, 0.6], betas=(0.1, 0.5))  # p_l = 1e-7 at 2 of 6 starts
    flows["steps"] = np.where(flows["beta"] == 0.5, HANDFUL - 1, 50)  # beta = 0.5 learns nothing
    got = setup_warnings(flows, p2_floor=1e-6)
    assert len(got) == 2 and got[0].startswith("beta = 0.1: p_l starts at or below the stop floor")
    assert "in 2 of 6 rows (lowest 1e-07)" in got[0] and "fewer than" not in got[0]
    assert got[1].startswith("beta = 0.5: ") and f"fewer than {HANDFUL} steps in 6 of 6 rows" in got[1]
    assert setup_warnings(flows, p2_floor=1e-8)[0].startswith("beta = 0.5: the preference stage")  # floor below
    flows["steps"] = np.nan  # a flow, not discrete steps: no step check
    assert setup_warnings(flows, p2_floor=1e-8) == []


def test_a_run_of_a_few_steps_warns_naming_the_setting(tmp_path, capsys):
    """Discrete GD from the SFT model, whose loss log 2 is already nearly the target: the stage ends at once."""
    exp = tmp_path / "few.toml"
    exp.write_text(
        'name = "few"\n[loss]\nbeta = 0.1\n[model]\nkind = "logits"\nreference = "initial"\n'
        '[dynamics]\nkind = "gd"\nlr = [1.0, 0.001]\n[grid]\np1 = { start = 0.1, stop = 0.4, num = 3 }\n'
        "p2 = { start = 0.1, stop = 0.4, num = 3 }\n[stop]\nloss_target = 0.69\n"
    )
    assert main(["run", str(exp), "--out", str(tmp_path / "o"), "--quiet", "--n-jobs", "1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and err[0].startswith("flowsim: warning: few, lr = 1.0: the preference stage ended in")
