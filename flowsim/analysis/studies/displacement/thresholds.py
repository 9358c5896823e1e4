"""The thresholds of the displacement study's verdict rules, fixed before any data is read."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from flowsim._validation import ParamError, check_interval


@dataclass(frozen=True)
class DisplacementThresholds:
    """Every threshold the displacement study's rules read (the sensitivity family halves and doubles each).

    Parameters
    ----------
    rho_min : float, default 0.2
        |Spearman rho| for a predictor to rank the pairs' dlogpw at all (D1, D3, D4), in (0, 1].
    share_gap : float, default 0.2
        Share displaced in the top quantile of a predictor minus in the bottom one that counts as
        "displaces more" (D1), in (0, 1].
    quantile : float, default 0.25
        The top and bottom quantile compared (D1), in (0, 0.5].
    sign_supported, sign_partly : float, default 0.9 and 0.7
        Share of pairs whose measured first change of log pi(y_w) has the predicted sign (D2).
    cross_supported, cross_partly : float, default 0.5 and 0.1
        Share of the displaced pairs of datasets that only the cross-pair term explains (D5).

    Examples
    --------
    >>> DisplacementThresholds().quantile
    0.25
    >>> DisplacementThresholds(sign_supported=0.6)
    Traceback (most recent call last):
    ...
    flowsim._validation.ParamError: sign_supported must be >= sign_partly (0.7); got 0.6
    """

    #: Shares: the sensitivity family halves and doubles their odds s / (1 - s).
    ODDS_FIELDS: ClassVar[tuple[str, ...]] = ("sign_supported", "sign_partly", "cross_supported", "cross_partly")

    rho_min: float = 0.2
    share_gap: float = 0.2
    quantile: float = 0.25
    sign_supported: float = 0.9
    sign_partly: float = 0.7
    cross_supported: float = 0.5
    cross_partly: float = 0.1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("rho_min", "share_gap"):
            set_(self, name, check_interval(name, getattr(self, name), 0.0, 1.0))
        set_(self, "quantile", check_interval("quantile", self.quantile, 0.0, 0.5))
        for name in self.ODDS_FIELDS:
            set_(self, name, check_interval(name, getattr(self, name), 0.0, 1.0))
        for hi, lo in (("sign_supported", "sign_partly"), ("cross_supported", "cross_partly")):
            if getattr(self, hi) < getattr(self, lo):
                raise ParamError(hi, f"must be >= {lo} ({getattr(self, lo)!r})", getattr(self, hi))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


__all__ = ["DisplacementThresholds"]
