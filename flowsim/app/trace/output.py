"""Where ``flowsim trace`` writes: a new or empty folder, or one holding only its own outputs (written again)."""

from __future__ import annotations

from pathlib import Path

from flowsim.experiment.store import check_writable
from flowsim.integrations.folder import TraceError

#: Files this command writes into OUT (a folder holding only these may be written again).
OUTPUTS = (
    "flows.csv",
    "trace.json",
    "regions.csv",
    "claims.csv",
    "claims.md",
    "predicted.csv",
    "trace.md",
    "batch_mean.md",
    "batch_mean.csv",
    "figures",
)


def out_folder(out: Path) -> Path:
    """``out`` if it can be written: new, empty, or holding only this command's outputs (else TraceError)."""
    check_writable(out, what="output folder", option="--out")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
        if other:
            raise TraceError(f"output folder {out} holds other files ({', '.join(other[:3])}); choose another --out")
    return out


__all__ = ["OUTPUTS", "out_folder"]
