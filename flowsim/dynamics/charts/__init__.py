"""Charts: the coordinates and clock in which one flow is integrated, declared per pair.

:data:`RATIO_CHARTS` maps a loss kind to the :class:`RatioChartSpec` derived for it on the
ratio plane (an exact (loss, parameterisation) pair: nothing is inferred from classes).
:func:`chart_for` picks: on the ratio plane, the registered spec (if it ``applies`` to the
loss's hyperparameters) or the identity chart; for any other parameterisation, the
policy's own parameters in t.
"""

from __future__ import annotations

from flowsim.dynamics.charts import dpo_ratio
from flowsim.dynamics.charts.base import System
from flowsim.dynamics.charts.parameters import ParameterChart
from flowsim.dynamics.charts.ratio import IDENTITY, PowerChart, RatioChart, RatioChartSpec

#: Fast charts on the ratio plane, by loss kind.
RATIO_CHARTS: dict[str, RatioChartSpec] = {"dpo": dpo_ratio.SPEC}


def chart_for(objective, model_kind: str, smooth: bool = True):
    """The chart one flow of ``objective`` (on parameterisation ``model_kind``) is integrated in."""
    if model_kind != "ratio":
        return ParameterChart(objective)
    spec = RATIO_CHARTS.get(objective.loss.kind, IDENTITY) if smooth else IDENTITY
    if not spec.applies(objective.loss):
        spec = IDENTITY
    return RatioChart(objective, spec)


__all__ = [
    "IDENTITY",
    "RATIO_CHARTS",
    "ParameterChart",
    "PowerChart",
    "RatioChart",
    "RatioChartSpec",
    "System",
    "chart_for",
]
