"""The fast predictor is the pipeline's predict_proba, bit for bit, or it steps aside."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from icpml.config import ModelsConfig
from icpml.fastpredict import FastPredictor, scoring_threads
from icpml.models import make_model
from icpml.synthetic import make_accounts

KINDS = {"industry": "categorical", "employees": "numeric", "crm": "categorical",
         "requires_onprem": "boolean", "intent_score": "numeric", "region": "categorical"}
COLS = list(KINDS)


@pytest.fixture(scope="module")
def fitted() -> Pipeline:
    df = make_accounts(1500, seed=3)
    pipe = make_model(KINDS, COLS, ModelsConfig(max_iter=40))
    return pipe.fit(df[COLS], df["churned"].astype(int))


def _hostile(n: int, seed: int) -> pd.DataFrame:
    df = make_accounts(n, seed=seed)[COLS].copy()
    rng = np.random.default_rng(seed)
    df["industry"] = df["industry"].astype(object)
    df.loc[rng.random(n) < 0.05, "industry"] = "Quantum Farming"  # unseen
    df.loc[rng.random(n) < 0.05, "industry"] = None
    df["employees"] = df["employees"].astype(float)
    df.loc[rng.random(n) < 0.05, "employees"] = np.nan
    df.loc[rng.random(n) < 0.01, "employees"] = np.inf
    df["requires_onprem"] = df["requires_onprem"].astype("boolean")
    df.loc[rng.random(n) < 0.05, "requires_onprem"] = pd.NA
    return df


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_to_the_pipeline(fitted, threads):
    fast = FastPredictor.build(fitted, COLS)
    assert fast is not None
    X = _hostile(25_000, seed=9)  # above the threshold where blocks go to threads
    expected = fitted.predict_proba(X)[:, 1]
    assert np.array_equal(fast.predict_proba(X, n_threads=threads), expected)


def test_a_pipeline_of_another_shape_is_left_to_itself():
    df = make_accounts(400, seed=1)
    native = Pipeline([("prep", "passthrough"),
                       ("clf", HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]))])
    X = pd.DataFrame({"code": df["employees"] % 7, "employees": df["employees"]})
    native.fit(X, df["churned"].astype(int))
    assert FastPredictor.build(native, list(X.columns)) is None


def test_threads(monkeypatch):
    monkeypatch.delenv("ICPML_THREADS", raising=False)
    assert scoring_threads(100) == 1
    for cores, threads in ((None, 1), (1, 1), (2, 2), (6, 6), (64, 8)):  # all cores, at most 8
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        assert scoring_threads(1_000_000) == threads, cores
    monkeypatch.setenv("ICPML_THREADS", "3")
    assert scoring_threads(100) == 3


def test_pickled_with_its_model_and_rebuilt_when_its_format_changes(fitted):
    from icpml.models import TrainedModel

    model = TrainedModel(name="fit", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
    X = _hostile(3_000, seed=4)
    expected = fitted.predict_proba(X)[:, 1]
    assert np.array_equal(model.predict_proba(X), expected)
    back = pickle.loads(pickle.dumps(model))
    assert FastPredictor.current(back.__dict__.get("_fast"))  # no rebuild at load
    assert np.array_equal(back.predict_proba(X), expected)

    old = pickle.loads(pickle.dumps(model))
    old.__dict__["_fast"]._format = FastPredictor.FORMAT - 1
    stale = pickle.loads(pickle.dumps(old))
    assert "_fast" not in stale.__dict__  # dropped at load, rebuilt on first use
    assert np.array_equal(stale.predict_proba(X), expected)


@pytest.mark.parametrize(("leaves", "fast"), [(40, True), (90, False)])
def test_wide_trees(leaves, fast):
    """33-64 leaves take 64-bit masks; wider trees are left to scikit-learn, same values."""
    df = make_accounts(4000, seed=6)
    pipe = make_model(KINDS, COLS, ModelsConfig(max_iter=10, max_leaf_nodes=leaves, min_samples_leaf=2))
    pipe.fit(df[COLS], df["churned"].astype(int))
    widest = max(int(p[0].nodes["is_leaf"].sum()) for p in pipe.named_steps["clf"]._predictors)
    assert widest > (32 if fast else 64)
    built = FastPredictor.build(pipe, COLS)
    assert (built is not None) == fast
    if fast:
        X = _hostile(5_000, seed=8)
        assert np.array_equal(built.predict_proba(X), pipe.predict_proba(X)[:, 1])


def test_a_kernel_that_cannot_run_here_falls_back_to_the_pipeline(fitted, monkeypatch, caplog):
    import icpml._trees
    from icpml.models import TrainedModel

    model = TrainedModel(name="fit", pipeline=fitted, columns=COLS, kinds=KINDS).compile()

    def cannot(*args, **kwargs):
        raise RuntimeError("cannot cache function 'raw_scores': no locator available")

    monkeypatch.setattr(icpml._trees, "raw_scores", cannot)
    X = _hostile(6_000, seed=5)
    assert np.array_equal(model.predict_proba(X), fitted.predict_proba(X)[:, 1])
    assert "compiled scoring unavailable (cannot cache" in caplog.text
