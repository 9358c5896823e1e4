"""Trainings per second and steps per second of the network model, in one process.

    python experiments/bench_network.py [experiment.toml ...]

Each experiment's trainings (SFT then DPO, as ``flowsim run`` computes them, without the run
folder) are timed after torch is imported and warmed up; SFT steps and preference steps are
counted separately.  Default: the shipped experiments/network*.toml.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flowsim.experiment.config import load_experiment
from flowsim.experiment.network import train_one, warm_up
from flowsim.experiment.sweep import chunks


def bench(path: Path) -> dict[str, float]:
    """Time every training of one experiment file; return counts, seconds and rates."""
    exp = load_experiment(path)
    warm_up()
    n = sft_steps = dpo_steps = 0
    t0 = time.perf_counter()
    for chunk in chunks(exp, 1):
        target = chunk.p0[0] if chunk.combo["sft"] == "target" else None
        spec, _, _, rec, _ = train_one(exp, chunk.combo, target)
        n, sft_steps, dpo_steps = n + 1, sft_steps + spec.sft_steps, dpo_steps + rec.steps
    dt = time.perf_counter() - t0
    return {"trainings": n, "seconds": dt, "trainings_per_s": n / dt, "steps_per_s": (sft_steps + dpo_steps) / dt,
            "sft_steps": sft_steps, "dpo_steps": dpo_steps}  # fmt: skip


def main(paths: list[str]) -> None:
    root = Path(__file__).resolve().parent
    for path in [Path(p) for p in paths] or sorted(root.glob("network*.toml")):
        r = bench(path)
        print(f"{path.name}: {r['trainings']} trainings in {r['seconds']:.1f} s: {r['trainings_per_s']:.2f} "
              f"trainings/s, {r['steps_per_s']:,.0f} steps/s ({r['sft_steps']:,} SFT + {r['dpo_steps']:,} DPO steps)")


if __name__ == "__main__":
    main(sys.argv[1:])
