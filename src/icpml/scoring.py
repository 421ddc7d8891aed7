"""Score and tier accounts: fit score, churn risk, tier and reasons in words.

:class:`Scorer` bundles what scoring needs (the fitted fit and churn models, the
criteria and the column roles). It is what the registered MLflow model wraps, so
``icpml score``, a notebook and ``mlflow models serve`` give the same output:

=================  ===========================================================
column             meaning
=================  ===========================================================
<id column>        the account id
fit_score          fit model probability of the best cohort (trained on best
                   vs worst, so it ranks; see the report for its calibration)
churn_risk         churn model probability (blank without a churn model)
tier               ``Tier 1`` meets every ICP criterion; ``Tier 2`` misses one;
                   ``Tier 3`` the rest; ``Excluded`` any anti-ICP criterion fires
icp_match          meets every inclusion criterion and no exclusion
anti_icp_match     any exclusion fires
exclusion_reasons  the exclusions that fired, in words
top_reasons        the ICP criteria the account meets or misses; with ``explain``, the
                   three columns that moved the fit score most (exact SHAP)
data_issues        missing columns or values the score had to do without
=================  ===========================================================

Columns absent from a prospect list are scored as missing (the models route
missing values) and named in ``data_issues``; unseen categories fall in the
encoder's "infrequent" bucket and infinite numbers are scored as missing, both
also named in ``data_issues``. Large tables are scored in chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from icpml.criteria import CriteriaSet
from icpml.data import coerce_bool
from icpml.explain import explain as shap_explain
from icpml.models import TrainedModel

__all__ = ["Scorer", "assign_tiers", "tier_summary", "TIERS", "SCORED_COLUMNS"]

log = logging.getLogger(__name__)

TIERS = ["Tier 1", "Tier 2", "Tier 3", "Excluded"]
SCORED_COLUMNS = ["fit_score", "churn_risk", "tier", "icp_match", "anti_icp_match",
                  "exclusion_reasons", "top_reasons", "data_issues"]


def assign_tiers(criteria: CriteriaSet, df: pd.DataFrame) -> pd.Series:
    """Tier of each account (see the module docstring).

    With no confirmed ICP criteria there is no Tier 1 or 2: every account that
    no exclusion removes is Tier 3.
    """
    tier, _, _ = _tiers_from_hits([c.mask(df).to_numpy(bool) for c in criteria.icp],
                                  [c.mask(df).to_numpy(bool) for c in criteria.anti_icp], len(df))
    return pd.Series(pd.Categorical(tier, categories=TIERS), index=df.index, name="tier")


def _tiers_from_hits(icp_hits: list[np.ndarray], anti_hits: list[np.ndarray],
                     n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tier, ICP match and anti-ICP match from each criterion's row mask (evaluated once)."""
    anti = np.any(anti_hits, axis=0) if anti_hits else np.zeros(n, dtype=bool)
    if icp_hits:
        missed = len(icp_hits) - np.sum(icp_hits, axis=0)
    else:
        missed = np.full(n, 99)
    tier = np.where(missed == 0, "Tier 1", np.where(missed == 1, "Tier 2", "Tier 3"))
    tier = np.where(anti, "Excluded", tier)
    return tier, (missed == 0) & ~anti, anti


def tier_summary(tiers: pd.Series, is_best: pd.Series | None = None,
                 churned: pd.Series | None = None) -> pd.DataFrame:
    """Accounts per tier and, where outcomes are known, best-cohort and churn rates."""
    out = pd.DataFrame({"accounts": tiers.value_counts().reindex(TIERS, fill_value=0)})
    out["share"] = out["accounts"] / max(len(tiers), 1)
    if is_best is not None:
        out["best_rate"] = is_best.astype(float).groupby(tiers, observed=False).mean().reindex(TIERS)
    if churned is not None:
        out["churn_rate"] = churned.astype(float).groupby(tiers, observed=False).mean().reindex(TIERS)
    out.index.name = "tier"
    return out.reset_index()


def _contribution_words(col: str, value, shap_value: float) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        shown = "unknown"
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        shown = str(int(value))
    elif isinstance(value, (float, np.floating)):
        v = float(value)
        shown = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"  # 2,060 rather than 2.06e+03
    else:
        shown = str(value) if len(str(value)) <= 60 else str(value)[:60] + "..."
    verb = "raises" if shap_value > 0 else "lowers"
    return f"{col} {shown} {verb} fit"


def _criterion_words(c, values: pd.Series, hit: np.ndarray) -> np.ndarray:
    """``c.reason`` for every row, computed once per distinct value (and hit state)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out = np.empty(len(values), dtype=object)
    for h in (True, False):
        sel = hit == h
        if sel.any():
            present, inverse = np.unique(codes[sel], return_inverse=True)
            words = np.array([c.reason(uniques[k] if k >= 0 else None, hit=h) for k in present],
                             dtype=object)
            out[sel] = words[inverse]
    return out


def _append_words(acc: np.ndarray, words: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Join ``words`` onto ``acc`` with "; " on the rows in ``where`` (vectorized)."""
    joined = np.where(acc == "", words, acc + "; " + words)
    return np.where(where, joined, acc)


@dataclass
class Scorer:
    """Everything needed to score raw account tables.

    Attributes
    ----------
    fit : TrainedModel
    churn : TrainedModel or None
    criteria : CriteriaSet
    id_column : str
    chunk_size : int
        Rows scored at a time (bounds memory on large tables).
    categories : dict, optional
        Categorical column -> the values in the discovery data; other values
        are named in ``data_issues``.
    """

    fit: TrainedModel
    churn: TrainedModel | None
    criteria: CriteriaSet
    id_column: str
    chunk_size: int = 50_000
    categories: dict[str, list[str]] | None = None

    @property
    def input_columns(self) -> list[str]:
        cols = list(self.fit.columns)
        if self.churn is not None:
            cols += [c for c in self.churn.columns if c not in cols]
        return cols

    def prepare(self, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """Align a raw table to the training columns and types; never mutates ``df``.

        Returns the aligned copy and the list of data issues found.
        """
        issues: list[str] = []
        X = pd.DataFrame(index=df.index)
        kinds = {**(self.churn.kinds if self.churn else {}), **self.fit.kinds}
        for c in self.input_columns:
            if c not in df.columns:
                issues.append(f"column '{c}' missing: scored as unknown")
                X[c] = np.nan if kinds[c] == "numeric" else pd.Series(pd.NA, index=df.index,
                                                                     dtype="string")
                continue
            s = df[c]
            if kinds[c] == "numeric":
                num = pd.to_numeric(s, errors="coerce").astype(float)
                bad = int((num.isna() & s.notna()).sum())
                if bad:
                    issues.append(f"column '{c}': {bad} non-numeric value(s) scored as unknown")
                inf = np.isinf(num.to_numpy())
                if inf.any():
                    issues.append(f"column '{c}': {int(inf.sum())} infinite value(s) scored as unknown")
                    num = num.mask(inf)
                X[c] = num
            elif kinds[c] == "boolean":
                b = coerce_bool(s)
                if b is None:
                    issues.append(f"column '{c}': values are not yes/no; scored as unknown")
                    b = pd.Series(pd.NA, index=df.index, dtype="boolean")
                X[c] = b
            else:
                X[c] = s.astype("string")
                known = (self.categories or {}).get(c)
                if known is not None:
                    new = X[c].dropna()
                    new = new[~new.isin(known)]
                    if len(new):
                        eg = ", ".join(repr(v if len(v) <= 30 else v[:30] + "...")
                                       for v in pd.unique(new)[:3])
                        issues.append(f"column '{c}': {len(new)} value(s) never seen in the "
                                      f"discovery data (e.g. {eg}); scored as a rare category")
        return X, issues

    def score(self, df: pd.DataFrame, *, explain: bool = False,
              reasons: bool | None = None) -> pd.DataFrame:
        """Score a raw account table (customers or prospects).

        Parameters
        ----------
        df : DataFrame
            Raw accounts; needs the id column, and ideally every feature column.
        explain : bool
            ``top_reasons`` from per-account exact SHAP values (the three columns that
            moved the fit score most) instead of the default, the ICP criteria the
            account meets or misses. SHAP costs far more than scoring itself.
        reasons : bool, optional
            Older name of ``explain``.

        Returns
        -------
        DataFrame with the id column and :data:`SCORED_COLUMNS`.
        """
        if reasons is not None:
            explain = reasons
        if len(df) > self.chunk_size:
            parts = [self.score(df.iloc[i:i + self.chunk_size], explain=explain)
                     for i in range(0, len(df), self.chunk_size)]
            return pd.concat(parts, ignore_index=True)
        X, issues = self.prepare(df)
        ids = (df[self.id_column].astype("string") if self.id_column in df.columns
               else pd.Series(pd.array(range(len(df)), dtype="Int64").astype("string"),
                              index=df.index))
        if self.id_column not in df.columns:
            issues.append(f"id column '{self.id_column}' missing: rows numbered instead")
        out = pd.DataFrame({self.id_column: ids.to_numpy()}, index=df.index)
        out["fit_score"] = self.fit.predict_proba(X) if len(X) else []
        out["churn_risk"] = (self.churn.predict_proba(X) if self.churn is not None and len(X)
                             else np.nan)
        n = len(X)
        # every criterion is evaluated once; tiers, matches and reasons all read these masks
        icp_hits = [c.mask(X).to_numpy(bool) for c in self.criteria.icp]
        anti_hits = [c.mask(X).to_numpy(bool) for c in self.criteria.anti_icp]
        tier, icp_match, anti_match = _tiers_from_hits(icp_hits, anti_hits, n)
        out["tier"], out["icp_match"], out["anti_icp_match"] = tier, icp_match, anti_match
        excl = np.full(n, "", dtype=object)
        for c, hit in zip(self.criteria.anti_icp, anti_hits, strict=True):
            excl = _append_words(excl, _criterion_words(c, X[c.column], hit), hit)
        out["exclusion_reasons"] = excl
        if explain and n:
            e = shap_explain(self.fit, X)
            vals = e.values.to_numpy()
            cols = list(e.values.columns)
            top = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :3]
            data = X[cols].to_numpy(dtype=object)
            out["top_reasons"] = [
                "; ".join(_contribution_words(cols[j], data[i, j], vals[i, j])
                          for j in top[i] if abs(vals[i, j]) > 1e-9)
                for i in range(len(X))
            ]
        else:  # the ICP criteria each account meets or misses, in words (cheap)
            words = np.full(n, "", dtype=object)
            for c, hit in zip(self.criteria.icp, icp_hits, strict=True):
                words = _append_words(words, _criterion_words(c, X[c.column], hit),
                                      np.ones(n, dtype=bool))
            out["top_reasons"] = words
        row_issue = "; ".join(issues)
        out["data_issues"] = row_issue
        if issues:
            log.warning("scoring: %s", row_issue)
        return out.reset_index(drop=True)
