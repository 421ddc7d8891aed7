"""A date listed as a feature is set aside with a reason that says it is a date and what to do.

Found trying icpml on a table with a ``signup_date`` feature: it was set aside as "looks like
an identifier (1000 distinct values in 1000 rows)"; and a month column ("2021-03", 24 values)
or a day-first date with repeats was kept as a category, giving criteria such as
``signup_month in {2021-03, 2021-07}`` that no prospect (a new date) can meet. Inputs here are
generated; bands ("11-50"), versions ("1.2.3") and codes stay features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml.features import screen_columns


def _frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2020-01-01", periods=n, freq="D")
    month = rng.choice(pd.period_range("2021-01", periods=24, freq="M").astype(str), n)
    df = pd.DataFrame({
        "signup_date": days.strftime("%Y-%m-%d"),                        # unique per row
        "signup_month": month,                                            # 24 repeating months
        "founded": rng.choice(pd.date_range("1990-01-01", periods=40, freq="180D")
                              .strftime("%d.%m.%Y"), n),                  # day-first, repeats
        "first_touch": rng.choice(days.strftime("%m/%d/%y %H:%M"), n),    # US short with a time
        "size_band": rng.choice(["1-10", "11-50", "51-200", "201-500"], n),
        "app_version": rng.choice(["1.2.3", "1.10.0", "2.0.1"], n),
        "region": rng.choice(["EMEA", "NA", "APAC"], n),
    })
    df.loc[rng.choice(n, 20, replace=False), "founded"] = None           # a few blanks
    y = pd.Series(rng.random(n) < 0.5, index=df.index)
    return df, y


DATES = {"signup_date": "2020-01-01", "signup_month": None, "founded": None, "first_touch": None}


@pytest.mark.parametrize("seed", [0, 1])
def test_date_features_are_set_aside_as_dates(seed):
    df, y = _frame(seed=seed)
    before = df.copy()
    kinds = dict.fromkeys(df.columns, "categorical")
    s = screen_columns(df, kinds, y, seed=seed)
    assert set(s.excluded) == set(DATES), s.excluded
    for c in DATES:
        why = s.excluded[c]
        assert why.startswith(f"'{c}' holds dates (e.g. '"), why
        assert "identifier" not in why and "columns.date" in why
    assert "'2020-01-01'" in s.excluded["signup_date"]
    pd.testing.assert_frame_equal(df, before)  # the input is not modified


def test_dates_are_not_seen_in_bands_versions_numbers_or_mixed_text():
    from icpml.features import _date_example

    assert _date_example(pd.Series(["11-50", "51-200", "1-10"])) is None
    assert _date_example(pd.Series(["1.2.3", "1.10.0"])) is None
    assert _date_example(pd.Series([2019, 2020, 2021])) is None        # a year is a number
    assert _date_example(pd.Series(["2024-01-05"] * 10 + ["soon", "later"])) is None  # < 95%
    assert _date_example(pd.Series(["2024-13-45", "2024-14-40"])) is None  # written, not read
    assert _date_example(pd.Series(["2024-03-01T10:00:00Z", None, "2024-03-02 11:30"])) \
        == "2024-03-01T10:00:00Z"


def test_a_datetime_typed_column_is_a_date_too():
    """A Parquet column stored as timestamps (40 repeating months) is set aside the same way."""
    df, y = _frame(seed=2)
    df = df[["region"]].assign(signup=pd.Timestamp("2021-01-01")
                               + pd.to_timedelta((np.arange(len(df)) % 40) * 30, unit="D"))
    s = screen_columns(df, {"region": "categorical", "signup": "categorical"}, y, seed=2)
    assert list(s.excluded) == ["signup"] and "holds dates (e.g. '2021-01-01" in s.excluded["signup"]
