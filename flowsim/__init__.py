"""flowsim: what preference-optimisation losses do under gradient flow, measured.

The package is layered, imports running one way::

    model       WHAT flows: losses of the log-ratios, policy parameterisations, the objective
    dynamics    HOW it moves: stop rules, the solve_ivp driver, charts, closed forms, optimisers
    experiment  WHICH runs: experiment files, grids, sweeps, the run folder, parallel backends
    analysis    region tables and verdict machinery; analysis.studies: one paper's claims
    plotting    figures only
    app         the pipelines behind the command line (run, analyze, plot, reproduce)
    cli         argparse only

>>> from flowsim import DPO, integrate
>>> r = integrate(DPO(beta=0.1), [0.5, 0.5])
>>> r.status
'converged'

Names are imported lazily, so ``flowsim --help`` does not load scipy.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

#: Public names and the modules that define them.
_EXPORTS = {
    "DPO": "flowsim.model.losses",
    "LOSSES": "flowsim.model.losses",
    "Loss": "flowsim.model.losses",
    "make_loss": "flowsim.model.losses",
    "MODELS": "flowsim.model.parameterisations",
    "PARAMETERISATIONS": "flowsim.model.parameterisations",
    "make_parameterisation": "flowsim.model.parameterisations",
    "Objective": "flowsim.model.objective",
    "FlowResult": "flowsim.dynamics.record",
    "StopRule": "flowsim.dynamics.record",
    "SolverOptions": "flowsim.dynamics.driver",
    "integrate": "flowsim.dynamics.driver",
    "exact_dpo": "flowsim.dynamics.closed_forms.dpo_ratio",
    "load": "flowsim.app.load",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'flowsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
