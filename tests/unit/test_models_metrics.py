"""Held-out metrics: the ROC AUC interval and its agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from icpml.models import _auc_interval, classification_metrics


def test_auc_interval_brackets_the_auc_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 2000):
        y = rng.integers(0, 2, n)
        p = np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.2, n), 0, 1)
        m = classification_metrics(y, p)
        assert m["roc_auc"] == roc_auc_score(y, p)
        assert m["roc_auc_ci_low"] < m["roc_auc"] < m["roc_auc_ci_high"]
        widths.append(m["roc_auc_ci_high"] - m["roc_auc_ci_low"])
    assert widths[1] < widths[0] / 2


def test_auc_interval_counts_ties_as_half_and_is_seeded():
    y = np.array([0, 0, 1, 1] * 10)
    p = np.full(40, 0.5)                     # every pair tied: AUC exactly 0.5
    assert _auc_interval(y, p) == (0.5, 0.5)
    q = np.linspace(0, 1, 40)
    assert _auc_interval(y, q) == _auc_interval(y, q)


def test_no_signal_interval_includes_half():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 300), rng.random(300)
    m = classification_metrics(y, p)
    assert m["roc_auc_ci_low"] < 0.5 < m["roc_auc_ci_high"]


def test_tiny_training_sets_still_split():
    """24 rows with the default leaf size of 20 would give a constant model; the cap avoids it."""
    import pandas as pd

    from icpml.config import ModelsConfig
    from icpml.models import train_model

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"employees": rng.normal(size=24)})
    y = (x["employees"] > 0).to_numpy().astype(int)
    m = train_model("fit", x, y, x, y, {"employees": "numeric"}, ModelsConfig(cv_folds=2))
    assert m.pipeline.named_steps["clf"].min_samples_leaf == 3
    assert np.ptp(m.predict_positive(x)) > 0.1 and m.holdout["roc_auc"] > 0.9
