"""Preprocessing of targetable columns, and the guards against leakage.

:func:`make_preprocessor` builds an unfitted ``ColumnTransformer`` in which each
categorical or boolean column gets its *own* one-hot encoder. That keeps the
map from model inputs back to business columns exact (``output_indices_``), so
SHAP values of the one-hot columns can be summed back to "industry" or "crm".
Numbers pass through unchanged; missing numbers stay NaN, which gradient-boosted
trees route natively and ``shap.TreeExplainer`` explains exactly. Missing
categories become the category ``(missing)`` so "tech stack unknown" can carry
signal of its own.

We never use the estimator's native categorical splits: SHAP's TreeExplainer
gives silently wrong values for them (additivity errors of ~20 log-odds measured).

:func:`screen_columns` looks for columns that must not become criteria even
though the config lists them as features: constant columns, identifiers (names,
domains, ids, near-unique text) and suspected leaks (a single column that almost perfectly
separates best from worst is usually an outcome in disguise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

__all__ = ["make_preprocessor", "business_column_map", "screen_columns", "ColumnScreen",
           "MISSING"]

MISSING = "(missing)"
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|name|domain|website|url|email|phone)($|_)", re.I)


def _as_text(X: pd.DataFrame) -> np.ndarray:
    """Categorical values as object strings, missing as ``(missing)``."""
    out = X.astype("string").fillna(MISSING).astype(object)
    return out.to_numpy()


def _as_float(X: pd.DataFrame) -> np.ndarray:
    return X.astype(float).to_numpy()


def make_preprocessor(kinds: dict[str, str], columns: list[str], *,
                      min_frequency: int = 5) -> ColumnTransformer:
    """Unfitted preprocessing for ``columns`` given their kinds.

    Parameters
    ----------
    kinds : dict
        Column -> ``numeric`` / ``boolean`` / ``categorical``.
    columns : list of str
        Columns to use, in order.
    min_frequency : int
        Categories seen fewer times in training are pooled as infrequent.
    """
    numeric = [c for c in columns if kinds[c] == "numeric"]
    transformers = []
    if numeric:
        transformers.append(("num", FunctionTransformer(_as_float, feature_names_out="one-to-one"),
                             numeric))
    for c in columns:
        if kinds[c] == "numeric":
            continue
        enc = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=min_frequency if kinds[c] == "categorical" else None,
            sparse_output=False,
            dtype=np.float64,
        )
        from sklearn.pipeline import make_pipeline

        transformers.append((f"cat::{c}", make_pipeline(
            FunctionTransformer(_as_text, feature_names_out="one-to-one"), enc), [c]))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0,
                             verbose_feature_names_out=False)


def business_column_map(pre: ColumnTransformer) -> list[str]:
    """For a fitted preprocessor, the business column behind each output column."""
    n_out = sum(s.stop - s.start for s in pre.output_indices_.values())
    owner = [""] * n_out
    for name, cols in ((n, c) for n, _, c in pre.transformers_ if n != "remainder"):
        sl = pre.output_indices_[name]
        for j in range(sl.start, sl.stop):
            owner[j] = cols[j - sl.start] if name == "num" else cols[0]
    return owner


@dataclass
class ColumnScreen:
    """Result of :func:`screen_columns`.

    Attributes
    ----------
    excluded : dict
        Column -> reason; these never enter a model or a criterion.
    warnings : list of str
        Human-readable warnings for the report and the log.
    single_auc : dict
        Column -> AUC of the column alone for best vs worst (0.5 = no signal).
    """

    excluded: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    single_auc: dict[str, float] = field(default_factory=dict)


def _single_column_auc(s: pd.Series, y: np.ndarray, kind: str) -> float:
    """AUC of one column for y, orientation-free (max(auc, 1-auc))."""
    if kind == "numeric":
        x = s.astype(float)
        ok = x.notna().to_numpy()
        if ok.sum() < 4 or len(np.unique(y[ok])) < 2:
            return 0.5
        auc = roc_auc_score(y[ok], x.to_numpy()[ok])
    else:
        t = s.astype("string").fillna(MISSING)
        rate = pd.Series(y, index=s.index).groupby(t).mean()
        auc = roc_auc_score(y, t.map(rate).astype(float).to_numpy())
    return float(max(auc, 1 - auc))


def screen_columns(df: pd.DataFrame, kinds: dict[str, str], y_best: pd.Series, *,
                   trusted: list[str] = (), leakage_auc: float = 0.97) -> ColumnScreen:
    """Find constant, identifier-like and leakage-suspect feature columns.

    Parameters
    ----------
    df : DataFrame
        Accounts (all rows).
    kinds : dict
        Feature column -> kind.
    y_best : Series of bool, indexed like the best/worst rows of ``df``
        True for best-cohort accounts, False for worst.
    trusted : list of str
        Columns the user vouches for; they are warned about but kept.
    leakage_auc : float
        A column whose own AUC for best vs worst reaches this is a leak suspect.
    """
    screen = ColumnScreen()
    y = y_best.to_numpy().astype(int)
    rows = df.loc[y_best.index]
    for c, kind in kinds.items():
        s = df[c]
        nonnull = s.dropna()
        reason = None
        if s.nunique(dropna=False) <= 1:
            reason = f"'{c}' has the same value for every account; it cannot separate customers"
        if reason is None and kind == "categorical" and len(nonnull):
            ratio = nonnull.nunique() / len(nonnull)
            if ratio > 0.5 and nonnull.nunique() > 20:
                reason = (f"'{c}' looks like an identifier ({nonnull.nunique()} distinct values "
                          f"in {len(nonnull)} rows); identifiers cannot be targeted")
        if reason is None and _ID_NAME.search(c) and kind != "numeric" and nonnull.nunique() > 20:
            reason = f"'{c}' is named like an identifier; identifiers cannot be targeted"
        if reason is None and len(np.unique(y)) == 2:
            auc = _single_column_auc(rows[c], y, kind)
            screen.single_auc[c] = round(auc, 4)
            if auc >= leakage_auc:
                reason = (f"'{c}' alone separates best from worst almost perfectly (AUC {auc:.3f}); "
                          "it is probably an outcome or post-sale column in disguise")
        if reason:
            if c in trusted:
                screen.warnings.append(reason + " (kept: listed in columns.trusted)")
            else:
                screen.excluded[c] = reason
                screen.warnings.append(reason + "; excluded from models and criteria "
                                       "(list it in columns.trusted to keep it)")
    return screen
