"""``_stats.sample_by_class``: a stratified subsample that never refuses a table.

Product seed 1000 of the procedural benchmark crashed discovery: a stability refit of
1,002 accounts in three cohorts was sampled to 1,000 SHAP rows with scikit-learn's
stratified split, which needs one left-out row per class ("test_size = 2 should be greater
or equal to the number of classes = 3"). The same call sampled discovery's SHAP rows and
the CV rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from icpml._stats import sample_by_class


@pytest.mark.parametrize("n_rows,n,classes", [(1002, 1000, 3), (5001, 5000, 3), (10_001, 10_000, 2),
                                              (40, 39, 5), (7, 3, 3)])
def test_a_sample_a_few_rows_short_of_the_table_keeps_every_class_in_proportion(n_rows, n, classes):
    rng = np.random.default_rng(n_rows)
    y = rng.choice([f"c{i}" for i in range(classes)], size=n_rows)
    y[:classes] = [f"c{i}" for i in range(classes)]  # every class present
    keep = sample_by_class(y, n, seed=3)
    assert len(keep) == n and len(set(keep.tolist())) == n and np.all(np.diff(keep) > 0)
    for c in np.unique(y):
        want = np.mean(y == c) * n
        assert abs(np.sum(y[keep] == c) - want) <= 1.0
    assert np.array_equal(keep, sample_by_class(y, n, seed=3))  # seeded


def test_a_class_of_one_member_is_sampled_without_error():
    y = np.array(["a"] * 50 + ["b"] * 49 + ["c"])
    keep = sample_by_class(y, 60, seed=0)
    assert len(keep) == 60 and set(y[keep]) >= {"a", "b"}


def test_where_scikit_learn_applies_the_rows_are_its_rows():
    y = np.random.default_rng(0).choice(["best", "middle", "worst"], size=3000)
    keep, _ = train_test_split(np.arange(3000), train_size=1000, random_state=7, stratify=y)
    assert np.array_equal(sample_by_class(y, 1000, seed=7), np.sort(keep))
    assert np.array_equal(sample_by_class(y, 5000, seed=7), np.arange(3000))
