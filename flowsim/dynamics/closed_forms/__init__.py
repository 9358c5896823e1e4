"""Closed-form flows, registered for exact (loss, parameterisation) pairs.

Each entry maps a pair to a function ``(loss, policy, stop) -> dict of result arrays``
(the fields of :data:`flowsim.dynamics.record.RESULT_FIELDS`, one row per start of the
bound policy), used as the integrator's test oracle and as the ``exact`` engine
(:mod:`flowsim.dynamics.engines.exact`; ``[solver] engine = "exact"``).  ``applies(loss)`` says
for which hyperparameters it was derived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowsim.dynamics.closed_forms import dpo_logits, dpo_ratio
from flowsim.dynamics.record import OPTIONAL_STOPS


@dataclass(frozen=True)
class ClosedForm:
    """A closed-form flow for one (loss, parameterisation) pair."""

    flows: Callable
    applies: Callable = lambda loss: True
    #: why it does not apply, for error messages
    rule: str = ""
    #: the optional stops of a StopRule it implements (loss_target, margin_target, stationary_tol);
    #: an experiment that sets another is integrated, not solved (the config says so)
    stops: frozenset[str] = frozenset()

    def unhandled(self, stop) -> list[str]:
        """The optional stops ``stop`` (a StopRule) sets that this closed form does not implement."""
        return [k for k in OPTIONAL_STOPS if k in stop.optional() and k not in self.stops]


def _plain_dpo(loss) -> bool:
    """DPO as derived: reverse-KL divergence, no label smoothing."""
    return getattr(loss, "f_divergence", "reverse_kl") == "reverse_kl" and getattr(loss, "label_smoothing", 0.0) == 0


#: Closed forms by (loss kind, parameterisation kind).
CLOSED_FORMS: dict[tuple[str, str], ClosedForm] = {
    ("dpo", "ratio"): ClosedForm(
        dpo_ratio.flows,
        applies=lambda loss: loss.beta < 2 and _plain_dpo(loss),
        rule="needs every beta < 2 (the closed form's range) and DPO's default divergence without label smoothing",
        # its gradient never vanishes (the integrator, in the registered chart, does not look either)
        stops=frozenset({"stationary_tol"}),
    ),
    ("dpo", "logits"): ClosedForm(
        dpo_logits.flows,
        applies=_plain_dpo,
        rule="needs DPO's default divergence without label smoothing",
        stops=frozenset({"loss_target", "margin_target", "stationary_tol"}),
    ),
}


def closed_form(loss_kind: str, model_kind: str) -> ClosedForm | None:
    """The closed form registered for the pair, or None."""
    return CLOSED_FORMS.get((loss_kind, model_kind))


__all__ = ["CLOSED_FORMS", "ClosedForm", "closed_form"]
