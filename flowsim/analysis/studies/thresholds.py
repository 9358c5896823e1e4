"""The thresholds of the DPO field study's verdict rules: the ``[claims]`` table of an experiment file.

Apart from :mod:`.dpo_field` so that ``flowsim run`` can validate the table before a sweep
without importing the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from flowsim._validation import ParamError, check_interval, check_positive, check_real


@dataclass(frozen=True)
class ClaimThresholds:
    """Every threshold the verdict rules use (the ``[claims]`` table of an experiment file).

    Parameters
    ----------
    rtol_supported, rtol_partly : float, default 1e-6 and 1e-3
        Worst relative deviation for an identity (C1, C2, C6b) to be supported / partly.
    share_supported, share_partly : float, default 0.9 and 0.5
        Share of points for a "for all points" statement to be supported / partly.
    dominance : float, default 2.0
        "Minor change": the other probability moves at least this many times less than the
        named one (C5a, C5c).  >= 1.
    speed_factor : float, default 2.0
        "Rapid" / "slow" / "vanishes": a region's median speed (or time, or |grad L|)
        differs from the median over the other regions by at least this factor (C5a, C5b,
        C5c, C6, C7).  >= 1.
    p1_gap : float, default 0.2
        A difference in final p1 (probability), or in a share, large enough to call
        outcomes different (C6, C9).
    stationary_tol : float, default 1e-12
        |grad L| at or below which a mesh point counts as stationary (C5b, C11).  >= 0.

    Examples
    --------
    >>> ClaimThresholds(share_supported=0.95).share_partly
    0.5
    >>> ClaimThresholds(dominance=0.5)
    Traceback (most recent call last):
    ...
    flowsim._validation.ParamError: dominance must be a finite number >= 1 (a speed ratio); got 0.5
    """

    #: Shares: the sensitivity family halves and doubles their odds s / (1 - s).
    ODDS_FIELDS: ClassVar[tuple[str, ...]] = ("share_supported", "share_partly")

    rtol_supported: float = 1e-6
    rtol_partly: float = 1e-3
    share_supported: float = 0.9
    share_partly: float = 0.5
    dominance: float = 2.0
    speed_factor: float = 2.0
    p1_gap: float = 0.2
    stationary_tol: float = 1e-12

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "rtol_supported", check_positive("rtol_supported", self.rtol_supported))
        set_(self, "rtol_partly", check_positive("rtol_partly", self.rtol_partly))
        set_(self, "share_partly", check_interval("share_partly", self.share_partly, 0.0, 1.0))
        set_(self, "share_supported", check_interval("share_supported", self.share_supported, 0.0, 1.0))
        set_(self, "p1_gap", check_interval("p1_gap", self.p1_gap, 0.0, 1.0))
        for name in ("dominance", "speed_factor"):
            value = check_real(name, getattr(self, name))
            if value < 1:
                raise ParamError(name, "must be a finite number >= 1 (a speed ratio)", value)
            set_(self, name, value)
        tol = check_real("stationary_tol", self.stationary_tol)
        if tol < 0:
            raise ParamError("stationary_tol", "must be a finite number >= 0", tol)
        set_(self, "stationary_tol", tol)
        if self.rtol_partly < self.rtol_supported:
            raise ParamError("rtol_partly", f"must be >= rtol_supported ({self.rtol_supported!r})", self.rtol_partly)
        if self.share_supported < self.share_partly:
            raise ParamError(
                "share_supported", f"must be >= share_partly ({self.share_partly!r})", self.share_supported
            )

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


__all__ = ["ClaimThresholds"]
