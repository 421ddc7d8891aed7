"""Stability at scale: capped refits, the stopping rule, parallel refits; stage heartbeat; CV cap."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest

from icpml import demo_config, make_accounts
from icpml import pipeline as pipeline_mod
from icpml import stability as stab_mod
from icpml.criteria import CriteriaSet, Criterion


def test_small_pool_is_a_classic_bootstrap():
    pool = pd.Index(np.arange(1000))
    cohorts = np.array(["best", "middle", "worst", "middle"] * 250)
    draw, oob = stab_mod._draw(pool, cohorts, np.random.default_rng(0))
    assert len(draw) == 1000
    assert set(oob) == set(range(1000)) - set(draw)


@pytest.mark.parametrize("n", [12_000, 80_001])
def test_large_pool_draws_a_capped_sample_by_cohort(n):
    rng = np.random.default_rng(1)
    cohorts = rng.choice(["best", "middle", "worst"], size=n, p=[0.25, 0.5, 0.25])
    pool = pd.Index(np.arange(n) * 3)
    draw, oob = stab_mod._draw(pool, cohorts, np.random.default_rng(2))
    cap = stab_mod.MAX_REFIT_ROWS
    assert abs(len(draw) - cap) <= 2
    assert len(oob) <= cap and len(set(oob) & set(draw)) == 0
    for g in ("best", "middle", "worst"):
        share = np.mean(cohorts == g)
        assert abs(np.sum(cohorts[draw] == g) - share * cap) <= 1


# ------------------------------------------------------------------ stopping rule
def _scripted(monkeypatch, hits: dict[str, list[int]], n_rows: int = 300):
    """A table, two final criteria, and refits whose findings are scripted per resample."""
    df = pd.DataFrame({"industry": ["SaaS", "Media", "Retail"] * (n_rows // 3),
                       "crm": ["Salesforce", "HubSpot", "None"] * (n_rows // 3)})
    cohorts = pd.Series(["best", "middle", "worst"] * (n_rows // 3))
    split = pd.Series(["train"] * n_rows)
    a = Criterion(kind="icp", column="industry", op="in", values=("SaaS",))
    b = Criterion(kind="icp", column="crm", op="==", values=("Salesforce",))
    final = CriteriaSet(icp=[a, b], anti_icp=[])
    calls = []

    def resample(i, *args, **kwargs):
        return np.arange(10), {"i": i}

    def refit(i):
        calls.append(i)
        return [c for c, name in ((a, "a"), (b, "b")) if i in hits[name]]

    monkeypatch.setattr(stab_mod, "_resample", resample)
    monkeypatch.setattr(stab_mod, "_refit", refit)
    return df, cohorts, split, final, calls


def test_refits_stop_once_every_call_is_settled(monkeypatch):
    # need = ceil(0.6 * 8) = 5: both criteria reappear every time -> settled after 5
    df, co, sp, final, calls = _scripted(monkeypatch, {"a": list(range(8)), "b": list(range(8))})
    out = stab_mod.criteria_stability(df, co, sp, {"industry": "categorical"}, None, final,
                                      demo_config())
    assert calls == [0, 1, 2, 3, 4]
    assert out["n_resamples"] == 5 and out["max_resamples"] == 8
    assert out["per_criterion"] == {"industry = SaaS": 1.0, "crm = Salesforce": 1.0}
    assert out["unstable"] == []
    assert "share of 5 refits" in out["measures"]


def test_settled_calls_are_those_of_every_refit(monkeypatch):
    # b reappears in refits 0 and 2 only: after 6 refits it can reach at most 2 + 2 < 5
    df, co, sp, final, calls = _scripted(monkeypatch, {"a": list(range(8)), "b": [0, 2]})
    out = stab_mod.criteria_stability(df, co, sp, {"industry": "categorical"}, None, final,
                                      demo_config())
    assert calls == [0, 1, 2, 3, 4, 5]
    assert out["unstable"] == ["crm = Salesforce"]  # what all 8 refits say too (2/8 < 0.6)
    assert out["per_criterion"]["crm = Salesforce"] == pytest.approx(2 / 6)


def test_an_unsettled_call_runs_every_refit(monkeypatch):
    # b at 4 hits after 7 refits could still reach 5: the 8th decides (it misses: 4/8)
    df, co, sp, final, calls = _scripted(monkeypatch, {"a": list(range(8)), "b": [0, 2, 4, 6]})
    out = stab_mod.criteria_stability(df, co, sp, {"industry": "categorical"}, None, final,
                                      demo_config())
    assert calls == list(range(8))
    assert out["per_criterion"]["crm = Salesforce"] == 0.5
    assert out["unstable"] == ["crm = Salesforce"]


def test_progress_counts_every_refit(monkeypatch):
    df, co, sp, final, _ = _scripted(monkeypatch, {"a": list(range(8)), "b": list(range(8))})
    seen = []
    stab_mod.criteria_stability(df, co, sp, {"industry": "categorical"}, None, final,
                                demo_config(), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 8), (2, 8), (3, 8), (4, 8), (5, 8)]


# ------------------------------------------------------------------ real refits
def test_parallel_refits_give_the_serial_result(discovery, monkeypatch):
    """Refits capped below the pool (1,400 accounts) run in 2 worker processes; the result is
    the serial one, and the planted criteria still reappear."""
    d = discovery
    monkeypatch.setattr(stab_mod, "MAX_REFIT_ROWS", 1000)
    churned = d.accounts[d.config.columns.churn].astype(bool)
    args = (d.accounts, d.cohorts, d.split, dict(d.fit_model.kinds), dict(d.churn_model.kinds), d.criteria,
            d.config, churned)
    monkeypatch.setenv("ICPML_JOBS", "2")
    par = stab_mod.criteria_stability(*args)
    # the refits no stopping rule can skip, submitted before the models train (as discover does)
    started = stab_mod.start_stability(d.accounts, d.cohorts, d.split, dict(d.fit_model.kinds),
                                       dict(d.churn_model.kinds), d.config, churned)
    assert sorted(started) == [0, 1, 2, 3, 4]  # need = ceil(0.6 * 8)
    early = stab_mod.criteria_stability(*args, started=started)
    monkeypatch.setenv("ICPML_JOBS", "1")
    assert stab_mod.start_stability(d.accounts, d.cohorts, d.split, dict(d.fit_model.kinds),
                                    dict(d.churn_model.kinds), d.config, churned) == {}
    ser = stab_mod.criteria_stability(*args)
    assert par == ser
    assert early == ser
    assert par["rows_per_refit"] == 1000
    assert "each on 1000 accounts drawn with replacement from the 1400" in par["measures"]
    for c in d.criteria.icp:
        assert par["per_criterion"][c.describe()] >= 0.8, par


# ------------------------------------------------------------------ heartbeat, CV cap
def test_a_long_stage_logs_a_line_at_least_every_heartbeat(monkeypatch, caplog):
    monkeypatch.setattr(pipeline_mod, "HEARTBEAT_SECONDS", 0.05)
    seen = []
    stages = pipeline_mod._Stages(lambda s, d, t: seen.append(s), total=1)
    with caplog.at_level(logging.INFO, logger="icpml.pipeline"):
        with stages.stage("stability"):
            stages.step("stability", 1, 4)
            time.sleep(0.4)
    beats = [r.getMessage() for r in caplog.records if "running" in r.getMessage()]
    assert len(beats) >= 3
    assert "stage=stability running" in beats[0] and "(stability 1/4, ~" in beats[0]
    assert any(s.startswith("stability 1/4, ~") and s.endswith("s left at most") for s in seen)
    assert any(r.getMessage().startswith("stage=stability seconds=") for r in caplog.records)


def test_cross_validation_runs_on_a_capped_stratified_sample(monkeypatch):
    from icpml.config import ModelsConfig
    from icpml.models import train_model

    df = make_accounts(1200, seed=3)
    y = (df["arr"] > df["arr"].quantile(0.7)).to_numpy()
    kinds = {"employees": "numeric", "industry": "categorical"}
    monkeypatch.setattr("icpml.models.MAX_CV_ROWS", 400)
    m = train_model("fit", df.iloc[:1000], y[:1000], df.iloc[1000:], y[1000:], kinds,
                    ModelsConfig(max_iter=20))
    assert m.cv["rows"] == 400 and m.cv["folds"] == 3  # MAX_CV_FOLDS_SAMPLED on a sample
    assert np.isfinite(m.cv["roc_auc_mean"])
    monkeypatch.setattr("icpml.models.MAX_CV_ROWS", 10_000)
    full = train_model("fit", df.iloc[:1000], y[:1000], df.iloc[1000:], y[1000:], kinds,
                       ModelsConfig(max_iter=20))
    assert full.cv["rows"] == 1000 and full.cv["folds"] == 5  # every row: cv_folds
    # the final model is fitted on every training row either way
    assert np.allclose(m.predict_proba(df.iloc[1000:]), full.predict_proba(df.iloc[1000:]))


def test_report_states_shap_sample_and_what_stability_measures(discovery):
    from icpml.report import render_html

    html = render_html(discovery)
    rows = discovery.criteria.meta["shap_rows"]
    assert rows == {"proposal": 1400, "proposal_total": 1400, "holdout": 600, "holdout_total": 600}
    assert "Exact SHAP values on 600 held-out accounts;" in html
    assert "proposed from SHAP values on 1400 of the 1400 non-held-out accounts" in html
    stab = discovery.criteria.meta["stability"]
    assert stab["measures"] in html


def test_held_out_shap_is_a_sample_by_cohort_on_a_large_holdout():
    rows = pd.DataFrame({"x": np.arange(20_000)})
    cohort = pd.Series(np.where(np.arange(20_000) % 4 == 0, "best", "middle"))
    out = pipeline_mod._sample_by_cohort(rows, cohort, 5000, seed=0)
    assert len(out) == 5000 and out.index.is_monotonic_increasing
    assert (cohort.loc[out.index] == "best").sum() == 1250
    small = pipeline_mod._sample_by_cohort(rows.iloc[:300], cohort.iloc[:300], 5000, 0)
    assert small.index.tolist() == list(range(300))  # a holdout under the cap is used whole


def test_a_model_trained_in_a_worker_is_the_one_trained_here(monkeypatch):
    """On a large pool discover trains the churn model in a refit worker (in_worker): the
    model that comes back scores exactly as one trained in this process."""
    from icpml.models import train_model

    df = make_accounts(1500, seed=4)
    y = df["churned"].astype(bool).to_numpy()
    kinds = {"employees": "numeric", "industry": "categorical", "crm": "categorical"}
    cfg = demo_config().model_copy(update={"models": demo_config().models.model_copy(
        update={"max_iter": 20})})
    args = ("churn", df.iloc[:1000], y[:1000], df.iloc[1000:], y[1000:], kinds, cfg.models)
    monkeypatch.setenv("ICPML_JOBS", "2")
    assert stab_mod.in_worker(stab_mod.MAX_REFIT_ROWS, cfg, train_model, *args) is None
    monkeypatch.setattr(stab_mod, "MAX_REFIT_ROWS", 500)
    job = stab_mod.in_worker(1000, cfg, train_model, *args)
    assert job is not None
    there, here = job.result(), train_model(*args)
    assert there.holdout["roc_auc"] == here.holdout["roc_auc"]
    assert np.array_equal(there.predict_proba(df), here.predict_proba(df))
    monkeypatch.setenv("ICPML_JOBS", "1")
    assert stab_mod.in_worker(1000, cfg, train_model, *args) is None


def test_refit_workers_are_warmed_only_where_the_stability_stage_uses_them(monkeypatch):
    """discover starts the refit workers right after the load (their imports then overlap
    cohorts and screening), but only where :func:`in_worker` would use them."""
    submitted = []

    class Executor:
        def submit(self, fn, *args):
            submitted.append(fn)

    monkeypatch.setattr(stab_mod, "_executor", lambda jobs: Executor())
    monkeypatch.setattr(stab_mod, "_FORKED", None)  # no forked pool (those need no warming)
    monkeypatch.setenv("ICPML_JOBS", "2")
    cfg = demo_config()
    cap = stab_mod.MAX_REFIT_ROWS
    stab_mod.warm_workers(int(cap / (1 - cfg.models.holdout_size)) - 10, cfg)  # pool under the cap
    assert submitted == []
    stab_mod.warm_workers(100_000, cfg)
    assert submitted == [stab_mod._warm, stab_mod._warm]  # one per worker
    submitted.clear()
    stab_mod.warm_workers(100_000, cfg.model_copy(update={"criteria": cfg.criteria.model_copy(
        update={"stability_resamples": 0})}))
    monkeypatch.setenv("ICPML_JOBS", "1")
    stab_mod.warm_workers(100_000, cfg)
    assert submitted == []
    assert stab_mod._warm() > 0  # imports what a refit needs; returns the worker's pid


def test_discovery_and_refit_workers_run_blas_on_one_thread(monkeypatch):
    """numpy's BLAS threads spin on the criteria search's small products (7x the CPU on a
    busy 2-core machine): discover runs with one (ICPML_THREADS for more), and the refit
    workers set the same limit when they start."""
    from threadpoolctl import threadpool_info

    from icpml.models import blas_threads

    def blas() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    monkeypatch.delenv("ICPML_THREADS", raising=False)
    seen = []
    monkeypatch.setattr(pipeline_mod, "_discover", lambda *a: seen.append(blas()))
    pipeline_mod.discover(demo_config(), make_accounts(50, seed=0))
    assert seen and seen[0] <= {1}
    monkeypatch.setenv("ICPML_THREADS", "2")
    with blas_threads():
        assert blas() <= {1, 2}
    captured = {}
    monkeypatch.setattr("joblib.externals.loky.get_reusable_executor",
                        lambda **kw: captured.update(kw))
    monkeypatch.setattr(stab_mod, "_FORKED", None)
    monkeypatch.setattr(stab_mod, "_can_fork", lambda: False)  # spawned (loky) workers
    stab_mod._executor(2)
    assert captured["initializer"] is blas_threads


def test_forked_workers_share_the_imports_and_give_the_same_results(monkeypatch):
    """On Linux, from a process running no other thread, discover forks its refit workers
    before reading the table (no spawned worker imports pandas, scikit-learn and shap again):
    jobs run there return what they return here, every OpenMP / BLAS region in a worker runs
    on one thread, and the pool is shut down when the discovery ends. With another thread
    running (a notebook's), or ICPML_FORK=0, workers are spawned as before."""
    import os
    import sys
    import threading

    from icpml.models import train_model

    if sys.platform != "linux":
        pytest.skip("workers are forked on Linux only")
    stab_mod.release_workers()
    monkeypatch.setenv("ICPML_JOBS", "2")
    cfg = demo_config()
    if threading.active_count() > 1:
        pytest.skip("another thread runs in this test process: workers would be spawned")
    assert not stab_mod.fork_workers(cfg, 1000)  # a small table: no worker would be used
    assert stab_mod._FORKED is None
    assert stab_mod.fork_workers(cfg)
    pid, jobs, ex = stab_mod._FORKED
    assert (pid, jobs) == (os.getpid(), 2)
    assert stab_mod._executor(2) is ex  # the same pool for warm-up, churn model and refits
    stab_mod.warm_workers(100_000, cfg)  # forked workers need no warming
    assert stab_mod._FORKED[2] is ex
    assert "shap" in sys.modules  # imported before the fork: the workers inherit it
    df = make_accounts(1500, seed=4)
    y = df["churned"].astype(bool).to_numpy()
    kinds = {"employees": "numeric", "industry": "categorical", "crm": "categorical"}
    mcfg = cfg.models.model_copy(update={"max_iter": 20})
    args = ("churn", df.iloc[:1000], y[:1000], df.iloc[1000:], y[1000:], kinds, mcfg)
    there = ex.submit(train_model, *args).result()
    assert np.array_equal(there.predict_proba(df), train_model(*args).predict_proba(df))
    limits = ex.submit(_thread_limits).result()
    assert limits <= {1}, limits
    # Ctrl-C is the parent's to handle, SIGTERM ends a worker (no inherited CLI handler),
    # and a worker dies with its parent
    assert ex.submit(_signals).result() == ("ignore", "default", 9)
    procs = list(ex._processes.values())
    stab_mod.release_workers()
    assert stab_mod._FORKED is None
    assert not any(p.is_alive() for p in procs)
    monkeypatch.setenv("ICPML_FORK", "0")
    assert not stab_mod.fork_workers(cfg)
    monkeypatch.delenv("ICPML_FORK")
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not stab_mod.fork_workers(cfg)  # another thread: no fork
    finally:
        stop.set()
        other.join()


def _signals() -> tuple[str, str, int]:
    import ctypes
    import signal

    names = {signal.SIG_IGN: "ignore", signal.SIG_DFL: "default"}
    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG
    return (names.get(signal.getsignal(signal.SIGINT), "handler"),
            names.get(signal.getsignal(signal.SIGTERM), "handler"), sig.value)


def _thread_limits() -> set[int]:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] in ("blas", "openmp")}
