"""Discovery at scale (#16): the final models' row cap, the forked refit workers."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from icpml import demo_config, make_accounts
from icpml import models as models_mod
from icpml import pipeline as pipeline_mod
from icpml import run as run_mod
from icpml import stability as stab_mod
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


def test_run_discovery_forks_the_workers_before_the_preflight_and_releases_them(monkeypatch):
    """The workers fork before the preflight (where MLflow starts its telemetry thread: a
    multi-threaded process spawns them instead), with the table's size when it is passed in,
    and are released when the preflight fails as when the discovery ends."""
    from icpml.errors import OutputError

    calls = []
    monkeypatch.setattr(stab_mod, "fork_workers", lambda cfg, n=None: calls.append(("fork", n)))
    monkeypatch.setattr(stab_mod, "release_workers", lambda: calls.append(("release",)))

    def failing(cfg, *, track, report):
        calls.append(("preflight",))
        raise OutputError("cannot write reports")

    monkeypatch.setattr(run_mod, "preflight", failing)
    accounts = make_accounts(300, seed=1)
    with pytest.raises(OutputError):
        run_mod.run_discovery(demo_config(), accounts, track=False, report=True)
    assert calls == [("fork", 300), ("preflight",), ("release",)]


def test_discover_releases_its_forked_workers(monkeypatch):
    """discover forks the workers for a table it does not know the size of yet, or a large one,
    and shuts them down when it ends, also when it fails."""
    seen = []
    def failing(*args):
        seen.append(stab_mod._FORKED)
        raise RuntimeError("stage failed")

    monkeypatch.setattr(pipeline_mod, "_discover", failing)
    monkeypatch.setenv("ICPML_JOBS", "2")
    stab_mod.release_workers()
    with pytest.raises(RuntimeError):
        pipeline_mod.discover(demo_config(), make_accounts(12_000, seed=0))
    if sys.platform == "linux" and threading.active_count() == 1:
        assert seen[0] is not None  # forked for a pool of 8,400 accounts
    assert stab_mod._FORKED is None
    seen.clear()
    with pytest.raises(RuntimeError):
        pipeline_mod.discover(demo_config(), make_accounts(1_000, seed=0))
    assert seen == [None]  # a small table: no worker would be used
