"""The benchmark keeps working (a tiny grid, seconds); no timing is asserted: machines are shared."""

import math

import numpy as np
import pandas as pd

from flowsim.app.bench import baseline_flow, main, rel_err
from flowsim.dynamics.closed_forms.dpo_ratio import exact_dpo


def test_quick_benchmark_writes_every_line(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["--quick", "--repeats", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    lines = set(table["line"])
    assert {"baseline", "flowsim_2", "flowsim_1", "exact", "startup", "machine", "memory_1000", "memory_10000"} <= lines
    assert {"ratio_speedup", "ratio_parallel", "ratio_exact_per_s", "ratio_memory_ratio"} <= lines
    rows = table.set_index("line")
    for line in ("baseline", "flowsim_2", "flowsim_1", "exact"):
        assert rows.loc[line, "per_second"] > 0
    # both contenders are checked against the closed form, and the baseline is at least as accurate as asked
    assert rows.loc["flowsim_2", "worst_rel_err"] <= 1e-5
    assert rows.loc["baseline", "worst_rel_err"] <= max(1e-5, rows.loc["flowsim_2", "worst_rel_err"])
    assert (table["line"] == "baseline_scan").sum() >= 1
    printed = capsys.readouterr().out
    assert "(2)/(1)" in printed and "(2)/(3)" in printed and "peak RSS" in printed


def test_the_baseline_is_the_plain_flow():
    x0 = np.array([[0.3, 0.6], [0.95, 0.5], [0.5, 1e-7], [1.0, 0.3]])
    exact = exact_dpo(x0, beta=0.1)["t_stop"]
    got = np.array([baseline_flow(x.tolist(), 0.1, 1e-9, 1e-12)[0] for x in x0])
    assert rel_err(got, exact).max() <= 1e-6
    assert got[2] == got[3] == 0.0  # already stopped


def test_rel_err_conventions():
    err = rel_err([1.0, 0.0, 2.0, math.nan, 1.0], [1.0, 0.0, 1.0, 1.0, 0.0])
    assert err.tolist() == [0.0, 0.0, 1.0, math.inf, math.inf]
