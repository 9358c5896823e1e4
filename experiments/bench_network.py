"""Trainings per second and steps per second of the network model, in one process.

    python experiments/bench_network.py [experiment.toml ...]

Each experiment's trainings (SFT then DPO, as ``flowsim run`` computes them, without the run
folder) are timed after torch is imported and warmed up; SFT steps and preference steps are
counted separately.  Default: the shipped experiments/network*.toml.
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
        print(
            f"{path.name}: {r['trainings']} trainings in {r['seconds']:.1f} s: {r['trainings_per_s']:.2f} "
            f"trainings/s, {r['steps_per_s']:,.0f} steps/s ({r['sft_steps']:,} SFT + {r['dpo_steps']:,} DPO steps)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
