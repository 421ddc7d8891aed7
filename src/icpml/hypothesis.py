"""Hypothesis testing of an ICP on data: the feedback loop and the hand-written hypothesis ICP.

(Schema checks of an account table are elsewhere: :func:`icpml.data.validate_accounts`.)

Two questions, one kind of evidence:

* **Did the ICP work?** Given accounts whose outcomes became known after a
  model version was trained, :func:`validate_tiers` scores them with that
  version and reports, per tier and for ICP matches vs the rest, how often they
  reached the best cohort and how often they churned, with Wilson intervals for
  rates and a bootstrap interval for lift.
* **Does *our* ICP hold?** A team writes its current ICP in YAML with the same
  vocabulary as ``criteria.json`` (:func:`load_hypothesis`);
  :func:`evaluate_criteria` measures it on the data with the same evidence as a
  discovered ICP (coverage, best-cohort rate, lift with interval, churn inside
  vs outside, best customers wrongly excluded, BH-corrected p-values). With too
  few customers for a model, this is how an early-stage company starts.

Hypothesis file::

    icp:
      - {column: industry, op: in, values: [SaaS, FinTech]}
      - {column: employees, op: between, low: 150, high: 600}
    anti_icp:
      - {column: requires_onprem, op: "==", values: [true]}
      - column: requires_onprem            # an interaction: both must hold
        op: "=="
        values: [true]
        also: [{column: employees, op: "<", high: 200}]
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from scipy import stats

from icpml._stats import benjamini_hochberg
from icpml.cohorts import BEST, WORST, label_cohorts, value_score
from icpml.config import Config, format_validation_error
from icpml.criteria import CriteriaSet, Criterion, segment_evidence
from icpml.errors import ConfigError

__all__ = ["load_hypothesis", "evaluate_criteria", "validate_tiers", "wilson_interval"]


class _RuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str
    op: Literal["in", "not_in", "between", "<", "<=", ">", ">=", "==", "is_missing"]
    values: list[str | int | float | bool] = []
    low: float | None = None
    high: float | None = None
    also: list[_RuleSpec] = []

    @model_validator(mode="after")
    def _complete(self):
        if self.op in ("in", "not_in", "==") and not self.values:
            raise ValueError(f"'{self.column}' with op '{self.op}' needs values: [...]")
        if self.op == "between" and (self.low is None or self.high is None):
            raise ValueError(f"'{self.column}' with op 'between' needs low and high")
        if self.op in (">", ">=") and self.low is None:
            raise ValueError(f"'{self.column}' with op '{self.op}' needs low")
        if self.op in ("<", "<=") and self.high is None:
            raise ValueError(f"'{self.column}' with op '{self.op}' needs high")
        return self

    def criterion(self, kind: str) -> Criterion:
        # numbers stay numbers: a code set on a numeric column (risk_class in [1, 4])
        values = tuple(v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
                       for v in self.values)
        return Criterion(kind, self.column, self.op, values=values,
                         low=self.low, high=self.high, source="hypothesis",
                         also=tuple(p.criterion(kind) for p in self.also))


class _Hypothesis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    icp: list[_RuleSpec] = []
    anti_icp: list[_RuleSpec] = []


def load_hypothesis(source: str | Path | Mapping[str, Any], cfg: Config | None = None) -> CriteriaSet:
    """Read a hand-written ICP / anti-ICP into a :class:`CriteriaSet`.

    The hypothesis uses the vocabulary of ``criteria.json`` (see the module
    docstring): two lists, ``icp`` and ``anti_icp``, of rules ``{column, op,
    values | low | high, also}``. Every rule becomes one :class:`Criterion` with
    ``source="hypothesis"`` and no evidence yet; :func:`evaluate_criteria`
    measures them.

    Parameters
    ----------
    source : str, path-like or mapping
        A YAML file, or the same content already in memory as a mapping
        (``{"icp": [...], "anti_icp": [...]}``), e.g. from a notebook.
    cfg : Config, optional
        When given, every column a rule names must be one of
        ``cfg.columns.features`` (the only columns criteria may target).

    Returns
    -------
    CriteriaSet
        ``icp`` and ``anti_icp`` lists in file order; ``meta``, ``schema`` and the
        evidence fields are empty.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, or ``source`` is neither a path nor a
        mapping; unknown keys or operators; incomplete
        rules (e.g. ``between`` without ``low``/``high``); or (with ``cfg``) a
        column that is not a targetable feature.

    Examples
    --------
    >>> from icpml.hypothesis import load_hypothesis
    >>> cs = load_hypothesis({"icp": [{"column": "industry", "op": "in",
    ...                                "values": ["SaaS", "FinTech"]}]})
    >>> [c.describe() for c in cs.icp]
    ['industry in {SaaS, FinTech}']
    """
    if isinstance(source, Mapping):
        p, raw = "hypothesis", dict(source)
        try:
            hyp = _Hypothesis.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, p, _Hypothesis)) from None
    elif not isinstance(source, (str, PathLike)):
        raise ConfigError(f"hypothesis: expected a YAML file or a mapping with 'icp' / 'anti_icp' "
                          f"lists, got {type(source).__name__}")
    else:
        p = Path(source)
        if not p.is_file():
            raise ConfigError(f"criteria file '{p}' does not exist; pass --criteria with a YAML file")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            hyp = _Hypothesis.model_validate(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{p}: not valid YAML; fix the syntax") from None
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, str(p), _Hypothesis)) from None
    features = set(cfg.columns.feature_columns) if cfg else None
    out = CriteriaSet()
    for kind, specs in (("icp", hyp.icp), ("anti_icp", hyp.anti_icp)):
        for s in specs:
            crit = s.criterion(kind)
            for col in crit.columns:
                if features is not None and col not in features:
                    raise ConfigError(f"{p}: column '{col}' is not a targetable feature in the "
                                      "config; criteria may only name columns.features")
            (out.icp if kind == "icp" else out.anti_icp).append(crit)
    return out


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n``.

    The interval of Wilson (1927), which stays inside [0, 1] and keeps its
    coverage for small ``n`` and rates near 0 or 1, where the normal (Wald)
    interval does not.

    Parameters
    ----------
    k : int
        Successes (e.g. accounts that reached the best cohort).
    n : int
        Trials (accounts in the group).
    level : float, default 0.95
        Two-sided confidence level.

    Returns
    -------
    tuple of float
        ``(low, high)`` as shares (0-1); ``(nan, nan)`` when ``n`` is 0.

    Examples
    --------
    >>> from icpml.hypothesis import wilson_interval
    >>> [round(x, 3) for x in wilson_interval(8, 20)]
    [0.219, 0.613]
    """
    if n == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def _cohorts(df: pd.DataFrame, cfg: Config) -> pd.Series:
    score = value_score(df, cfg.columns.outcomes)
    return label_cohorts(score, cfg.cohorts.best_quantile, cfg.cohorts.worst_quantile)


def evaluate_criteria(cs: CriteriaSet, df: pd.DataFrame, cfg: Config) -> CriteriaSet:
    """Measure given criteria on a table with the same evidence as discovery.

    Cohorts are labelled on ``df`` from ``cfg`` (value score, best / worst
    quantiles); each criterion then gets :func:`icpml.criteria.segment_evidence`
    (coverage, best rate, lift with a bootstrap interval, churn inside vs
    outside, best customers wrongly excluded, one-sided Fisher p-value) and a
    q-value from the Benjamini-Hochberg (1995) correction across all of them.
    The combined ICP and anti-ICP segments get the same evidence and a verdict. Every row
    of ``df`` counts (discovery reports the same figures on its held-out rows only, so the
    two differ on the table discovery ran on); the verdict's message says so.

    Parameters
    ----------
    cs : CriteriaSet
        The criteria to measure, e.g. from :func:`load_hypothesis`. Not modified.
    df : pandas.DataFrame
        A validated account table (:func:`icpml.data.validate_accounts`), one row
        per account. Not modified.
    cfg : Config
        Supplies the outcome, churn and cohort settings and the bootstrap size.

    Returns
    -------
    CriteriaSet
        A copy of ``cs`` whose criteria carry evidence on ``df``, with
        ``icp_evidence``, ``anti_evidence`` and ``verdict`` (``icp_found`` is True
        when the lower end of the ICP's lift interval exceeds 1) filled.
    """
    from dataclasses import replace

    cohort = _cohorts(df, cfg)
    best, worst = cohort == BEST, cohort == WORST
    churned = df[cfg.columns.churn].astype(bool) if cfg.columns.churn else None
    kw = dict(is_worst=worst, n_bootstrap=cfg.criteria.n_bootstrap, seed=cfg.models.seed)
    crits = [replace(c, evidence=segment_evidence(c.mask(df), best, churned,
                                                  side="include" if c.kind == "icp" else "exclude",
                                                  **kw))
             for c in cs.icp + cs.anti_icp]
    q = benjamini_hochberg(np.array([c.evidence["p_value"] for c in crits])) if crits else []
    for c, qv in zip(crits, q, strict=True):
        c.evidence["q_value"] = float(qv)
    out = CriteriaSet(icp=[c for c in crits if c.kind == "icp"],
                      anti_icp=[c for c in crits if c.kind == "anti_icp"], meta=dict(cs.meta),
                      schema=dict(cs.schema))
    out.icp_evidence = segment_evidence(out.icp_mask(df), best, churned, side="include", **kw)
    out.anti_evidence = segment_evidence(out.anti_mask(df), best, churned, side="exclude", **kw)
    lo = out.icp_evidence["lift_ci"][0]
    out.verdict = {"icp_found": bool(out.icp and np.isfinite(lo) and lo > 1),
                   "message": (f"The ICP reaches the best cohort {out.icp_evidence['lift']:.2f}x as "
                               f"often as average (95% CI {lo:.2f}-{out.icp_evidence['lift_ci'][1]:.2f})"
                               f" on all {len(df)} accounts of this table (discovery's own figures "
                               "are on its held-out accounts only)"
                               if out.icp and np.isfinite(lo) else
                               "The ICP cannot be measured on this data (no matches or no intervals)")}
    return out


def validate_tiers(scorer, df: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Measure each tier (and ICP match vs rest) on accounts whose outcomes are now known.

    ``df`` holds accounts whose outcomes became known after the model version
    in ``scorer`` was trained (closed or churned since), already validated. They
    are scored with ``scorer``; per group we count accounts and the share that
    reached the best cohort and that churned, with Wilson (1927) intervals.

    Parameters
    ----------
    scorer : Scorer
        The model version under test (e.g. :func:`icpml.tracking.load_scorer`).
    df : pandas.DataFrame
        Validated accounts with known outcomes, one row per account. Not modified.
    cfg : Config
        Supplies the outcome, churn and cohort settings.

    Returns
    -------
    pandas.DataFrame
        One row per tier (``Tier 1`` .. ``Excluded``), then ``ICP match`` and ``not
        ICP match``; columns ``group``, ``accounts`` (count), ``best_rate``,
        ``best_ci_low``, ``best_ci_high`` and, with a churn column, ``churn_rate``,
        ``churn_ci_low``, ``churn_ci_high`` (shares 0-1; NaN for an empty group).
    """
    from icpml.scoring import TIERS

    scored = scorer.score(df, explain=False)
    cohort = _cohorts(df, cfg).to_numpy()
    best = cohort == BEST
    churned = df[cfg.columns.churn].astype(bool).to_numpy() if cfg.columns.churn else None
    groups = [(t, scored["tier"].to_numpy() == t) for t in TIERS]
    groups += [("ICP match", scored["icp_match"].to_numpy(bool)),
               ("not ICP match", ~scored["icp_match"].to_numpy(bool))]
    rows = []
    for name, m in groups:
        n, k = int(m.sum()), int(best[m].sum())
        row = {"group": name, "accounts": n, "best_rate": k / n if n else np.nan}
        row["best_ci_low"], row["best_ci_high"] = wilson_interval(k, n)
        if churned is not None:
            kc = int(churned[m].sum())
            row["churn_rate"] = kc / n if n else np.nan
            row["churn_ci_low"], row["churn_ci_high"] = wilson_interval(kc, n)
        rows.append(row)
    return pd.DataFrame(rows)
