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
    assert np.array_equal(fast.predict_positive(X, n_threads=threads), expected)
    assert np.array_equal(fast.predict_proba(X, n_threads=threads), fitted.predict_proba(X))


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
    assert np.array_equal(model.predict_positive(X), expected)
    assert np.array_equal(model.predict_proba(X), fitted.predict_proba(X))  # (n, 2) as scikit-learn
    back = pickle.loads(pickle.dumps(model))
    assert FastPredictor.current(back.kernel)
    assert np.array_equal(back.kernel._cuts, model.kernel._cuts)  # no rebuild at load
    assert np.array_equal(back.predict_positive(X), expected)

    old = pickle.loads(pickle.dumps(model))
    old.kernel._format = FastPredictor.FORMAT - 1
    stale = pickle.loads(pickle.dumps(old))
    assert FastPredictor.current(stale.kernel)  # recompiled at load
    assert stale.kernel is not old.kernel
    assert np.array_equal(stale.predict_positive(X), expected)


def test_a_kernel_compiled_under_another_sklearn_is_rebuilt(fitted, monkeypatch):
    """The kernel records the scikit-learn version; under any other it is recompiled at load."""
    import icpml.fastpredict as fp
    from icpml.models import TrainedModel

    model = TrainedModel(name="fit", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
    assert model.kernel.sklearn_version == __import__("sklearn").__version__
    data = pickle.dumps(model)
    monkeypatch.setattr(fp, "_sklearn_version", lambda: "99.0.0")
    assert not FastPredictor.current(model.kernel)
    back = pickle.loads(data)
    assert back.kernel.sklearn_version == "99.0.0"  # rebuilt here, under the running version
    assert FastPredictor.current(back.kernel)
    X = _hostile(2_000, seed=12)
    assert np.array_equal(back.predict_positive(X), fitted.predict_proba(X)[:, 1])


def test_no_scikit_learn_object_is_pickled_with_the_kernel(fitted):
    """The link is stored by name; the kernel's state is arrays, numbers and strings."""
    fast = FastPredictor.compile(fitted, COLS)
    assert fast.link == "logit"
    assert not hasattr(fast, "_loss")
    blob = pickle.dumps(fast)
    assert b"sklearn." not in blob  # no class from a scikit-learn module


def test_pre_kernel_field_pickles_still_load(fitted):
    """A model pickled when the kernel was stashed as ``_fast`` (format 2) loads, recompiled."""
    from icpml.models import TrainedModel

    model = TrainedModel(name="fit", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
    old_state = {k: v for k, v in model.__dict__.items() if k != "kernel"}
    stale = pickle.loads(pickle.dumps(model.kernel))
    stale._format = 2
    old_state["_fast"] = stale
    back = TrainedModel.__new__(TrainedModel)
    back.__setstate__(pickle.loads(pickle.dumps(old_state)))
    assert "_fast" not in back.__dict__ and FastPredictor.current(back.kernel)
    X = _hostile(2_000, seed=13)
    assert np.array_equal(back.predict_positive(X), fitted.predict_proba(X)[:, 1])


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
        assert np.array_equal(built.predict_positive(X), pipe.predict_proba(X)[:, 1])


def test_a_kernel_that_cannot_run_here_falls_back_to_the_pipeline(fitted, monkeypatch, caplog):
    import icpml._trees
    import icpml.fastpredict as fp
    from icpml.models import TrainedModel

    model = TrainedModel(name="fit", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
    monkeypatch.setattr(fp, "_WARNED", set())

    def cannot(*args, **kwargs):
        raise RuntimeError("cannot cache function 'raw_scores': no locator available")

    monkeypatch.setattr(icpml._trees, "raw_scores", cannot)
    X = _hostile(6_000, seed=5)
    with caplog.at_level("WARNING", logger="icpml.fastpredict"):
        assert np.array_equal(model.predict_positive(X), fitted.predict_proba(X)[:, 1])
        assert np.array_equal(model.predict_positive(X), fitted.predict_proba(X)[:, 1])
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once per run, naming the reason
    assert "compiled scoring unavailable (RuntimeError: cannot cache" in warnings[0].getMessage()


@pytest.mark.parametrize(("breakage", "reason"), [
    ("version", "differ from scikit-learn"),
    ("private", "AttributeError"),
])
def test_a_fallback_is_a_warning_naming_the_reason(fitted, monkeypatch, caplog, breakage, reason):
    """If scikit-learn's internals change (attributes gone, or other values), compiling
    steps aside with one WARNING naming why, and the scores are scikit-learn's."""
    import icpml.fastpredict as fp
    from icpml.models import TrainedModel

    monkeypatch.setattr(fp, "_WARNED", set())
    if breakage == "version":  # a release that computes the raw score differently
        monkeypatch.setattr(FastPredictor, "_compile", _shifted(FastPredictor._compile))
    else:  # a release that renamed a private attribute
        monkeypatch.setattr(FastPredictor, "__init__", _renamed)
    with caplog.at_level("WARNING", logger="icpml.fastpredict"):
        model = TrainedModel(name="churn", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
        TrainedModel(name="churn", pipeline=fitted, columns=COLS, kinds=KINDS).compile()
    assert model.kernel is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("churn model: compiled scoring unavailable")
    assert reason in warnings[0]
    X = _hostile(1_000, seed=14)
    assert np.array_equal(model.predict_positive(X), fitted.predict_proba(X)[:, 1])


def _shifted(compile_):
    def shifted(self, *args, **kwargs):
        compile_(self, *args, **kwargs)
        self._leaf_values = self._leaf_values + 1e-12
    return shifted


def _renamed(self, pipeline):
    raise AttributeError("'HistGradientBoostingClassifier' object has no attribute '_predictors'")
