"""The identifier / leakage screen and the one-hot -> business column map."""

from __future__ import annotations

import pandas as pd

from icpml.cohorts import label_cohorts, value_score
from icpml.config import demo_config
from icpml.data import feature_kinds, validate_accounts
from icpml.features import business_column_map, make_preprocessor, screen_columns
from icpml.synthetic import make_accounts


def test_business_column_map():
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0] * 5, "c": ["a", "b", "c"] * 5})
    pre = make_preprocessor({"n": "numeric", "c": "categorical"}, ["n", "c"], min_frequency=1)
    pre.fit(X)
    assert business_column_map(pre) == ["n", "c", "c", "c"]


def test_screen_flags_identifiers_and_disguised_outcomes():
    cfg = demo_config()
    df = validate_accounts(make_accounts(1500, seed=6), cfg)
    df["website"] = df["domain"]
    df["arr_band"] = pd.cut(df["arr"], [0, 2e4, 5e4, 1e9], labels=["low", "mid", "high"]).astype("string")
    lab = label_cohorts(value_score(df, cfg.columns.outcomes))
    ends = lab[lab != "middle"]
    kinds = {**feature_kinds(df, cfg), "website": "categorical", "arr_band": "categorical"}
    s = screen_columns(df, kinds, ends == "best")
    assert "website" in s.excluded and "identifier" in s.excluded["website"]
    assert "arr_band" in s.excluded and "outcome" in s.excluded["arr_band"]
    assert not set(s.excluded) & set(cfg.columns.feature_columns)
    kept = screen_columns(df, kinds, ends == "best", trusted=["arr_band"])
    assert "arr_band" not in kept.excluded and any("kept" in w for w in kept.warnings)
