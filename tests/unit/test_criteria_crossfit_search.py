"""Cross-fitted greedy (small data): a cut or category set is accepted only after the search
that chose it on the very rows that test it (issue #14, null draws of 200-1,500 accounts).

On null data every fold's plain best / worst contrast (``category_contrasts``) finds a
category set with p < alpha on its own rows, and the folds, sharing three quarters of
their rows, find the same one: it then also held out of fold often enough to be claimed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml.cohorts import BEST, label_cohorts
from icpml.config import CriteriaConfig
from icpml.criteria.rule import Criterion
from icpml.criteria.select import _search_size, _select_inclusions, category_contrasts

KINDS = {"plan": "categorical", "region": "categorical", "seats": "numeric"}


def _rows(seed: int, n: int, effect: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """``n`` accounts with two many-level categorical columns and one numeric; the value
    score gets ``effect`` standard deviations where ``plan in {P1, P2}``."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame({
        "plan": pd.array(rng.choice([f"P{i}" for i in range(9)], n), dtype="string"),
        "region": pd.array(rng.choice([f"R{i}" for i in range(7)], n), dtype="string"),
        "seats": rng.lognormal(3, 1, n).round(1),
    })
    value = effect * rows["plan"].isin(["P1", "P2"]).to_numpy() + rng.normal(0, 1, n)
    return rows, label_cohorts(pd.Series(value, index=rows.index), 0.25, 0.25)


def _greedy(rows: pd.DataFrame, cohort: pd.Series) -> list[Criterion]:
    cfg = CriteriaConfig()
    cands = [c for c in category_contrasts(rows, cohort, KINDS, list(KINDS), cfg) if c.kind == "icp"]
    start = pd.Series(True, index=rows.index)
    return _select_inclusions(cands, rows, cohort == BEST, start, cfg, by_p=True, search_gate=True)


@pytest.mark.parametrize("seed", range(12))
def test_null_category_contrast_is_not_accepted_on_its_own_rows(seed):
    rows, cohort = _rows(seed, 400)
    before = rows.copy()
    assert _greedy(rows, cohort) == []
    pd.testing.assert_frame_equal(rows, before)


@pytest.mark.parametrize("seed", range(4))
def test_planted_category_set_still_accepted(seed):
    rows, cohort = _rows(seed, 300, effect=2.0)
    kept = _greedy(rows, cohort)
    assert [c.describe() for c in kept][:1] == ["plan in {P1, P2}"]


def test_search_size_counts_the_subsets_a_category_set_was_chosen_among():
    rows, _ = _rows(0, 300)
    assert _search_size(Criterion("icp", "plan", "in", values=("P1", "P2")), rows) == 2 ** 8 - 1
    assert _search_size(Criterion("icp", "plan", "in", values=("P1",)), rows) == 9
    u = rows["seats"].nunique()
    assert _search_size(Criterion("icp", "seats", "between", low=1, high=2), rows) == u * u / 2
    assert _search_size(Criterion("icp", "seats", ">=", low=1), rows) == u
