"""Stability with a substitute column: a second export of headcount (``headcount_hr``, within
3% of ``employees``) lets refits express the small-company exclusion on either column. The
segment is stable; only the column choice is not, and the result says so instead of calling
the exclusion tentative."""

from __future__ import annotations

import numpy as np
import pytest

from icpml import demo_config, make_accounts
from icpml.criteria import Criterion
from icpml.pipeline import discover
from icpml.stability import _substitute


def test_substitute_is_another_column_selecting_the_same_accounts():
    import pandas as pd

    rows = pd.DataFrame({"a": np.arange(100), "b": np.arange(100) + 1, "c": np.arange(100)[::-1]})
    final = Criterion("anti_icp", "a", "<", high=10)
    fm = final.mask(rows).to_numpy(bool)
    same_col = Criterion("anti_icp", "a", "<", high=12)
    twin = Criterion("anti_icp", "b", "<", high=11)     # the same 10 accounts, another column
    other = Criterion("anti_icp", "c", "<", high=10)    # other accounts
    icp_twin = Criterion("icp", "b", "<", high=11)      # another kind
    found = [same_col, other, icp_twin, twin]
    masks = [c.mask(rows).to_numpy(bool) for c in found]
    assert _substitute(final, fm, found, masks, [False] * 4) == "b"
    assert _substitute(final, fm, found[:3], masks[:3], [False] * 3) is None
    # a refit criterion that matches a final criterion itself is not a substitute
    assert _substitute(final, fm, found, masks, [False, False, False, True]) is None


@pytest.mark.parametrize("seed", [4])
def test_a_segment_found_on_twin_columns_is_interchangeable_not_tentative(seed):
    df = make_accounts(3000, seed=seed)
    rng = np.random.default_rng(seed)
    df["headcount_hr"] = np.round(df["employees"] * rng.uniform(0.97, 1.03, len(df)))
    cfg = demo_config()
    feats = dict(cfg.columns.features)
    feats["firmographic"] = [*feats["firmographic"], "headcount_hr"]
    cfg = cfg.model_copy(update={"columns": cfg.columns.model_copy(update={"features": feats})})
    res = discover(cfg, df)
    st = res.criteria.meta["stability"]
    small = [c.describe() for c in res.criteria.anti_icp
             if set(c.columns) <= {"employees", "headcount_hr"} and c.op == "<"]
    assert small, [c.describe() for c in res.criteria.anti_icp]
    d = small[0]
    twin = "headcount_hr" if "employees" in d else "employees"
    assert st["per_segment"][d] >= max(st["per_criterion"][d], cfg.criteria.min_stability)
    assert d not in st["unstable"]
    if st["per_criterion"][d] < cfg.criteria.min_stability:  # the refits alternated columns
        assert d in st["interchangeable"] and twin in st["substitutes"][d]
        assert any(f"interchangeable with {twin}" in w for w in res.warnings)
    # criteria that reappeared as themselves are never reported through substitutes
    for name, share in st["per_criterion"].items():
        assert st["per_segment"][name] >= share
        assert name not in st["interchangeable"] or share < cfg.criteria.min_stability
