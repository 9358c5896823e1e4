"""reproduce's comparison of claims tables: rows matched on what names them."""

from __future__ import annotations

import pandas as pd

from flowsim.app.reproduce import _compare


def table(rows):
    return pd.DataFrame(rows, columns=["claim", "beta", "subset", "title", "value", "verdict", "model"])


OLD = table(
    [
        ("C1", 0.1, "all", "t", 1e-10, "supported", "ratio"),
        ("C4", 0.1, "all", "t", 0.5, "partly supported", "ratio"),
        ("C4", 0.5, "all", "t", 0.9, "supported", "ratio"),
    ]
)


def test_identical_tables_say_so():
    assert _compare(OLD, OLD.iloc[::-1]) == "3 rows in both: same verdicts; values identical"


def test_a_new_claim_is_named_and_the_shared_rows_still_compared():
    new = pd.concat([OLD, table([("LD", 0.1, "all", "t", 0.2, "not supported", "ratio")])])
    new.loc[new["claim"] == "C4", "value"] = [0.5, 0.45]  # C4 at beta 0.5: 0.9 -> 0.45
    new.loc[(new["claim"] == "C4") & (new["beta"] == 0.5), "verdict"] = "not supported"
    assert _compare(OLD, new) == (
        "3 rows in both: verdicts changed for C4; values changed for C4 (largest "
        "relative change 5.00e-01); 1 new rows (LD)"
    )


def test_rows_that_are_gone_are_counted():
    assert _compare(OLD, OLD.iloc[:1]).endswith("2 rows gone (C4)")


def test_a_value_that_becomes_nan_is_counted_not_divided():
    """A claim that became not applicable (its value NaN) has no relative change: it is counted, warning-free."""
    import warnings

    new = OLD.copy()
    new.loc[new["claim"] == "C1", ["value", "verdict"]] = [float("nan"), "not applicable"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        said = _compare(OLD, new)
    assert said == (
        "3 rows in both: verdicts changed for C1; values changed for C1 (no number to number; "
        "1 became or stopped being NaN)"
    )
