"""Policy parameterisations: theta -> log-probabilities, and their registry.

A new one is one file here: a frozen dataclass subclassing :class:`Parameterisation`
whose :meth:`~Parameterisation.bind` returns a :class:`Policy`, added to
:data:`PARAMETERISATIONS`.  Its fields become swept keys of an experiment's ``[model]``
table.
"""

from __future__ import annotations

from flowsim.model.parameterisations.base import Parameterisation, Policy
from flowsim.model.parameterisations.features import FeaturePolicy, LogLinearFeatures
from flowsim.model.parameterisations.logits import LogitsPolicy, SoftmaxLogits
from flowsim.model.parameterisations.network import Network
from flowsim.model.parameterisations.ratio import RatioPlane, RatioPolicy

#: Parameterisation classes by the ``kind`` used in experiment files.
PARAMETERISATIONS: dict[str, type[Parameterisation]] = {
    cls.kind: cls for cls in (RatioPlane, SoftmaxLogits, LogLinearFeatures)
}
#: Models trained by their own loop (pairs of a dataset share parameters; not a Policy of starts):
#: their ``[model]`` fields are validated like a parameterisation's, and the sweep hands them to
#: :mod:`flowsim.experiment.network`.
TRAINED_MODELS: dict[str, type] = {Network.kind: Network}
#: Models whose rows record the field at their start themselves (no Policy to bind there), by kind:
#: the columns (dp_w/dt, dp_l/dt, |grad_theta L|) at t = 0, declared by the model.
FIELD_IN_ROWS: dict[str, tuple[str, str, str]] = {Network.kind: Network.field_columns}


def make_parameterisation(kind: str, **params: object) -> Parameterisation:
    """Build a registered parameterisation by name, e.g. ``make_parameterisation("ratio")``."""
    try:
        cls = PARAMETERISATIONS[kind]
    except KeyError:
        raise ValueError(f"model kind must be one of {sorted(PARAMETERISATIONS)}; got {kind!r}") from None
    return cls(**params)


__all__ = ["FIELD_IN_ROWS", "PARAMETERISATIONS", "TRAINED_MODELS", "FeaturePolicy",
           "LogLinearFeatures", "LogitsPolicy", "Network",
           "Parameterisation", "Policy", "RatioPlane", "RatioPolicy", "SoftmaxLogits",
           "make_parameterisation"]  # fmt: skip
