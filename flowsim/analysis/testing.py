"""Synthetic flows tables, as ``flows.csv`` holds them, from the closed form.

For tests and for trying the analysis and the figures without running a sweep:

>>> from flowsim.analysis.testing import make_flows
>>> make_flows([0.2, 0.8], [0.3, 0.6])[["p1_0", "p2_0", "region", "status"]].shape
(4, 4)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flowsim.dynamics.closed_forms.dpo_ratio import flows
from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS, StopRule
from flowsim.experiment.regions import feasible, region_labels
from flowsim.experiment.schema import LEADING, NULLABLE_INT
from flowsim.model.losses import DPO
from flowsim.model.parameterisations import RatioPlane

COLUMNS = ["beta", "ref_w", "ref_l", *LEADING]


def make_flows(p1=None, p2=None, *, points=None, betas=(0.1,), refs=((1.0, 1.0),), reference="fixed", stop=None):
    """A flows table as flows.csv holds it, from the closed form, for a mesh p1 x p2 or given points."""
    stop = StopRule() if stop is None else stop
    if points is None:
        g1, g2 = np.meshgrid(p1, p2, indexing="ij")
        points = np.stack([g1.ravel(), g2.ravel()], -1)
    points = np.asarray(points, dtype=float)
    combos = [(b, None) for b in betas] if reference == "initial" else [(b, r) for b in betas for r in refs]
    frames = []
    for b, r in combos:
        rw, rl = (points[:, 0], points[:, 1]) if r is None else (np.full(len(points), r[0]), np.full(len(points), r[1]))
        x0 = points / np.stack([rw, rl], -1)
        res = flows(DPO(b), RatioPlane().bind(points, np.stack([rw, rl], -1)), stop)
        df = pd.DataFrame(
            {
                "beta": b,
                "ref_w": rw,
                "ref_l": rl,
                "p1_0": points[:, 0],
                "p2_0": points[:, 1],
                "x1_0": x0[:, 0],
                "x2_0": x0[:, 1],
                "region": region_labels(points),
                "feasible": feasible(points),
                "loss_0": DPO(b).value(np.log(x0)),
                "loss": "dpo",
                "model": "ratio",
                "dynamics": "flow",
                "reference": reference,
            }
        )
        for k in (*RESULT_FIELDS, *PATH_FIELDS):
            df[k] = pd.array(np.round(res[k]), dtype="Int64") if k in NULLABLE_INT else res[k]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)[COLUMNS]
