"""Models: policy parameterisations (theta -> log-probabilities) and the network, in one registry.

A new one is one file here: a frozen dataclass implementing :class:`Model` (a
:class:`Parameterisation`, whose :meth:`~Parameterisation.bind` returns a :class:`Policy` of
independent starts, or a model with its own engine, as the network), added to :data:`MODELS`.
Its fields become swept keys of an experiment's ``[model]`` table; what it declares (normalised,
where its field lives, rows per start, its sweep's rules) is all the rest of flowsim reads.
"""

from __future__ import annotations

from flowsim.model.parameterisations.base import Model, Parameterisation, Policy
from flowsim.model.parameterisations.features import FeaturePolicy, LogLinearFeatures
from flowsim.model.parameterisations.logits import LogitsPolicy, SoftmaxLogits
from flowsim.model.parameterisations.network import Network
from flowsim.model.parameterisations.ratio import RatioPlane, RatioPolicy

#: Every model by the ``kind`` used in experiment files: the one registry (a new model: one file, one line).
MODELS: dict[str, type[Model]] = {cls.kind: cls for cls in (RatioPlane, SoftmaxLogits, LogLinearFeatures, Network)}
#: The models that bind to a Policy of independent starts (derived from :data:`MODELS`' declarations).
PARAMETERISATIONS: dict[str, type[Parameterisation]] = {
    k: cls
    for k, cls in MODELS.items()
    if cls.policy_of_starts  # type: ignore[misc]
}


def make_parameterisation(kind: str, **params: object) -> Parameterisation:
    """Build a registered parameterisation by name, e.g. ``make_parameterisation("ratio")``."""
    try:
        cls = PARAMETERISATIONS[kind]
    except KeyError:
        raise ValueError(f"model kind must be one of {sorted(PARAMETERISATIONS)}; got {kind!r}") from None
    return cls(**params)


__all__ = [
    "MODELS",
    "PARAMETERISATIONS",
    "FeaturePolicy",
    "LogLinearFeatures",
    "LogitsPolicy",
    "Model",
    "Network",
    "Parameterisation",
    "Policy",
    "RatioPlane",
    "RatioPolicy",
    "SoftmaxLogits",
    "make_parameterisation",
]
