"""The flows table's columns, derived from the experiment's parts, in one place.

Order: the loss's parameters, the references (``ref_w``, ``ref_l``), the model's
parameters, then :data:`LEADING` (the start, its labels, the record of the flow).  Every
writer and reader of ``flows.csv`` takes the header from :func:`columns`; readers select
columns by name, never by position.
"""

from __future__ import annotations

from flowsim.dynamics.record import PATH_FIELDS, RESULT_FIELDS

#: The start and its labels, before the flow's record.
START = ("p1_0", "p2_0", "x1_0", "x2_0", "region", "feasible")
#: The columns after the parameters, in order.
LEADING = (
    *START,
    "status",
    "t_stop",
    "p1_final",
    "p2_final",
    "x1_final",
    "x2_final",
    "loss_0",
    "loss_final",
    "t_w",
    "t_l",
    "nfev",
    *PATH_FIELDS,
    "loss",
    "model",
    "dynamics",
    "reference",
    "message",
)
#: After the record: the engine that computed each row (:data:`flowsim.dynamics.engines.ENGINES`).
PROVENANCE = ("engine",)
#: Integer columns that may be empty (pandas' nullable Int64: written as "3" or "").
NULLABLE_INT = ("top_other", "steps")
REF_COLUMNS = ("ref_w", "ref_l")
assert set(RESULT_FIELDS) | set(PATH_FIELDS) <= set(LEADING)


def parameter_names(exp) -> list[str]:
    """The parameter columns of an experiment: loss fields, references, model fields, optimiser fields."""
    return [*exp.loss_params, *REF_COLUMNS, *exp.model_params, *exp.dynamics_params]


def columns(exp) -> list[str]:
    """The flows.csv header for an experiment."""
    return [*parameter_names(exp), *LEADING, *PROVENANCE]
