"""Trainings per second and steps per second of the network model, in one process.

    python experiments/bench_network.py [experiment.toml ...]

Each experiment's trainings (SFT then DPO, as ``flowsim run`` computes them, without the run
folder) are timed after torch is imported and warmed up, one at a time (the loop, on the first
8 starts of each combination) and as the network engine trains them (one ensemble per chunk);
SFT steps and preference steps are counted separately, and the two engines' rows compared.
Default: the shipped experiments/network*.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowsim.app.bench.contenders import network_rates


def bench(path: Path) -> dict[str, float]:
    """Time every training of one experiment file; return counts, seconds and rates."""
    return network_rates(path=str(path))


def main(paths: list[str]) -> None:
    root = Path(__file__).resolve().parent
    for path in [Path(p) for p in paths] or sorted(root.glob("network*.toml")):
        r = bench(path)
        for engine in ("loop", "ensemble"):
            e = r[engine]
            print(
                f"{path.name} {engine}: {e['trainings']} trainings in {e['seconds']:.1f} s ({e['cpu_seconds']:.1f} s "
                f"CPU): {e['trainings_per_s']:.2f} trainings/s, {e['steps_per_s']:,.0f} steps/s "
                f"({e['sft_steps']:,} SFT + {e['dpo_steps']:,} DPO steps)"
            )
        print(
            f"{path.name}: ensemble / loop {r['speed_up']:.1f}x ({r['speed_up_cpu']:.1f}x per CPU s); rows equal to "
            f"{r['max_abs_diff']:.1e}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
