"""Declared state: the Scorer is an immutable, picklable model; a ScoringSession owns the pools.

Built from small hand-made objects (a 1,500-account model, one criterion), no discovery.
"""

from __future__ import annotations

import dataclasses
import pickle
import threading

import numpy as np
import pytest

from icpml.config import ModelsConfig
from icpml.criteria import CriteriaSet, Criterion
from icpml.fastpredict import FastPredictor
from icpml.models import TrainedModel, make_model
from icpml.scoring import Scorer, ScoringSession
from icpml.synthetic import make_accounts

KINDS = {"industry": "categorical", "employees": "numeric", "crm": "categorical",
         "requires_onprem": "boolean", "intent_score": "numeric", "region": "categorical"}
COLS = list(KINDS)


def _model(name: str, target: str, seed: int) -> TrainedModel:
    df = make_accounts(1500, seed=seed)
    pipe = make_model(KINDS, COLS, ModelsConfig(max_iter=30)).fit(df[COLS], df[target].astype(int))
    return TrainedModel(name=name, pipeline=pipe, columns=COLS, kinds=KINDS)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    crit = CriteriaSet(icp=[Criterion("icp", "employees", ">=", low=100.0)],
                       anti_icp=[Criterion("anti_icp", "requires_onprem", "==", values=("True",))])
    return Scorer(fit_model=_model("fit", "churned", 3), churn_model=_model("churn", "churned", 4),
                  criteria=crit, id_column="account_id", chunk_size=6_000)


def _pipeline_scores(scorer: Scorer, df) -> tuple[np.ndarray, np.ndarray]:
    X, _ = scorer.prepare(df)
    return (scorer.fit_model.pipeline.predict_proba(X[COLS])[:, 1],
            scorer.churn_model.pipeline.predict_proba(X[COLS])[:, 1])


def test_the_scorer_is_immutable_and_pickles_without_pools(scorer):
    with pytest.raises(dataclasses.FrozenInstanceError):
        scorer.chunk_size = 10  # type: ignore[misc]
    df = make_accounts(9_000, seed=21)
    scorer.score(df)  # a job ran: nothing of it stays on the scorer
    assert set(scorer.__dict__) == {f.name for f in dataclasses.fields(Scorer)}
    blob = pickle.dumps(scorer)
    for word in (b"ThreadPoolExecutor", b"ProcessPoolExecutor", b"concurrent", b"_memo", b"_known"):
        assert word not in blob
    back = pickle.loads(blob)
    assert back.criteria == scorer.criteria and back.chunk_size == scorer.chunk_size
    assert back.score(df).equals(scorer.score(df))


def test_the_session_owns_and_closes_its_pools(scorer):
    df = make_accounts(9_000, seed=22)
    before = {t.ident for t in threading.enumerate()}
    with scorer.session() as session:
        assert isinstance(session, ScoringSession)
        session.score(df)
        pools = session.pools
        assert pools  # the prediction thread
        assert session.memo and session.known
    assert session.closed and session.pools == [] and not session.memo
    assert all(p._shutdown for p in pools)
    left = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("icpml-")]
    assert left == []
    with pytest.raises(RuntimeError, match="closed"):
        session.score(df)


def test_a_stream_closed_early_closes_its_session(scorer, monkeypatch):
    closed = []
    real_close = ScoringSession.close
    monkeypatch.setattr(ScoringSession, "close", lambda self: (closed.append(1), real_close(self)))
    df = make_accounts(9_000, seed=23)
    stream = scorer.score_batches(iter([df, df]))
    next(stream)
    assert closed == []
    stream.close()
    assert closed == [1]


def test_the_session_compiles_an_uncompiled_model_and_scores_identically(scorer):
    """A model not compiled at registration is compiled by the session (not stashed on the
    model), on chunks large enough to pay; the scores are scikit-learn's, bit for bit."""
    assert scorer.fit_model.kernel is None
    df = make_accounts(9_000, seed=24)
    fit, churn = _pipeline_scores(scorer, df)
    with scorer.session() as session:
        out = session.score(df)
        assert all(FastPredictor.current(k) for k in session.kernels.values())
        assert set(session.kernels) == {"fit", "churn"}
    assert scorer.fit_model.kernel is None  # the session's, not the model's
    assert np.array_equal(out["fit_score"].to_numpy(), fit)
    assert np.array_equal(out["churn_risk"].to_numpy(), churn)
    small = dataclasses.replace(scorer, chunk_size=500)  # below the compile threshold
    with small.session() as session:
        again = session.score(df)
        assert session.kernels == {}
    assert again.equals(out)  # same scores and tiers either way


def test_a_compiled_scorer_round_trips_with_its_kernels(scorer):
    compiled = dataclasses.replace(scorer, fit_model=dataclasses.replace(scorer.fit_model).compile(),
                                   churn_model=dataclasses.replace(scorer.churn_model).compile())
    back = pickle.loads(pickle.dumps(compiled))
    assert FastPredictor.current(back.fit_model.kernel) and FastPredictor.current(back.churn_model.kernel)
    df = make_accounts(6_000, seed=25)
    with back.session() as session:
        out = session.score(df)
        assert session.kernels["fit"] is back.fit_model.kernel
    fit, churn = _pipeline_scores(scorer, df)
    assert np.array_equal(out["fit_score"].to_numpy(), fit)
    assert np.array_equal(out["churn_risk"].to_numpy(), churn)
    assert out["tier"].equals(scorer.score(df)["tier"])


def test_a_scorer_pickled_with_old_caches_still_loads(scorer):
    """Scorers pickled by older versions may carry caches in their state: dropped at load."""
    state = dict(scorer.__dict__, _known={"x": 1}, _memo={}, _fallback_schema=None)
    old = Scorer.__new__(Scorer)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert set(old.__dict__) == {f.name for f in dataclasses.fields(Scorer)}
    assert old.criteria == scorer.criteria


def test_explanation_codes_are_a_declared_field(scorer):
    """The criteria stage's category codes live in a declared field, carried by subsets."""
    from icpml.criteria.propose import _category_codes, _subset
    from icpml.explain import GroupedShap, explain

    df = make_accounts(300, seed=26)
    X, _ = scorer.prepare(df)
    expl = explain(scorer.fit_model, X)
    codes, cats = _category_codes(expl, "industry")
    assert set(expl.category_codes) == {"industry"} and "_codes" not in expl.__dict__
    rows = np.arange(300) % 3 == 0
    sub = _subset(expl, rows)
    assert np.array_equal(sub.category_codes["industry"][0], codes[rows])
    assert np.array_equal(_category_codes(sub, "industry")[1], cats)
    old = {k: v for k, v in expl.__dict__.items() if k != "category_codes"}
    old["_codes"] = dict(expl.category_codes)  # pickled when the codes were a stash
    back = GroupedShap.__new__(GroupedShap)
    back.__setstate__(pickle.loads(pickle.dumps(old)))
    assert set(back.category_codes) == {"industry"} and "_codes" not in back.__dict__
