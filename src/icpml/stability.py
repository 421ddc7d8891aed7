"""How much to trust the criteria: stability under resampling, and fidelity to the model.

**Stability.** Criteria are refitted on bootstrap resamples of the non-held-out
accounts (the *pool*): each resample fits the fit and churn models on the drawn rows,
proposes candidates from their SHAP values, selects on out-of-bag rows (rows the
resample did not draw) and re-chooses and refines the cuts on the drawn rows, as
discovery does (a resample's unrefined bound would differ from the final, refined one
for no reason of the data). On a pool of at most :data:`MAX_REFIT_ROWS` accounts a
resample draws as many rows as the pool holds, with replacement (the classic
bootstrap). On a larger pool it draws :data:`MAX_REFIT_ROWS` rows with replacement,
in each cohort in proportion to its size (an m-out-of-n bootstrap), and selects on at
most :data:`MAX_REFIT_ROWS` out-of-bag rows: a share then says how often the criterion
reappears when the whole search is rerun on that many accounts, which costs the same
at 50,000 or 1,000,000 customers. The result states the rows per refit. A resample
proposes its candidates from SHAP values on at most :data:`MAX_REFIT_SHAP_ROWS` of its
distinct drawn rows (each cohort in proportion), as discovery proposes from a sample of
its rows; refinement and selection use every drawn / out-of-bag row.

For every final criterion we report how often a *matching* criterion reappears: same
kind and the same column(s), and a segment that agrees with the final one, i.e. a
category-set Jaccard >= 0.5 or a row-membership Jaccard >= 0.5 on the pool
(``industry in {SaaS, FinTech}`` matches ``industry in {SaaS, FinTech, Media}``;
``150 <= employees <= 600`` matches ``employees >= 140``; operators and bounds may
differ, the accounts selected must largely be the same). For the rule set we
report the mean Jaccard similarity between each resample's set and the final set
(matched criteria over the union), and the share of resamples in which every final
ICP criterion reappeared. A criterion that reappears in fewer than
``min_stability`` of the resamples is flagged unstable (tentative), unless its accounts
reappeared that often through *substitutes*: in a refit without it, a criterion of the
same kind on other columns that selects largely the same accounts (row Jaccard >= 0.5;
``annual_revenue_musd < 5.75`` for ``employees < 50`` where revenue follows headcount).
Such a criterion is reported *interchangeable* with the columns that stood in for it: the
segment is stable, the choice of column is not.

**Stopping rule.** ``stability_resamples`` is the most resamples drawn. A criterion
is stable when it reappears in at least ``ceil(min_stability * stability_resamples)``
of them; the refits stop as soon as no remaining resample could change any
criterion's stable / unstable call (e.g. with 8 resamples and ``min_stability`` 0.6,
after 5 refits in which every criterion reappeared). The calls are therefore those
of all the resamples; the shares are over the refits made (``n_resamples``, next to
``max_resamples``). Everything is seeded per resample, so the result is reproducible.
On a pool larger than :data:`MAX_REFIT_ROWS`, refits that are certain to be needed run
side by side in worker processes (:func:`refit_jobs`: 2, or ``ICPML_JOBS``) and are
read in resample order: the result is the one-process result. Discovery submits the
first of them (those no stopping rule can skip) before it trains its models
(:func:`start_stability`), so they run while the models train. On Linux the workers are
forked before the table is read (:func:`fork_workers`: they share this process's imports
instead of importing everything again; ``ICPML_FORK=0`` spawns them instead).

**Fidelity.** How well the readable tiers reproduce the fit model's ranking on
held-out accounts: the ROC AUC of the tier order (Tier 1 > Tier 2 > Tier 3 >
Excluded) for best vs worst, next to the model's own AUC, and the Spearman
correlation between tier order and fit score. The gap is what the rules leave out.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from icpml._stats import sample_by_class
from icpml._vocab import TIERS
from icpml.cohorts import BEST, MIDDLE
from icpml.config import Config
from icpml.criteria import CriteriaSet, Criterion, select_criteria
from icpml.explain import explain
from icpml.models import TrainedModel, blas_threads, make_model, openmp_threads

__all__ = ["criteria_stability", "start_stability", "warm_workers", "fork_workers",
           "release_workers", "criteria_match", "fidelity", "TIER_ORDER"]

log = logging.getLogger(__name__)

TIER_ORDER = {t: len(TIERS) - 1 - i for i, t in enumerate(TIERS)}


#: Two criteria on the same column(s) agree when their category sets or their rows overlap this much.
MATCH_JACCARD = 0.5


def _jaccard(a: np.ndarray | set, b: np.ndarray | set) -> float:
    if isinstance(a, set):
        union = a | b
        return len(a & b) / len(union) if union else 1.0
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def criteria_match(final: Criterion, other: Criterion, final_rows: np.ndarray,
                   other_rows: np.ndarray) -> bool:
    """Whether ``other`` (from a resample) is the same criterion as ``final``.

    Same kind and the same set of columns, and the segments agree: category-set Jaccard
    >= 0.5 (single-column category criteria) or row-membership Jaccard >= 0.5.

    Parameters
    ----------
    final : Criterion
        A criterion of the final set.
    other : Criterion
        A criterion found on a resample.
    final_rows, other_rows : numpy.ndarray of bool
        The two criteria's masks on the same accounts (the pool).

    Returns
    -------
    bool
        True when they count as the same criterion.
    """
    if final.kind != other.kind or sorted(final.columns) != sorted(other.columns):
        return False
    cat = ("in", "not_in", "==")
    if (not final.also and not other.also and final.op in cat and other.op == final.op
            and _jaccard(set(map(str, final.values)), set(map(str, other.values))) >= MATCH_JACCARD):
        return True
    return _jaccard(final_rows, other_rows) >= MATCH_JACCARD


def _fit_quick(name: str, X: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
               cfg: Config) -> TrainedModel:
    pipe = make_model(kinds, list(kinds), cfg.models)
    with openmp_threads():
        pipe.fit(X[list(kinds)], y)
    return TrainedModel(name=name, pipeline=pipe, columns=list(kinds), kinds=kinds)


#: A resample refits on at most this many drawn rows and selects on at most this many
#: out-of-bag rows (see the module docstring).
MAX_REFIT_ROWS = 5_000

#: A resample computes SHAP values (which propose its candidates) on at most this many of
#: its distinct drawn rows, each cohort in proportion: SHAP was most of a refit's cost. The
#: proposals only seed the search (cuts are refined on every drawn row and selected on the
#: out-of-bag rows); 1,000 rows gave the same criteria, shares and verdict as 2,500 on the
#: planted scenarios of ``benchmarks/discovery/quality.py``.
MAX_REFIT_SHAP_ROWS = 1_000


def _draw(pool: pd.Index, pool_cohorts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into ``pool``) of one resample's drawn rows and of its out-of-bag rows."""
    n = len(pool)
    if n <= MAX_REFIT_ROWS:
        draw = rng.choice(n, size=n, replace=True)
        return draw, np.setdiff1d(np.arange(n), draw)
    parts = []
    groups = [np.flatnonzero(pool_cohorts == g) for g in np.unique(pool_cohorts)]
    sizes = [int(round(MAX_REFIT_ROWS * len(g) / n)) for g in groups]
    for g, k in zip(groups, sizes, strict=True):
        parts.append(g[rng.integers(0, len(g), size=k)])
    draw = np.concatenate(parts)
    oob = np.setdiff1d(np.arange(n), draw)
    if len(oob) > MAX_REFIT_ROWS:
        oob = np.sort(rng.choice(oob, size=MAX_REFIT_ROWS, replace=False))
    return draw, oob


def refit_jobs() -> int:
    """Processes for the stability refits of a large table: ``ICPML_JOBS`` if set, else
    up to 2 of the CPUs this process may use (1 on a single CPU)."""
    env = os.environ.get("ICPML_JOBS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def _resample(b: int, df: pd.DataFrame, cohorts: pd.Series, churned: pd.Series | None,
              pool: pd.Index, pool_cohorts: np.ndarray, fit_kinds: dict[str, str],
              churn_kinds: dict[str, str] | None, cfg: Config) -> tuple[np.ndarray, dict | None]:
    """Resample ``b``'s draw and the inputs of its refit (None when it cannot be refitted)."""
    rng = np.random.default_rng(cfg.models.seed + 1000 + b)
    draw, oob_pos = _draw(pool, pool_cohorts, rng)
    in_bag = pool[draw]
    oob = pool[oob_pos]
    bc = cohorts.loc[in_bag].reset_index(drop=True)
    y = (bc == BEST).to_numpy()[(bc != MIDDLE).to_numpy()]
    if len(np.unique(y)) < 2 or len(oob) < 20:
        return draw, None
    uniq = df.loc[pd.Index(in_bag).unique()]
    uniq_cohort = cohorts.loc[uniq.index]
    shap_rows = uniq
    if len(uniq) > MAX_REFIT_SHAP_ROWS:  # proposals from a sample by cohort, as discovery's
        keep = sample_by_class(uniq_cohort.astype(str).to_numpy(), MAX_REFIT_SHAP_ROWS,
                               cfg.models.seed + b)
        shap_rows = uniq.iloc[keep]
    with_churn = churn_kinds is not None and churned is not None
    return draw, {
        "boot": df.loc[in_bag].reset_index(drop=True), "boot_cohort": bc,
        "boot_churn": churned.loc[in_bag].to_numpy(bool) if with_churn else None,
        "uniq": uniq, "uniq_cohort": uniq_cohort, "shap_rows": shap_rows,
        "select": df.loc[oob], "select_cohort": cohorts.loc[oob],
        "select_churn": churned.loc[oob] if churned is not None else None,
        "fit_kinds": fit_kinds, "churn_kinds": churn_kinds if with_churn else None, "cfg": cfg,
    }


def _refit(boot: pd.DataFrame, boot_cohort: pd.Series, boot_churn: np.ndarray | None,
           uniq: pd.DataFrame, uniq_cohort: pd.Series, select: pd.DataFrame,
           select_cohort: pd.Series, select_churn: pd.Series | None, fit_kinds: dict[str, str],
           churn_kinds: dict[str, str] | None, cfg: Config,
           shap_rows: pd.DataFrame | None = None) -> list[Criterion]:
    """One resample's criteria: models on the drawn rows, SHAP on ``shap_rows`` (at most
    :data:`MAX_REFIT_SHAP_ROWS` of the distinct drawn rows, by cohort; all of them when
    None), refinement on the distinct drawn rows, selection on the out-of-bag rows."""
    shap_rows = uniq if shap_rows is None else shap_rows
    ends = (boot_cohort != MIDDLE).to_numpy()
    y = (boot_cohort == BEST).to_numpy()[ends]
    fit = _fit_quick("fit", boot[ends], y, fit_kinds, cfg)
    churn_expl = None
    if churn_kinds is not None and boot_churn is not None and len(np.unique(boot_churn)) == 2:
        churn = _fit_quick("churn", boot, boot_churn, churn_kinds, cfg)
        churn_expl = explain(churn, shap_rows)
    anti, icp, _ = select_criteria(
        explain(fit, shap_rows), churn_expl, {**fit_kinds}, list(fit_kinds), select, select_cohort,
        select_churn=select_churn, refine_rows=uniq, refine_cohort=uniq_cohort, cfg=cfg.criteria)
    return anti + icp


#: The forked worker pool of this process, ``(pid, jobs, executor)`` (:func:`fork_workers`).
_FORKED: tuple[int, int, object] | None = None


def _can_fork() -> bool:
    """Whether worker processes may be forked from this process now: on Linux, with no other
    Python thread running (no lock another thread holds can be copied into a child). Native
    pools are safe: OpenBLAS and Arrow re-create theirs after a fork, and icpml runs every
    OpenMP region on one thread (:func:`icpml.models.openmp_threads`), in workers for good
    (:func:`_init_worker`)."""
    import sys
    import threading

    return (sys.platform == "linux" and threading.active_count() == 1
            and os.environ.get("ICPML_FORK", "1") != "0")


def _init_worker(parent: int) -> None:
    """A forked refit worker's start. Signals: Ctrl-C (sent to the whole terminal process
    group) is the parent's to handle, which then stops the workers; SIGTERM ends a worker at
    once (not the handler inherited from ``icpml``'s command line, which would print a
    traceback); the worker dies with its parent (``PR_SET_PDEATHSIG``: a parent killed
    outright leaves no worker waiting forever). Threads: numpy's BLAS and OpenMP on one for
    good, as discovery runs them (:func:`icpml.models.blas_threads`,
    :func:`icpml.models.openmp_threads`)."""
    import ctypes
    import signal

    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    blas_threads()
    threadpool_limits(limits=1, user_api="openmp")


def fork_workers(cfg: Config, n_accounts: int | None = None) -> bool:
    """Fork the refit worker processes now, before the table is read, where they may be used.

    A forked worker starts with everything this process imported (pandas, scikit-learn,
    shap, icpml: ~2.5 s of CPU for each spawned worker, 2 workers) and shares its memory
    pages until it writes them (forked before discovery reads the table, it holds no copy
    of it; a table passed in is shared, not copied).
    Only on Linux, from a process running no other thread (:func:`_can_fork`), with
    stability refits configured and several :func:`refit_jobs`; elsewhere the workers are
    spawned (joblib's loky) when first used, as before. The result of every job is the same
    either way. Call :func:`release_workers` when the discovery ends.

    Parameters
    ----------
    cfg : Config
        The run's config (``criteria.stability_resamples``, ``models.holdout_size``).
    n_accounts : int, optional
        Accounts in the table, when already known: none are forked for a table whose
        non-held-out accounts are at most :data:`MAX_REFIT_ROWS` (no worker would be used).

    Returns
    -------
    bool
        True when workers were forked (or a forked pool of this process already runs).
    """
    global _FORKED
    jobs = refit_jobs()
    if not cfg.criteria.stability_resamples or jobs <= 1:
        return False
    if n_accounts is not None and (n_accounts - int(round(cfg.models.holdout_size * n_accounts))
                                   <= MAX_REFIT_ROWS):
        return False
    if _FORKED is not None and _FORKED[:2] == (os.getpid(), jobs):
        return True
    if not _can_fork():
        return False
    import warnings

    with warnings.catch_warnings():  # as in icpml.explain: shap's tqdm import in a notebook
        warnings.filterwarnings("ignore", message="IProgress not found")
        import shap  # noqa: F401  (explain imports it on first use; the workers inherit it)
    _fork_pool(jobs).submit(os.getpid).result()  # forks the workers now (all at once)
    log.debug("stability: %d refit workers forked", jobs)
    return True


def release_workers() -> None:
    """Shut the forked worker pool down (:func:`fork_workers`): idle workers exit, a refit the
    stopping rule did not need is stopped. Nothing when no pool was forked."""
    global _FORKED
    if _FORKED is None or _FORKED[0] != os.getpid():
        _FORKED = None
        return
    ex = _FORKED[2]
    _FORKED = None
    import time
    from multiprocessing.connection import wait

    procs = list((getattr(ex, "_processes", None) or {}).values())
    manager = getattr(ex, "_executor_manager_thread", None)  # shutdown() forgets it
    ex.shutdown(wait=False, cancel_futures=True)
    # The pool's manager thread reaps the workers: waiting here on their sentinels (not
    # joining them) leaves it the only caller of waitpid, so no worker is ever seen alive
    # after it has been reaped by the other thread.
    running = {p.sentinel: p for p in procs}
    deadline = time.monotonic() + 0.5  # an idle worker exits at once
    while running and (left := deadline - time.monotonic()) > 0:
        for done in wait(list(running), timeout=left):
            running.pop(done)
    for p in running.values():  # still on a refit nobody reads
        p.terminate()
    if manager is not None:
        manager.join(timeout=5)
    if manager is None or manager.is_alive():
        for p in procs:
            p.join()


def _executor(jobs: int):
    """The worker pool: the forked one (:func:`fork_workers`) when it runs, else one forked
    now where :func:`_can_fork`, else joblib's reusable loky pool (spawned workers)."""
    if _FORKED is not None and _FORKED[:2] == (os.getpid(), jobs):
        if not getattr(_FORKED[2], "_broken", False):
            return _FORKED[2]
        release_workers()  # a worker died (e.g. out of memory): a fresh pool for what follows
    if _can_fork():
        release_workers()  # one of another size
        return _fork_pool(jobs)
    from joblib.externals.loky import get_reusable_executor

    # each worker limits its BLAS threads once, as discover does (:func:`blas_threads`)
    return get_reusable_executor(max_workers=jobs, timeout=60, initializer=blas_threads)


def _fork_pool(jobs: int):
    """A new pool of ``jobs`` forked workers, kept as this process's (:data:`_FORKED`)."""
    global _FORKED
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"),
                             initializer=_init_worker, initargs=(os.getpid(),))
    _FORKED = (os.getpid(), jobs, ex)
    return ex


def _warm() -> int:
    """Import what a refit needs (a fresh worker process spends seconds on it)."""
    import shap  # noqa: F401  (explain imports it on first use)

    import icpml.criteria  # noqa: F401
    import icpml.stability  # noqa: F401

    return os.getpid()


def warm_workers(n_accounts: int, cfg: Config) -> None:
    """Start the refit worker processes now, when the stability stage will use them.

    Each starts as a fresh Python process that must import pandas, scikit-learn, shap and
    icpml (seconds of CPU): started right after the table is read, they do it while this
    process labels cohorts and screens the columns, not when the first refit is due. The
    pool is estimated as the ``n_accounts`` not held out (``models.holdout_size``); nothing
    is started where :func:`in_worker` would run nothing (small table, one CPU, no
    resamples), nor when forked workers already run (:func:`fork_workers`: they start with
    this process's imports). Changes no result.

    Parameters
    ----------
    n_accounts : int
        Accounts in the discovery table (before the held-out split).
    cfg : Config
        The run's config (``models.holdout_size``, ``criteria.stability_resamples``).
    """
    n_pool = n_accounts - int(round(cfg.models.holdout_size * n_accounts))
    jobs = refit_jobs()
    if not cfg.criteria.stability_resamples or n_pool <= MAX_REFIT_ROWS or jobs <= 1:
        return
    if _FORKED is not None and _FORKED[:2] == (os.getpid(), jobs):
        return  # forked workers: already started, with the imports of this process
    executor = _executor(jobs)
    for _ in range(jobs):
        executor.submit(_warm)


def in_worker(n_pool: int, cfg: Config, fn: Callable, /, *args, **kwargs):
    """A future of ``fn(*args, **kwargs)`` run in a refit worker process, when the stability
    stage uses them (``n_pool`` non-held-out accounts over :data:`MAX_REFIT_ROWS`, several
    :func:`refit_jobs`); else None (run it here). Submit it before :func:`start_stability`
    so that it runs first."""
    jobs = refit_jobs()
    if not cfg.criteria.stability_resamples or n_pool <= MAX_REFIT_ROWS or jobs <= 1:
        return None
    return _executor(jobs).submit(fn, *args, **kwargs)


def _need(cfg: Config) -> int:
    """Reappearances out of ``stability_resamples`` that make a criterion stable."""
    return math.ceil(cfg.criteria.min_stability * cfg.criteria.stability_resamples - 1e-9)


def start_stability(df: pd.DataFrame, cohorts: pd.Series, split: pd.Series,
                    fit_kinds: dict[str, str], churn_kinds: dict[str, str] | None, cfg: Config,
                    churned: pd.Series | None = None) -> dict[int, tuple[int, object]]:
    """Submit the first refits of the stability stage to the worker processes, now.

    A resample's refit depends only on the accounts, the cohorts, the split and the
    column kinds, not on the final criteria (those are only matched against it
    afterwards). The first ``need = ceil(min_stability * resamples)`` refits (5 of 8 at
    ``min_stability`` 0.6) start here, while the models train and the criteria are
    chosen: no call can be settled as stable in fewer, and all of them are skipped only
    when every criterion misses every one of the first ``resamples - need + 1``. Pass
    the result to :func:`criteria_stability` as ``started``: the same result as without
    (each resample is seeded by its number; a refit the stopping rule does not need is
    discarded). Only on a pool larger than
    :data:`MAX_REFIT_ROWS` with several worker processes (:func:`refit_jobs`), else
    an empty dict.

    Parameters
    ----------
    df : pandas.DataFrame
        Coerced accounts, one per row. Not modified.
    cohorts : pandas.Series
        Cohort of each account, same index.
    split : pandas.Series
        ``train`` / ``selection`` / ``holdout`` per account; held-out rows are
        never drawn.
    fit_kinds : dict of str to str
        Kind of each column of the fit model.
    churn_kinds : dict of str to str or None
        Kind of each column the churn model will use (None: there will be none).
    cfg : Config
        ``criteria.stability_resamples``, ``criteria.min_stability`` and the model
        settings; the same as given to :func:`criteria_stability`.
    churned : pandas.Series of bool, optional
        Churn of each account.

    Returns
    -------
    dict of int to tuple
        Resample number -> ``(rows drawn, future of its criteria)``, the future None
        when that resample cannot be refitted; empty when nothing is started early.
    """
    n = cfg.criteria.stability_resamples
    pool = df.index[(split != "holdout").to_numpy()]
    jobs = refit_jobs()
    if n == 0 or len(pool) <= MAX_REFIT_ROWS or jobs <= 1:
        return {}
    first = max(1, min(_need(cfg), n))
    pool_cohorts = cohorts.loc[pool].astype(str).to_numpy()
    executor = _executor(jobs)
    out: dict[int, tuple[int, object]] = {}
    for i in range(first):
        draw, task = _resample(i, df, cohorts, churned, pool, pool_cohorts, fit_kinds,
                               churn_kinds, cfg)
        out[i] = (len(draw), executor.submit(_refit, **task) if task is not None else None)
    return out


def _run_refits(tasks: dict[int, dict], jobs: int) -> dict[int, list[Criterion]]:
    """Run the refits, in worker processes when ``jobs`` > 1 and there are several."""
    if jobs <= 1 or len(tasks) <= 1:
        return {i: _refit(**t) for i, t in tasks.items()}
    pool = _executor(jobs)
    futures = {i: pool.submit(_refit, **t) for i, t in tasks.items()}
    return {i: f.result() for i, f in futures.items()}


def criteria_stability(df: pd.DataFrame, cohorts: pd.Series, split: pd.Series,
                       fit_kinds: dict[str, str], churn_kinds: dict[str, str] | None,
                       final: CriteriaSet, cfg: Config,
                       churned: pd.Series | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       started: dict[int, tuple[int, object]] | None = None) -> dict:
    """Refit the criteria on bootstrap resamples (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        Coerced accounts, one per row. Not modified.
    cohorts : pandas.Series
        Cohort of each account, same index.
    split : pandas.Series
        ``train`` / ``selection`` / ``holdout`` per account; held-out rows are
        never drawn.
    fit_kinds : dict of str to str
        Kind of each column of the fit model.
    churn_kinds : dict of str to str, optional
        Kind of each column of the churn model (None: no churn model).
    final : CriteriaSet
        The discovered criteria whose stability is measured.
    cfg : Config
        ``criteria.stability_resamples``, ``criteria.min_stability`` and the model
        settings.
    churned : pandas.Series of bool, optional
        Churn of each account.
    progress : callable, optional
        ``progress(done, total)``, called after each resample (``total`` is
        ``stability_resamples``, the most that may run).
    started : dict, optional
        What :func:`start_stability` submitted earlier with the same inputs; those
        refits are collected instead of run again (the result is the same).

    Returns
    -------
    dict
        ``n_resamples`` (refits made), ``max_resamples``, ``rows_per_refit``
        (drawn rows per refit), ``measures`` (what a share is, in words), ``match`` (the
        matching rule in words), ``set_jaccard`` (mean over resamples of matched criteria /
        union of both sets), ``icp_set_share`` (share of resamples in which every final ICP
        criterion reappeared; without an ICP: None), ``per_criterion`` (description ->
        reappearance share), ``per_segment`` (description -> share of refits in which its
        accounts reappeared, as itself or through a *substitute*: a criterion of the same
        kind on other columns with row Jaccard >= 0.5, e.g. a revenue cut for a headcount
        cut), ``substitutes`` (description -> {column(s): refits}, where any stood in),
        ``interchangeable`` (below ``criteria.min_stability`` as itself but not with its
        substitutes: the segment is stable, the column choice is not) and ``unstable``
        (below ``criteria.min_stability`` both ways: tentative).
        Empty dict when ``stability_resamples`` is 0.
    """
    n = cfg.criteria.stability_resamples
    if n == 0:
        return {}
    pool = df.index[(split != "holdout").to_numpy()]
    rows = df.loc[pool]
    pool_cohorts = cohorts.loc[pool].astype(str).to_numpy()
    finals = final.icp + final.anti_icp
    final_masks = [c.mask(rows).to_numpy(bool) for c in finals]
    counts = [0] * len(finals)
    # refits in which the criterion's accounts reappeared, as itself or through a substitute
    # (a criterion of the same kind on other columns selecting largely the same accounts),
    # and which columns stood in for it how often
    seg_counts = [0] * len(finals)
    subs: list[dict[str, int]] = [{} for _ in finals]
    need = _need(cfg)
    started = started or {}
    jaccards, whole = [], []
    done = 0
    drawn_rows = 0
    jobs = refit_jobs() if len(pool) > MAX_REFIT_ROWS else 1
    b = 0
    while b < n:
        # refits that cannot settle every call yet are certain to be needed: run up to
        # ``jobs`` of them at once, then read them in order (the same result as one by one)
        left = n - b
        certain = max((min(need - k, left - (need - k) + 1) for k in counts
                       if not (k >= need or k + left < need)), default=left)
        if b in started:  # submitted by start_stability: read them in order as they finish
            batch = [i for i in range(b, n) if i in started]
            batch = batch[:next((k for k, i in enumerate(batch) if i != b + k), len(batch))]
            found_by = {i: started[i][1] for i in batch if started[i][1] is not None}
        else:
            batch = list(range(b, b + max(1, min(jobs, certain, left))))
            tasks = {}
            for i in batch:
                draw, task = _resample(i, df, cohorts, churned, pool, pool_cohorts, fit_kinds,
                                       churn_kinds, cfg)
                if task is not None:
                    tasks[i] = task
                    drawn_rows = len(draw)
            found_by = _run_refits(tasks, jobs)
        settled = False
        for i in batch:
            b = i + 1
            if i not in found_by:
                continue
            found = found_by[i]
            if i in started:
                found = found.result()
                drawn_rows = started[i][0]
            found_masks = [c.mask(rows).to_numpy(bool) for c in found]
            hit_final = [any(criteria_match(f, r, fm, rm) for r, rm in zip(found, found_masks, strict=True))
                         for f, fm in zip(finals, final_masks, strict=True)]
            hit_found = [any(criteria_match(f, r, fm, rm) for f, fm in zip(finals, final_masks, strict=True))
                         for r, rm in zip(found, found_masks, strict=True)]
            for j, h in enumerate(hit_final):
                counts[j] += h
                sub = None if h else _substitute(finals[j], final_masks[j], found, found_masks,
                                                 hit_found)
                seg_counts[j] += h or sub is not None
                if sub is not None:
                    subs[j][sub] = subs[j].get(sub, 0) + 1
            matched = min(sum(hit_final), sum(hit_found))
            union = len(finals) + len(found) - matched
            jaccards.append(matched / union if union else 1.0)
            whole.append(all(h for h, f in zip(hit_final, finals, strict=True) if f.kind == "icp"))
            done += 1
            if progress is not None:
                progress(b, n)
            rest = n - b
            # settled: a criterion already in ``need`` refits stays stable, one that cannot
            # reach ``need`` stays unstable, whatever the remaining refits find (with no refit
            # skipped, the shares over the refits made then fall on the same side of
            # min_stability)
            if rest and done == b and all(k >= need or k + rest < need
                                          for k in counts + seg_counts):
                log.debug("stability: every criterion's call is settled after %d of %d resamples", b, n)
                settled = True
                break
        if settled:
            break
    for i in range(b, n):  # started refits the stopping rule did not need
        if i in started and started[i][1] is not None:
            started[i][1].cancel()
    if done == 0:
        return {}
    per = {c.describe(): counts[i] / done for i, c in enumerate(finals)}
    seg = {c.describe(): seg_counts[i] / done for i, c in enumerate(finals)}
    low = cfg.criteria.min_stability
    return {
        "n_resamples": done,
        "max_resamples": n,
        "rows_per_refit": drawn_rows,
        "measures": (f"share of {done} refits, each on {drawn_rows} accounts drawn with replacement "
                     f"from the {len(pool)} non-held-out accounts (candidates proposed from SHAP "
                     f"values on at most {MAX_REFIT_SHAP_ROWS} of them), in which the criterion "
                     "reappeared"),
        "match": f"same kind and column(s); category-set or row Jaccard >= {MATCH_JACCARD}",
        "set_jaccard": float(np.mean(jaccards)),
        "icp_set_share": float(np.mean(whole)) if final.icp else None,
        "per_criterion": per,
        "per_segment": seg,
        "substitutes": {c.describe(): dict(sorted(subs[i].items(), key=lambda t: (-t[1], t[0])))
                        for i, c in enumerate(finals) if subs[i]},
        "unstable": [d for d, f in per.items() if f < low and seg[d] < low],
        "interchangeable": [d for d, f in per.items() if f < low <= seg[d]],
    }


def _substitute(final: Criterion, final_rows: np.ndarray, found: list[Criterion],
                found_masks: list[np.ndarray], matched: list[bool]) -> str | None:
    """The column(s) of the first criterion of a refit that stands in for ``final``: same
    kind, other columns, not itself a match of a final criterion, and a row-membership
    Jaccard >= :data:`MATCH_JACCARD` with ``final`` on the pool (``annual_revenue_musd <
    5.75`` for ``employees < 50`` where revenue follows headcount). None when none does."""
    for r, rm, m in zip(found, found_masks, matched, strict=True):
        if (not m and r.kind == final.kind and not set(r.columns) & set(final.columns)
                and _jaccard(final_rows, rm) >= MATCH_JACCARD):
            return ", ".join(r.columns)
    return None


def fidelity(tiers: pd.Series, fit_score: pd.Series, cohorts: pd.Series) -> dict:
    """Tier order vs the fit model on the same (held-out) accounts.

    How well the readable tiers reproduce the model's ranking: the ROC AUC of
    the tier order (Tier 1 > Tier 2 > Tier 3 > Excluded) for best vs worst, next
    to the model's own AUC, and the Spearman correlation of tier order and score.

    Parameters
    ----------
    tiers : pandas.Series
        Tier of each account.
    fit_score : pandas.Series of float
        Fit score of the same accounts.
    cohorts : pandas.Series
        Cohort of the same accounts (middle accounts are left out of the AUCs).

    Returns
    -------
    dict of str to float
        ``tiers_roc_auc``, ``model_roc_auc`` and ``spearman_tier_vs_score``; NaN
        when not estimable (one cohort only, or a single tier).
    """
    order = tiers.astype(str).map(TIER_ORDER).astype(float)
    ends = (cohorts != MIDDLE).to_numpy()
    y = (cohorts == BEST).to_numpy()[ends]
    out = {"tiers_roc_auc": np.nan, "model_roc_auc": np.nan, "spearman_tier_vs_score": np.nan}
    if len(np.unique(y)) == 2:
        out["tiers_roc_auc"] = float(roc_auc_score(y, order.to_numpy()[ends]))
        out["model_roc_auc"] = float(roc_auc_score(y, fit_score.to_numpy()[ends]))
    if order.nunique() > 1:
        out["spearman_tier_vs_score"] = float(stats.spearmanr(order, fit_score).statistic)
    return out
