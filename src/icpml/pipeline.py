"""``discover()``: the one entry point that runs every stage in order.

config -> data -> cohorts -> features (screen) -> models -> explain -> criteria
-> scoring -> tracking -> report. Notebooks, the CLI and scheduled jobs all call
:func:`discover`, so a result seen in one is reproduced exactly by the others.

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
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from icpml import __version__
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
from icpml.errors import ConfigError, DataError, OutputError
from icpml.explain import Explanation, explain
from icpml.features import ColumnScreen, screen_columns
from icpml.models import TrainedModel, train_model
from icpml.schema import Schema, learn_schema
from icpml.scoring import Scorer, assign_tiers, tier_summary
from icpml.stability import criteria_stability, fidelity, warm_workers

__all__ = ["discover", "Discovery"]

log = logging.getLogger(__name__)

#: SHAP on at most this many accounts when proposing criteria (exact but O(n)), and on at
#: most this many held-out accounts for the report's SHAP plots and the high-AUC warning.
_MAX_SHAP_ROWS = 5000


def _sample_by_cohort(rows: pd.DataFrame, cohort: pd.Series, n: int, seed: int) -> pd.DataFrame:
    """``rows`` when they are at most ``n``; else ``n`` of them, each cohort in proportion (seeded)."""
    if len(rows) <= n:
        return rows
    keep, _ = train_test_split(rows.index.to_numpy(), train_size=n, random_state=seed,
                               stratify=cohort.to_numpy())
    return rows.loc[rows.index.isin(keep)]


@dataclass
class Discovery:
    """Everything one discovery run produced; every stage's output is kept.

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
    fit : TrainedModel
        The fit model (best vs worst cohort).
    churn : TrainedModel or None
        The churn model (None without a churn column).
    fit_explanation : Explanation
        SHAP values of the fit model on held-out accounts.
    churn_explanation : Explanation or None
        The same for the churn model.
    criteria : CriteriaSet
        ICP and anti-ICP criteria with held-out evidence.
    scorer : Scorer
        Scores raw tables with these models and criteria.
    scored : pandas.DataFrame
        Every account scored (columns of :meth:`Scorer.score`).
    tiers : pandas.DataFrame
        Tier summary on held-out accounts (expected outcomes per tier).
    fingerprint : str
        Hash of the data and config (the cache key of :func:`icpml.load_or_discover`).
    warnings : list of str
        Caveats of the run, in words (also logged).
    timings : dict of str to float
        Seconds per stage.
    run_id : str, optional
        MLflow run id, set when tracked.
    report_dir : pathlib.Path, optional
        Report folder, set when reported.
    model_versions, model_aliases : dict of str to str
        Registered model versions and aliases, set when tracked.
    retrain : dict, optional
        Set by retraining: champion vs challenger comparison, criteria diff, drift.
    extras : dict
        Extra artifacts to log with the run: ``{artifact path: text or JSON-ready dict}``.
    schema : Schema, optional
        How each column's raw values were read (:mod:`icpml.schema`);
        ``schema.to_dict()`` is the contract stored in ``criteria.json``.
    """

    config: Config
    accounts: pd.DataFrame
    kinds: dict[str, str]
    screen: ColumnScreen
    value_score: pd.Series
    cohorts: pd.Series
    contrast: pd.DataFrame
    split: pd.Series
    fit: TrainedModel
    churn: TrainedModel | None
    fit_explanation: Explanation
    churn_explanation: Explanation | None
    criteria: CriteriaSet
    scorer: Scorer
    scored: pd.DataFrame
    tiers: pd.DataFrame
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    report_dir: Path | None = None
    model_versions: dict[str, str] = field(default_factory=dict)
    model_aliases: dict[str, str] = field(default_factory=dict)
    #: set by retraining: champion vs challenger comparison, criteria diff, drift
    retrain: dict | None = None
    #: extra artifacts to log with the run: {artifact path: text or JSON-ready dict}
    extras: dict = field(default_factory=dict)
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
            "fit_cv_roc_auc": self.fit.cv.get("roc_auc_mean", float("nan")),
            "fit_holdout_roc_auc": self.fit.holdout.get("roc_auc", float("nan")),
            "n_icp_criteria": len(self.criteria.icp),
            "n_anti_icp_criteria": len(self.criteria.anti_icp),
            "icp_coverage": ev.get("coverage", float("nan")),
            "icp_lift": ev.get("lift", float("nan")),
            "n_columns_set_aside": len(self.screen.excluded),
            "icp_tentative": float(bool(self.criteria.verdict.get("tentative"))),
        }
        if self.churn is not None:
            out["churn_holdout_roc_auc"] = self.churn.holdout.get("roc_auc", float("nan"))
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


def _high_auc_warning(fit: TrainedModel, expl: Explanation) -> str | None:
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

    def refit(index: pd.Index) -> tuple[Explanation, Explanation | None]:
        rows, coh = df.loc[index], cohorts.loc[index]
        ends = (coh != MIDDLE).to_numpy()
        y = (coh == BEST).to_numpy()[ends]
        fit = train_model("fit", rows[ends], y, rows[ends], y, fit_kinds, models_cfg)
        ch_expl = None
        if churn is not None and churned is not None and churned.loc[index].nunique() == 2:
            yc = churned.loc[index].to_numpy()
            ch_expl = explain(train_model("churn", rows, yc, rows, yc, churn.kinds, models_cfg), rows)
        return explain(fit, rows), ch_expl

    return refit


def _preflight(cfg: Config, *, track: bool, report: bool) -> None:
    """Fail in seconds, not after training, when the run's outputs cannot be written."""
    if track:
        from icpml import tracking
        from icpml.retrain import recover

        tracking.configure(cfg)  # TrackingError when the store is unreachable
        recover(cfg, history=False)  # what a killed run left: orphans, half-done promotions
    if report:
        folder = cfg.resolve(cfg.report.dir)
        existing = next((d for d in (folder, *folder.parents) if d.exists()), folder)
        if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
            where = "" if existing == folder else f" on '{existing}'"
            raise OutputError(f"cannot write reports to '{folder}' (permission denied{where}); "
                              "make it writable or set report.dir")


def discover(cfg: Config, accounts: pd.DataFrame | None = None, *, track: bool = False,
             report: bool = False, progress: Callable[[str, int, int], None] | None = None,
             source: str | None = None) -> Discovery:
    """Run the whole ICP discovery.

    Parameters
    ----------
    cfg : Config
    accounts : DataFrame, optional
        The account table; read from ``cfg.data.path`` when omitted. Not modified.
    track : bool, default False
        Log the run and register the models in MLflow (``icpml discover`` passes True).
        Off by default, so a notebook's discovery registers and promotes nothing unless
        asked: the first tracked run of a model name makes its versions ``@champion``.
    report : bool, default False
        Write ``reports/<run>/`` (report.html, criteria.md, criteria.json...).
    progress : callable, optional
        ``progress(stage, done, total)``, called before and after each stage, and during
        stability after each refit with ``stage`` such as ``"stability 3/8, ~40 s left at most"``.
    source : str, optional
        Name of the data source for messages and provenance.

    Returns
    -------
    Discovery

    Raises
    ------
    DataError, ConfigError, TrackingError, OutputError
        ``ConfigError`` when ``columns.product`` is set (use
        :func:`icpml.products.discover_products`). ``TrackingError`` / ``OutputError`` are raised before any model is
        trained when the tracking store or the report folder cannot be used.

    Examples
    --------
    A quick look at synthetic accounts, without the stability refits (the slowest
    stage; keep them for criteria you will act on):

    >>> from icpml import demo_config, discover, make_accounts
    >>> cfg = demo_config()
    >>> quick = cfg.model_copy(update={"criteria": cfg.criteria.model_copy(
    ...     update={"stability_resamples": 0})})
    >>> res = discover(quick, make_accounts(1200, seed=3))
    >>> res.criteria.verdict["icp_found"], len(res.scored) == len(res.accounts)
    (True, True)
    >>> sorted(res.scored["tier"].unique())[:1]
    ['Excluded']
    """
    if cfg.columns.product:  # one ICP per product line: products.discover_products runs this per line
        raise ConfigError(f"columns.product ('{cfg.columns.product}') gives one ICP per product "
                          "line: run icpml products (Python: icpml.products.discover_products)")
    stages = _Stages(progress, total=9 + int(track or report))
    warnings: list[str] = []

    with stages.stage("load"):
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
        warnings += schema.warnings + spelled if schema is not None else spelled
        fingerprint = data_fingerprint(accounts)

    with stages.stage("cohorts"):
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
        contrast = cohort_contrast(df, cohorts, cfg, kinds)

    _preflight(cfg, track=track, report=report)

    with stages.stage("screen"):
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
        warnings += screen.warnings
        fit_kinds = {c: k for c, k in kinds.items() if c not in screen.excluded}
        if not fit_kinds:
            raise DataError("every feature column was screened out as constant, identifier or leak; "
                            "list genuine pre-sale columns under columns.features", source)
        split = _split(cohorts, cfg, df[cfg.columns.date] if cfg.columns.date else None)
        warm_workers(int((split != "holdout").sum()), cfg)

    is_best = cohorts == BEST
    ends_mask = cohorts != MIDDLE
    churn_col = cfg.columns.churn
    churned = df[churn_col].astype(bool) if churn_col else None
    tr, sel, ho = (split == "train"), (split == "selection"), (split == "holdout")

    with stages.stage("fit model"):
        fit = train_model("fit", df[tr & ends_mask], is_best[tr & ends_mask].to_numpy(),
                          df[ho & ends_mask], is_best[ho & ends_mask].to_numpy(), fit_kinds,
                          cfg.models)
        log.info("fit model: cv roc_auc %.3f, holdout roc_auc %.3f",
                 fit.cv.get("roc_auc_mean", float("nan")), fit.holdout["roc_auc"])

    churn = None
    with stages.stage("churn model"):
        if churned is not None:
            churn_kinds = dict(fit_kinds)
            if cfg.models.churn_uses_post_sale:
                for c in cfg.columns.post_sale:
                    churn_kinds[c] = "numeric" if pd.api.types.is_numeric_dtype(df[c]) else "categorical"
            if churned[tr].nunique() == 2:
                churn = train_model("churn", df[tr], churned[tr].to_numpy(), df[ho],
                                    churned[ho].to_numpy(), churn_kinds, cfg.models)
                log.info("churn model: holdout roc_auc %.3f", churn.holdout["roc_auc"])
            else:
                warnings.append("the training split has a single churn value; no churn model")

    with stages.stage("explain"):
        propose = df[tr | sel]
        if len(propose) > _MAX_SHAP_ROWS:
            propose = propose.sample(_MAX_SHAP_ROWS, random_state=cfg.models.seed).sort_index()
        fit_prop = explain(fit, propose)
        churn_prop = explain(churn, propose) if churn is not None else None
        shown = _sample_by_cohort(df[ho], cohorts[ho], _MAX_SHAP_ROWS, cfg.models.seed)
        fit_expl = explain(fit, shown)
        churn_expl = explain(churn, shown) if churn is not None else None
        w = _high_auc_warning(fit, fit_expl)
        if w:
            warnings.append(w)

    with stages.stage("criteria"):
        allowed = list(fit_kinds)
        criteria = derive_criteria(
            fit_prop, churn_prop, kinds, allowed,
            CriteriaSplit(df, cohorts, split, churned, seed=cfg.models.seed,
                          refit=_refitter(df, cohorts, churned, fit_kinds, churn, cfg)),
            cfg=cfg.criteria, seed=cfg.models.seed,
        )
        hold_tiers = assign_tiers(criteria, df[ho])
        tiers = tier_summary(hold_tiers, is_best[ho], churned[ho] if churned is not None else None)
        criteria.tiers = {
            "definition": {
                "Tier 1": "meets every ICP criterion and no exclusion",
                "Tier 2": "misses exactly one ICP criterion, no exclusion",
                "Tier 3": "misses two or more ICP criteria, no exclusion",
                "Excluded": "at least one anti-ICP exclusion fires",
            },
            "holdout_summary": tiers.to_dict(orient="records"),
        }
        criteria.warnings = list(warnings)
        if schema is not None:  # the exports read each criterion column as discovery did
            used = set(criteria.columns)
            full = schema.to_dict()
            criteria.schema = {**full, "columns": {c: v for c, v in full["columns"].items()
                                                   if c in used}}
        criteria.meta.update({
            "icpml_version": __version__,
            "data_fingerprint": fingerprint,
            "n_accounts": len(df),
            "n_holdout": int(ho.sum()),
            "n_selection": int(sel.sum()),
            "n_train": int(tr.sum()),
            "cohorts": {
                "best_quantile": cfg.cohorts.best_quantile,
                "worst_quantile": cfg.cohorts.worst_quantile,
                "value_score": [m.model_dump() for m in cfg.columns.outcomes],
            },
            "fit_model": {"holdout_roc_auc": fit.holdout["roc_auc"],
                          "cv_roc_auc": fit.cv.get("roc_auc_mean")},
            "churn_model": ({"holdout_roc_auc": churn.holdout["roc_auc"]} if churn else None),
            "screened_out": dict(sorted(screen.excluded.items())),
            "leakage_signals": {c: screen.signals[c] for c in sorted(screen.excluded)
                                if c in screen.signals},
        })

    criteria.meta["shap_rows"] = {"proposal": len(propose), "proposal_total": int((tr | sel).sum()),
                                  "holdout": len(shown), "holdout_total": int(ho.sum())}

    with stages.stage("score"):
        categories = {c: sorted(df[c].dropna().astype(str).unique()) for c, k in kinds.items()
                      if k == "categorical" and c not in screen.excluded}
        scorer = Scorer(fit=fit, churn=churn, criteria=criteria, id_column=cfg.columns.id,
                        categories=categories, name_column=cfg.columns.name,
                        schema=schema)
        scored = scorer.score(df)
        scored.insert(1, "cohort", cohorts.to_numpy())
        scored.insert(2, "split", split.to_numpy())
        hs = scored[ho.to_numpy()]
        criteria.meta["fidelity"] = fidelity(hs["tier"], hs["fit_score"], cohorts[ho])

    with stages.stage("stability"):
        stab = criteria_stability(df, cohorts, split, fit_kinds,
                                  churn.kinds if churn is not None else None, criteria, cfg,
                                  churned, progress=lambda i, n: stages.step("stability", i, n))
        criteria.meta["stability"] = stab
        apply_stability(criteria, stab)
        for d in stab.get("unstable", []):
            w = (f"criterion '{d}' reappeared in only {stab['per_criterion'][d]:.0%} of "
                 f"{stab['n_resamples']} resamples: treat it as tentative")
            warnings.append(w)
            criteria.warnings.append(w)

    res = Discovery(
        config=cfg, accounts=df, kinds=kinds, screen=screen, value_score=score, cohorts=cohorts,
        contrast=contrast, split=split, fit=fit, churn=churn, fit_explanation=fit_expl,
        churn_explanation=churn_expl, criteria=criteria, scorer=scorer, scored=scored,
        tiers=tiers, fingerprint=fingerprint, warnings=warnings, schema=schema,
    )
    for w in warnings:
        log.warning(w)
    if track:
        from icpml import tracking

        # the report is written inside the run: its folder is named after the run id
        with stages.stage("track + report" if report else "track"):
            tracking.log_discovery(res, write_report=report)
    elif report:
        from icpml import report as report_mod

        with stages.stage("report"):
            res.report_dir = report_mod.write_report(res)
    res.timings = stages.timings
    return res
