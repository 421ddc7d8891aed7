"""Spellings of one category that differ in case or spacing are merged, deterministically."""

from __future__ import annotations

import pandas as pd

from icpml.data import normalize_categories


def test_merges_to_the_most_frequent_spelling():
    df = pd.DataFrame({"industry": ["SaaS", "SaaS", "saas", " SaaS", "FinTech", "FINTECH", "FinTech", None],
                       "crm": ["HubSpot", "HubSpot", "Pipedrive", "Pipedrive", "Zoho", "Zoho", "Zoho", "Zoho"]})
    before = df.copy()
    out, warnings = normalize_categories(df, ["industry", "crm"])
    assert out["industry"].tolist()[:7] == ["SaaS"] * 4 + ["FinTech"] * 3
    assert out["industry"].isna().iloc[7]
    assert out["crm"].tolist() == df["crm"].tolist()  # nothing to merge: untouched, no warning
    assert len(warnings) == 1 and "'industry': 3 spelling(s)" in warnings[0]
    pd.testing.assert_frame_equal(df, before)  # the input is not modified


def test_order_of_rows_does_not_change_the_result():
    df = pd.DataFrame({"industry": ["saas", "SaaS", "FinTech", "fintech"]})
    a, _ = normalize_categories(df, ["industry"])
    b, _ = normalize_categories(df.iloc[::-1], ["industry"])
    assert a["industry"].tolist() == b["industry"].iloc[::-1].tolist()
    assert set(a["industry"]) == {"FinTech", "SaaS"}  # ties go to the first in sort order
