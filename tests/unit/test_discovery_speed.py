"""Discovery at scale (#16): the final models' row cap, the forked refit workers."""

from __future__ import annotations

import numpy as np

from icpml import demo_config, make_accounts
from icpml import models as models_mod
from icpml._stats import sample_by_class
from icpml.models import make_model, train_model


def _args(n: int = 1200):
    df = make_accounts(n, seed=5)
    y = df["churned"].astype(bool).to_numpy()
    kinds = {"employees": "numeric", "industry": "categorical", "crm": "categorical",
             "requires_onprem": "boolean"}
    cfg = demo_config().models.model_copy(update={"max_iter": 20})
    return df, y, kinds, cfg


def test_the_final_model_is_fitted_on_a_sample_by_class_above_the_cap(monkeypatch):
    """Above MAX_TRAIN_ROWS training rows the final model is the one fitted on a seeded sample
    by class of that many rows (stated in train_rows); cross-validation and held-out metrics
    still use every training / held-out row; at or under the cap every row is used."""
    df, y, kinds, cfg = _args()
    tr, ho = slice(0, 1000), slice(1000, None)
    monkeypatch.setattr(models_mod, "MAX_TRAIN_ROWS", 400)
    m = train_model("churn", df.iloc[tr], y[tr], df.iloc[ho], y[ho], kinds, cfg)
    assert m.train_rows == {"fitted": 400, "total": 1000}
    keep = sample_by_class(y[tr].astype(int), 400, cfg.seed)
    assert abs(y[tr][keep].mean() - y[tr].mean()) < 0.01  # the classes in proportion
    ref = make_model(kinds, list(kinds), cfg, n_rows=1000)
    ref.fit(df.iloc[tr].iloc[keep][list(kinds)], y[tr][keep].astype(int))
    assert np.array_equal(m.predict_proba(df)[:, 1], ref.predict_proba(df[list(kinds)])[:, 1])
    assert m.holdout["n"] == 200
    monkeypatch.setattr(models_mod, "MAX_TRAIN_ROWS", 1000)
    assert train_model("churn", df.iloc[tr], y[tr], df.iloc[ho], y[ho], kinds,
                       cfg).train_rows == {"fitted": 1000, "total": 1000}
    monkeypatch.setattr(models_mod, "MAX_TRAIN_ROWS", None)
    assert train_model("churn", df.iloc[tr], y[tr], df.iloc[ho], y[ho], kinds,
                       cfg).train_rows == {"fitted": 1000, "total": 1000}
