"""``discover()``: the pure core that runs every stage in order.

config -> data -> cohorts -> features (screen) -> models -> explain -> criteria
-> scoring -> stability. It writes no file, logs no MLflow run and returns a frozen
:class:`Discovery`. Recording a run (MLflow, the report) is the edge's job:
:func:`icpml.run.run_discovery`, which the CLI, retraining and per-product runs call, so
a result seen in a notebook is reproduced exactly by them.

Rows are split once, stratified by cohort, into three disjoint parts:

* **train** fits both models (and their cross-validation);
* **selection** chooses which candidate criteria to keep;
* **holdout** measures everything reported (model metrics, criterion evidence,
  tier outcomes), on accounts that influenced neither the models nor the choice.

On small data the criteria stage uses K-fold cross-fitting over all accounts
instead (models refit per fold; see :func:`icpml.criteria.use_crossfit`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from icpml._stats import sample_by_class
from icpml._vocab import VERSION as __version__
from icpml.cohorts import BEST, MIDDLE, WORST, cohort_contrast, label_cohorts, value_score
from icpml.config import Config
from icpml.criteria import CriteriaSet, CriteriaSplit, apply_stability, derive_criteria
from icpml.data import (
    data_fingerprint,
    feature_kinds,
    load_source,
    normalize_categories,
    validate_accounts,
)
from icpml.errors import ConfigError, DataError
from icpml.explain import GroupedShap, explain
from icpml.features import ColumnScreen, screen_columns
from icpml.models import TrainedModel, blas_threads, train_model
from icpml.provenance import library_versions
from icpml.schema import Schema, learn_schema
from icpml.scoring import TIER_DEFINITIONS, Scorer, assign_tiers, tier_summary
from icpml.stability import (
    criteria_stability,
    fidelity,
    fork_workers,
    in_worker,
    release_workers,
    start_stability,
    warm_workers,
)

__all__ = ["discover", "Discovery"]

log = logging.getLogger(__name__)

#: SHAP on at most this many accounts when proposing criteria (exact but O(n)).
_MAX_SHAP_ROWS = 5000
#: Held-out accounts explained for the report's SHAP plots and the high-AUC warning.
_MAX_HOLDOUT_SHAP_ROWS = 2500


def _sample_by_cohort(rows: pd.DataFrame, cohort: pd.Series, n: int, seed: int) -> pd.DataFrame:
    """``rows`` when they are at most ``n``; else ``n`` of them, each cohort in proportion (seeded)."""
    if len(rows) <= n:
        return rows
    keep = rows.index.to_numpy()[sample_by_class(cohort.to_numpy(), n, seed)]
    return rows.loc[rows.index.isin(keep)]


@dataclass(frozen=True)
class Discovery:
    """Everything one discovery produced; every stage's output is kept. Frozen: the edge
    (:func:`icpml.run.run_discovery`) records a run beside it, never in it.

    Parameters
    ----------
    config : Config
        The config of the run.
    accounts : pandas.DataFrame
        The validated account table, one row per account.
    kinds : dict of str to str
        Kind (``numeric``, ``categorical``, ``boolean``) of each targetable column.
    screen : ColumnScreen
        Identifier / leakage screening of the targetable columns.
    value_score : pandas.Series
        Composite value score of each account (weighted percentile ranks of the
        outcomes, 0-1).
    cohorts : pandas.Series
        ``best`` / ``middle`` / ``worst`` of each account.
    contrast : pandas.DataFrame
        Best vs worst per feature (:func:`icpml.cohorts.cohort_contrast`).
    split : pandas.Series
        ``train`` / ``selection`` / ``holdout`` per account.
    fit_model, churn_model : TrainedModel
        The fit model (best vs worst cohort) and the churn model (None without a churn
        column).
    fit_explanation, churn_explanation : GroupedShap
        SHAP on held-out accounts.
    criteria : CriteriaSet
        ICP and anti-ICP criteria with held-out evidence.
    scorer : Scorer
        Scores raw tables with these models and criteria.
    scored : pandas.DataFrame
        Every account scored (columns of :meth:`Scorer.score`).
    tiers : pandas.DataFrame
        Tier summary on held-out accounts (expected outcomes per tier).
    fingerprint : str
        Hash of the input table (:func:`icpml.data.data_fingerprint`).
    warnings : list of str
    timings : dict
        Seconds per stage.
    schema : Schema or None
        How each column's raw values were read (:mod:`icpml.schema`).
    """

    config: Config
    accounts: pd.DataFrame
    kinds: dict[str, str]
    screen: ColumnScreen
    value_score: pd.Series
    cohorts: pd.Series
    contrast: pd.DataFrame
    split: pd.Series
    fit_model: TrainedModel
    churn_model: TrainedModel | None
    fit_explanation: GroupedShap
    churn_explanation: GroupedShap | None
    criteria: CriteriaSet
    scorer: Scorer
    scored: pd.DataFrame
    tiers: pd.DataFrame
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: how each column's raw values were read (:mod:`icpml.schema`); ``schema.to_dict()``
    #: is the contract stored in criteria.json
    schema: Schema | None = None

    def summary(self) -> dict:
        """Headline figures (also logged as MLflow metrics).

        Returns
        -------
        dict of str to float
            ``n_accounts``, ``fit_cv_roc_auc``, ``fit_holdout_roc_auc``,
            ``n_icp_criteria``, ``n_anti_icp_criteria``, ``icp_coverage`` (share),
            ``icp_lift`` (ratio), ``n_columns_set_aside``, ``icp_tentative`` (0 or 1)
            and, with a churn model, ``churn_holdout_roc_auc``; NaN where not measured.
        """
        ev = self.criteria.icp_evidence
        out = {
            "n_accounts": len(self.accounts),
            "fit_cv_roc_auc": self.fit_model.cv.get("roc_auc_mean", float("nan")),
            "fit_holdout_roc_auc": self.fit_model.holdout.get("roc_auc", float("nan")),
            "n_icp_criteria": len(self.criteria.icp),
            "n_anti_icp_criteria": len(self.criteria.anti_icp),
            "icp_coverage": ev.get("coverage", float("nan")),
            "icp_lift": ev.get("lift", float("nan")),
            "n_columns_set_aside": len(self.screen.excluded),
            "icp_tentative": float(bool(self.criteria.verdict.get("tentative"))),
        }
        if self.churn_model is not None:
            out["churn_holdout_roc_auc"] = self.churn_model.holdout.get("roc_auc", float("nan"))
        return out


class _Stages:
    """Times each stage and reports it (log line; optional progress callback).

    A stage that runs longer than :data:`HEARTBEAT_SECONDS` logs a line every
    :data:`HEARTBEAT_SECONDS` (with its latest step count and time left, if it reports
    steps), so an unattended run never goes quiet for long.
    """

    def __init__(self, progress: Callable[[str, int, int], None] | None, total: int):
        self.progress = progress
        self.total = total
        self.done = 0
        self.timings: dict[str, float] = {}
        self._where = ""
        self._t0 = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name, self.done, self.total)
        t0 = self._t0 = time.perf_counter()
        self._where = name
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop, name, t0), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
        dt = time.perf_counter() - t0
        self.timings[name] = round(dt, 3)
        self.done += 1
        log.info("stage=%s seconds=%.2f", name, dt)
        if self.progress:
            self.progress(name, self.done, self.total)

    def step(self, name: str, i: int, n: int) -> None:
        """Step ``i`` of at most ``n`` of the current stage is done: progress text and ETA."""
        elapsed = time.perf_counter() - self._t0
        left = elapsed / i * (n - i) if i else float("nan")
        self._where = f"{name} {i}/{n}" + (f", ~{left:.0f} s left at most" if i < n else "")
        log.debug("stage=%s step=%d/%d seconds=%.1f", name, i, n, elapsed)
        if self.progress:
            self.progress(self._where, self.done, self.total)

    def _heartbeat(self, stop: threading.Event, name: str, t0: float) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            log.info("stage=%s running seconds=%.0f (%s)", name, time.perf_counter() - t0, self._where)


#: A stage running longer than this logs a line this often.
HEARTBEAT_SECONDS = 30.0


def _split(cohorts: pd.Series, cfg: Config, dates: pd.Series | None = None) -> pd.Series:
    """train / selection / holdout labels, stratified by cohort, seeded.

    With a date column the holdout is *out of time*: the newest ``holdout_size``
    share of accounts, so the evidence says how the ICP does on customers who
    arrived after everything it learned from.
    """
    seed = cfg.models.seed
    idx = cohorts.index.to_numpy()
    strat = cohorts.to_numpy()
    if min(pd.Series(strat).value_counts()) < 4:
        strat = None
    if dates is not None and dates.notna().any():
        order = dates.rank(method="first", na_option="top").sort_values(kind="stable").index
        n_hold = int(round(cfg.models.holdout_size * len(order)))
        hold, rest = order[len(order) - n_hold:].to_numpy(), order[:len(order) - n_hold].to_numpy()
    else:
        rest, hold = train_test_split(idx, test_size=cfg.models.holdout_size, random_state=seed,
                                      stratify=strat)
    strat_rest = cohorts.loc[rest].to_numpy() if strat is not None else None
    train, sel = train_test_split(rest, test_size=cfg.models.selection_size, random_state=seed + 1,
                                  stratify=strat_rest)
    split = pd.Series("train", index=cohorts.index, name="split", dtype="string")
    split.loc[sel] = "selection"
    split.loc[hold] = "holdout"
    return split


#: A fit model this good on held-out accounts is more often reading an outcome than a trait.
_SUSPECT_AUC = 0.95


def _high_auc_warning(fit: TrainedModel, expl: GroupedShap) -> str | None:
    """A warning when the fit model's held-out ROC AUC reaches 0.95, naming what carries it.

    The columns named are the fewest that hold half of the mean |SHAP| on held-out accounts
    (at least one), each with its share.
    """
    auc = fit.holdout.get("roc_auc", float("nan"))
    if not auc >= _SUSPECT_AUC or expl.values.empty:
        return None
    mass = expl.values.abs().mean()
    share = (mass / mass.sum()).sort_values(ascending=False, kind="stable") if mass.sum() > 0 else mass
    top, total = [], 0.0
    for col, s in share.items():
        top.append(f"{col} {s:.0%}")
        total += s
        if total >= 0.5:
            break
    return (f"the fit model separates best from worst almost perfectly (held-out ROC AUC {auc:.3f}); "
            f"most of it comes from {', '.join(top)} of the SHAP mass: make sure these are known "
            "before the sale (not outcomes, post-sale or contact-outcome measures)")


def _refitter(df: pd.DataFrame, cohorts: pd.Series, churned: pd.Series | None,
              fit_kinds: dict[str, str], churn: TrainedModel | None, cfg: Config):
    """``refit(index)`` for cross-fitted criteria: both models fit on those accounts only
    (no cross-validation), SHAP on the same accounts."""
    models_cfg = cfg.models.model_copy(update={"cv_folds": 1})

    def refit(index: pd.Index) -> tuple[GroupedShap, GroupedShap | None]:
        rows, coh = df.loc[index], cohorts.loc[index]
        ends = (coh != MIDDLE).to_numpy()
        y = (coh == BEST).to_numpy()[ends]
        fit = train_model("fit", rows[ends], y, rows[ends], y, fit_kinds, models_cfg,
                          announce=False)
        ch_expl = None
        if churn is not None and churned is not None and churned.loc[index].nunique() == 2:
            yc = churned.loc[index].to_numpy()
            ch_expl = explain(train_model("churn", rows, yc, rows, yc, churn.kinds, models_cfg,
                                          announce=False), rows)
        return explain(fit, rows), ch_expl

    return refit


def _load(cfg: Config, accounts: pd.DataFrame | None, source: str | None):
    """The validated table, column kinds, schema, fingerprint, source name and warnings."""
    if accounts is None:
        accounts, loaded_from = load_source(cfg)
        source = source or loaded_from
    source = source or "accounts"
    # one reading of every value, learned from the raw table, used by scoring too
    schema = (learn_schema(accounts.loc[:, ~accounts.columns.duplicated()], cfg)
              if isinstance(accounts, pd.DataFrame) else None)
    df = validate_accounts(accounts, cfg, source=source, schema=schema)
    kinds = feature_kinds(df, cfg)
    df, spelled = normalize_categories(df, [c for c, k in kinds.items() if k == "categorical"])
    warnings = schema.warnings + spelled if schema is not None else list(spelled)
    return df, kinds, schema, data_fingerprint(accounts), source, warnings


def _cohorts(df: pd.DataFrame, cfg: Config, kinds: dict[str, str], source: str,
             warnings: list[str]) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Value score, cohort labels and the best-vs-worst contrast; DataError on a thin cohort."""
    score = value_score(df, cfg.columns.outcomes)
    if score.isna().any():
        n = int(score.isna().sum())
        warnings.append(f"{n} account(s) have no outcome values and sit in the middle cohort")
    cohorts = label_cohorts(score, cfg.cohorts.best_quantile, cfg.cohorts.worst_quantile)
    counts = cohorts.value_counts()
    for c in (BEST, WORST):
        if counts.get(c, 0) < cfg.cohorts.min_per_cohort:
            raise DataError(
                f"the {c} cohort has {counts.get(c, 0)} accounts (fewer than "
                f"cohorts.min_per_cohort={cfg.cohorts.min_per_cohort}); the outcome columns "
                "may be constant: check columns.outcomes", source)
    return score, cohorts, cohort_contrast(df, cohorts, cfg, kinds)


def _screen(df: pd.DataFrame, cfg: Config, kinds: dict[str, str], cohorts: pd.Series,
            score: pd.Series, source: str) -> tuple[ColumnScreen, dict[str, str]]:
    """Identifier / leakage screen (``score``: the value score, for the within-cohort
    tracking signal) and the kinds of the columns the models may use."""
    ends = cohorts[cohorts != MIDDLE]
    churn_col = cfg.columns.churn
    outcome_cols = [m.column for m in cfg.columns.outcomes] + list(cfg.columns.post_sale)
    screen = screen_columns(
        df, kinds, ends == BEST, trusted=cfg.columns.trusted,
        leakage_auc=cfg.models.leakage_auc,
        churned=df[churn_col].astype(bool) if churn_col else None,
        outcome_columns=outcome_cols + ([churn_col] if churn_col else []),
        post_sale=list(cfg.columns.post_sale), value=score,
        seed=cfg.models.seed)
    fit_kinds = {c: k for c, k in kinds.items() if c not in screen.excluded}
    if not fit_kinds:
        raise DataError("every feature column was screened out as constant, identifier or leak; "
                        "list genuine pre-sale columns under columns.features", source)
    return screen, fit_kinds


def _churn_kinds(df: pd.DataFrame, cfg: Config, churned: pd.Series | None, split: pd.Series,
                 fit_kinds: dict[str, str], warnings: list[str]) -> dict[str, str] | None:
    """The churn model's columns and kinds (the fit model's, plus the post-sale columns when
    ``models.churn_uses_post_sale``), or None without a churn column or with a single churn
    value in the training rows (a warning says so)."""
    if churned is None:
        return None
    if churned[split == "train"].nunique() != 2:
        warnings.append("the training split has a single churn value; no churn model")
        return None
    kinds = dict(fit_kinds)
    if cfg.models.churn_uses_post_sale:
        for c in cfg.columns.post_sale:
            kinds[c] = "numeric" if pd.api.types.is_numeric_dtype(df[c]) else "categorical"
    return kinds


def _start_churn_model(df: pd.DataFrame, cfg: Config, churned: pd.Series | None,
                       split: pd.Series, kinds: dict[str, str] | None,
                       ) -> Callable[[], TrainedModel | None]:
    """Start training the churn model (train rows, held-out metrics); returns a function
    that gives it. On a large table it trains in a stability worker process while this
    process trains the fit model (:func:`icpml.stability.in_worker`); else when asked."""
    if kinds is None:
        return lambda: None
    tr, ho = split == "train", split == "holdout"
    args = ("churn", df[tr], churned[tr].to_numpy(), df[ho], churned[ho].to_numpy(), kinds,
            cfg.models)
    job = in_worker(int((~ho).sum()), cfg, train_model, *args)

    def result() -> TrainedModel:
        churn = job.result() if job is not None else train_model(*args)
        log.info("churn model: holdout roc_auc %.3f", churn.holdout["roc_auc"])
        return churn
    return result


def _provenance(cfg: Config, df: pd.DataFrame, split: pd.Series, fingerprint: str,
                fit: TrainedModel, churn: TrainedModel | None, screen: ColumnScreen) -> dict:
    """What criteria.json records about the run: versions, data, split, cohorts, models,
    screened columns (the one place run provenance is assembled; tracking adds the run id
    and the library versions)."""
    return {
        "icpml_version": __version__,
        "library_versions": library_versions(),
        "data_fingerprint": fingerprint,
        "n_accounts": len(df),
        "n_holdout": int((split == "holdout").sum()),
        "n_selection": int((split == "selection").sum()),
        "n_train": int((split == "train").sum()),
        "cohorts": {
            "best_quantile": cfg.cohorts.best_quantile,
            "worst_quantile": cfg.cohorts.worst_quantile,
            "value_score": [m.model_dump() for m in cfg.columns.outcomes],
        },
        "fit_model": {"holdout_roc_auc": fit.holdout["roc_auc"],
                      "cv_roc_auc": fit.cv.get("roc_auc_mean"), "train_rows": fit.train_rows},
        "churn_model": ({"holdout_roc_auc": churn.holdout["roc_auc"],
                         "train_rows": churn.train_rows} if churn else None),
        "screened_out": dict(sorted(screen.excluded.items())),
        "leakage_signals": {c: screen.signals[c] for c in sorted(screen.excluded)
                            if c in screen.signals},
    }


@dataclass(frozen=True)
class _Fitted:
    """What the stages before the criteria produced (inputs of :func:`_criteria_stages`)."""

    df: pd.DataFrame
    kinds: dict[str, str]
    fit_kinds: dict[str, str]
    cohorts: pd.Series
    split: pd.Series
    churned: pd.Series | None
    fit_model: TrainedModel
    churn_model: TrainedModel | None
    schema: Schema | None
    started: dict  # stability refits submitted early (:func:`icpml.stability.start_stability`)


def _criteria_stages(stages: _Stages, cfg: Config, f: _Fitted, fit_prop: GroupedShap,
                     churn_prop: GroupedShap | None, meta: dict, warnings: list[str]):
    """Criteria, scoring and stability: returns the complete CriteriaSet (tiers, warnings,
    schema, provenance, fidelity, stability and verdict all set here, never edited after),
    the Scorer, every account scored and the held-out tier summary."""
    df, cohorts, split, churned = f.df, f.cohorts, f.split, f.churned
    ho = split == "holdout"
    is_best = cohorts == BEST
    with stages.stage("criteria"):
        criteria = derive_criteria(
            fit_prop, churn_prop, f.kinds, list(f.fit_kinds),
            CriteriaSplit(df, cohorts, split, churned, seed=cfg.models.seed,
                          refit=_refitter(df, cohorts, churned, f.fit_kinds, f.churn_model, cfg)),
            cfg=cfg.criteria, seed=cfg.models.seed,
        )
        tiers = tier_summary(assign_tiers(criteria, df[ho]), is_best[ho],
                             churned[ho] if churned is not None else None)
        criteria.tiers = {"definition": dict(TIER_DEFINITIONS),
                          "holdout_summary": tiers.to_dict(orient="records")}
        criteria.warnings = list(warnings)
        if f.schema is not None:  # the exports read each criterion column as discovery did
            used = set(criteria.columns)
            full = f.schema.to_dict()
            criteria.schema = {**full, "columns": {c: v for c, v in full["columns"].items()
                                                   if c in used}}
        criteria.meta.update(meta)

    with stages.stage("score"):
        categories = {c: sorted(df[c].dropna().astype(str).unique())
                      for c, k in f.kinds.items() if k == "categorical" and c in f.fit_kinds}
        scorer = Scorer(fit_model=f.fit_model, churn_model=f.churn_model, criteria=criteria,
                        id_column=cfg.columns.id, categories=categories,
                        name_column=cfg.columns.name, schema=f.schema)
        scored = scorer.score(df)
        scored.insert(1, "cohort", cohorts.to_numpy())
        scored.insert(2, "split", split.to_numpy())
        hs = scored[ho.to_numpy()]
        criteria.meta["fidelity"] = fidelity(hs["tier"], hs["fit_score"], cohorts[ho])

    with stages.stage("stability"):
        churn_kinds = f.churn_model.kinds if f.churn_model is not None else None
        stab = criteria_stability(df, cohorts, split, f.fit_kinds, churn_kinds, criteria, cfg,
                                  churned, progress=lambda i, n: stages.step("stability", i, n),
                                  started=f.started)
        criteria.meta["stability"] = stab
        apply_stability(criteria, stab)
        for d in stab.get("unstable", []):
            w = (f"criterion '{d}' reappeared in only {stab['per_criterion'][d]:.0%} of "
                 f"{stab['n_resamples']} resamples: treat it as tentative")
            warnings.append(w)
            criteria.warnings.append(w)
        for d in stab.get("interchangeable", []):
            by = ", ".join(stab["substitutes"].get(d, {}))
            w = (f"criterion '{d}' reappeared in {stab['per_criterion'][d]:.0%} of "
                 f"{stab['n_resamples']} resamples as itself, in {stab['per_segment'][d]:.0%} "
                 f"counting {by} standing in for it: the accounts it selects are stable, the "
                 f"column is interchangeable with {by}")
            warnings.append(w)
            criteria.warnings.append(w)
    return criteria, scorer, scored, tiers


#: the stages :func:`discover` reports through ``progress``
N_STAGES = 9


def discover(cfg: Config, accounts: pd.DataFrame | None = None, *,
             progress: Callable[[str, int, int], None] | None = None,
             source: str | None = None) -> Discovery:
    """Run the whole ICP discovery, purely: no MLflow run, no report, no file written.

    To log the run, register the models and write the report, call
    :func:`icpml.run.run_discovery` (what ``icpml discover`` does).

    Parameters
    ----------
    cfg : Config
    accounts : DataFrame, optional
        The account table; read from ``cfg.data.path`` when omitted. Not modified.
    progress : callable, optional
        ``progress(stage, done, total)``, called before and after each of the
        :data:`N_STAGES` stages, and during stability after each refit with ``stage`` such
        as ``"stability 3/8, ~40 s left at most"``.
    source : str, optional
        Name of the data source for messages and provenance.

    Returns
    -------
    Discovery
        Frozen; its ``criteria`` is complete (evidence, tiers, provenance, stability).

    Raises
    ------
    DataError, ConfigError

    Examples
    --------
    A quick look at synthetic accounts, without the stability refits (the slowest
    stage; keep them for criteria you will act on):

    >>> from icpml import demo_config, discover, make_accounts
    >>> res = discover(demo_config(), make_accounts(1200, seed=3))
    >>> sorted(res.scored["tier"].unique())[:1]
    ['Excluded']
    """
    if cfg.columns.product:  # one ICP per product line: products.discover_products runs this per line
        raise ConfigError(f"columns.product ('{cfg.columns.product}') gives one ICP per product "
                          "line: run icpml products (Python: icpml.products.discover_products)")
    with blas_threads():  # numpy's BLAS threads only spin on these small products
        # the refit workers fork now (imports shared, no copy of the table), where they may be used
        fork_workers(cfg, len(accounts) if isinstance(accounts, pd.DataFrame) else None)
        try:
            return _discover(cfg, accounts, progress, source)
        finally:
            release_workers()


def _discover(cfg: Config, accounts: pd.DataFrame | None,
              progress: Callable[[str, int, int], None] | None, source: str | None) -> Discovery:
    """:func:`discover`'s stages, in order."""
    stages = _Stages(progress, total=N_STAGES)
    with stages.stage("load"):
        df, kinds, schema, fingerprint, source, warnings = _load(cfg, accounts, source)
    warm_workers(len(df), cfg)  # a large table's refit workers import while cohorts / screen run
    with stages.stage("cohorts"):
        score, cohorts, contrast = _cohorts(df, cfg, kinds, source, warnings)
    with stages.stage("screen"):
        screen, fit_kinds = _screen(df, cfg, kinds, cohorts, score, source)
        warnings += screen.warnings
        split = _split(cohorts, cfg, df[cfg.columns.date] if cfg.columns.date else None)
        churned = df[cfg.columns.churn].astype(bool) if cfg.columns.churn else None
        churn_kinds = _churn_kinds(df, cfg, churned, split, fit_kinds, warnings)
        # on a large table the churn model (while this process trains the fit model) and the
        # first stability refits run in worker processes from here on
        churn_model = _start_churn_model(df, cfg, churned, split, churn_kinds)
        started = start_stability(df, cohorts, split, fit_kinds, churn_kinds, cfg, churned)

    is_best, ends = cohorts == BEST, cohorts != MIDDLE
    tr, sel, ho = (split == "train"), (split == "selection"), (split == "holdout")
    with stages.stage("fit model"):
        fit = train_model("fit", df[tr & ends], is_best[tr & ends].to_numpy(),
                          df[ho & ends], is_best[ho & ends].to_numpy(), fit_kinds, cfg.models)
        log.info("fit model: cv roc_auc %.3f, holdout roc_auc %.3f",
                 fit.cv.get("roc_auc_mean", float("nan")), fit.holdout["roc_auc"])
    with stages.stage("churn model"):
        churn = churn_model()
    with stages.stage("explain"):
        propose = df[tr | sel]
        if len(propose) > _MAX_SHAP_ROWS:
            propose = propose.sample(_MAX_SHAP_ROWS, random_state=cfg.models.seed).sort_index()
        fit_prop = explain(fit, propose)
        churn_prop = explain(churn, propose) if churn is not None else None
        shown = _sample_by_cohort(df[ho], cohorts[ho], _MAX_HOLDOUT_SHAP_ROWS, cfg.models.seed)
        fit_expl = explain(fit, shown)
        churn_expl = explain(churn, shown) if churn is not None else None
        if w := _high_auc_warning(fit, fit_expl):
            warnings.append(w)

    meta = _provenance(cfg, df, split, fingerprint, fit, churn, screen)
    meta["shap_rows"] = {"proposal": len(propose), "proposal_total": int((tr | sel).sum()),
                         "holdout": len(shown), "holdout_total": int(ho.sum())}
    fitted = _Fitted(df, kinds, fit_kinds, cohorts, split, churned, fit, churn, schema, started)
    criteria, scorer, scored, tiers = _criteria_stages(stages, cfg, fitted, fit_prop, churn_prop,
                                                       meta, warnings)
    for w in warnings:
        log.warning(w)
    return Discovery(
        config=cfg, accounts=df, kinds=kinds, screen=screen, value_score=score, cohorts=cohorts,
        contrast=contrast, split=split, fit_model=fit, churn_model=churn, fit_explanation=fit_expl,
        churn_explanation=churn_expl, criteria=criteria, scorer=scorer, scored=scored,
        tiers=tiers, fingerprint=fingerprint, warnings=warnings, schema=schema,
        timings=stages.timings,
    )
