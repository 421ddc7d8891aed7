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
domains, ids, near-unique text) and columns that behave like outcomes (a health
score, a status tag, the length of the sales call): near-deterministic for churn or
best vs worst, recovered from the outcome columns, or named like an outcome *and*
dominating the signal. Such a column is set aside from the models and the criteria
unless the user lists it under ``columns.trusted``; either way a warning names it
and says why.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from icpml._vocab import MISSING

__all__ = ["make_preprocessor", "business_column_map", "screen_columns", "ColumnScreen",
           "MISSING"]

_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|name|domain|website|url|email|phone)($|_)", re.I)
#: a calendar date or timestamp as text: 2024-03-01, 2024/03/01, 01.03.2024, 1/3/24, 2024-03,
#: with an optional time ("2024-03-01 12:30", "2024-03-01T12:30:00Z")
_DATE_TEXT = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.](\d{4}|\d{2}))"
                        r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2}|UTC)?)?\s*$", re.I)


def _date_example(s: pd.Series) -> str | None:
    """A value of text column ``s`` when (nearly) every filled cell is a calendar date, else None.

    A date cannot be a criterion for prospects (their dates are new, unseen values): the
    screen sets such a feature aside and says how to use it instead. Decided on up to 500
    distinct values: at least 95% must be written as a date (``2024-03-01``, ``01.03.2024``,
    ``3/1/24``, ``2024-03``, with or without a time) and read as one.
    """
    from icpml.schema import read_dates

    vals = pd.Series(s.dropna().astype(str).unique()[:500])
    if vals.empty or pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return None
    written = vals.str.match(_DATE_TEXT)
    if written.mean() < 0.95:
        return None
    if read_dates(vals[written]).notna().mean() < 0.95:
        return None
    return str(vals[written].iloc[0]).strip()


#: Longest value for which :func:`_as_text` gives fixed-width unicode (4 bytes per character
#: of the longest value, in every row).
_UNICODE_MAX_CHARS = 64


def _as_text(X: pd.DataFrame) -> np.ndarray:
    """Categorical values as strings, missing as ``(missing)``.

    NumPy unicode when every value is short: scikit-learn's encoder counts an object
    array's categories in Python (``collections.Counter``) and a unicode one with
    ``np.unique``, 4-5x faster; the categories, their order and the encoding are the same.
    Object otherwise: a unicode array is as wide as its longest value in every row (one
    20,000-character cell made a 30,000-row column 2.4 GB).
    """
    text = X.astype("string").fillna(MISSING)
    longest = max((int(text[c].str.len().max()) for c in text.columns if len(text)), default=0)
    return text.to_numpy(dtype=str if longest <= _UNICODE_MAX_CHARS else object)


def _as_float(X: pd.DataFrame) -> np.ndarray:
    return X.astype(float).to_numpy()


def make_preprocessor(kinds: dict[str, str], columns: list[str], *,
                      min_frequency: int = 5) -> ColumnTransformer:
    """Unfitted preprocessing for ``columns`` given their kinds.

    Numeric columns pass through as floats (the trees route missing values);
    boolean and categorical columns are one-hot encoded (missing is a category
    of its own), an unseen value going to the infrequent bucket when there is
    one, else to no column (all zeros).

    Parameters
    ----------
    kinds : dict of str to str
        Column -> ``numeric`` / ``boolean`` / ``categorical``.
    columns : list of str
        Columns to use, in order.
    min_frequency : int, default 5
        Categories seen fewer times in training are pooled as infrequent.

    Returns
    -------
    sklearn.compose.ColumnTransformer
        Unfitted; :func:`business_column_map` maps its outputs back to ``columns``.
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
    """For a fitted preprocessor, the business column behind each output column.

    Parameters
    ----------
    pre : sklearn.compose.ColumnTransformer
        A fitted :func:`make_preprocessor`.

    Returns
    -------
    list of str
        One business column name per output column, in output order (the
        one-hot columns of a category all name it).
    """
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

    Parameters
    ----------
    excluded : dict of str to str
        Column -> reason; these never enter a model or a criterion.
    warnings : list of str
        Human-readable warnings for the report and the log.
    single_auc : dict of str to float
        Column -> cross-validated AUC of the column alone for best vs worst (0.5 = no signal).
    signals : dict of str to dict
        Column -> the leakage signals measured for it (see :func:`screen_columns`):
        ``auc_best``, ``auc_churn``, ``name`` (bool), and where computed ``outcome_fit``,
        ``drop_share``, ``deterministic``, ``tracking`` (Spearman inside best, inside worst,
        smaller cohort size, over both), ``strong_presale`` (True: alone near-perfect for best
        vs worst with no second sign of an outcome, so kept).
    """

    excluded: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    single_auc: dict[str, float] = field(default_factory=dict)
    signals: dict[str, dict] = field(default_factory=dict)


#: Names typical of columns only known after the sale or the contact. Supporting evidence only:
#: a name alone never sets a column aside (``funding_stage`` and ``intent_score`` are pre-sale).
_LEAK_NAME = re.compile(
    r"health|status|stage|(^|_)tags?($|_)|duration|renewal|renew|(^|_)last_|days_to|days_since|"
    r"_score$|(^|_)churn|(^|_)won($|_)|(^|_)lost($|_)|closed|outcome|result|call_len|length_of|"
    # contact-outcome and customer-success measures: call time, CSM activity, onboarding, usage
    r"on_call|call_(time|min|sec|count|dur)|(^|_)(talk|handle)_time|"
    r"(^|_)csm($|_)|notes_count|support_ticket|(^|_)tickets($|_)|(^|_)(nps|csat)($|_)|onboard|"
    r"go_live|implementation|"
    r"(^|_)(usage|adoption)($|_)|seats_used|active_users|(^|_)logins?($|_)|cancel|refund|"
    r"upsell|expansion|retention|(^|_)(nrr|ltv|clv)($|_)",
    re.I)


def _leak_named(column: str) -> bool:
    """Whether ``column`` is named like a post-sale or contact-outcome measure, in any naming
    style: ``days_to_renewal``, ``DaysToRenewal``, ``Days To Renewal``, ``time-on-call``."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", str(column))
    snake = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").lower()
    return bool(_LEAK_NAME.search(snake) or _LEAK_NAME.search(str(column)))


def _codes(s: pd.Series, kind: str, n_bins: int = 10) -> np.ndarray:
    """Integer codes of a column: categories, or quantile bins of a number (missing: own code).

    A number with at most ``n_bins`` distinct values keeps one code per value (a 1/2 code
    must not fall into a single quantile bin).
    """
    if kind == "numeric":
        x = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
        ok = ~np.isnan(x)
        if not ok.any():
            return np.zeros(len(x), dtype=int)
        u = np.unique(x[ok])
        if len(u) <= n_bins:
            c = np.searchsorted(u, x)
        else:
            edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, n_bins + 1)))[1:-1]
            c = np.searchsorted(edges, x, side="right")
            u = np.arange(len(edges) + 1)
        c = np.where(ok, c, len(u))
        return c.astype(int)
    return pd.factorize(_as_category_text(s), sort=True)[0].astype(int)


def _as_category_text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean").astype("string").fillna(MISSING)
    return s.astype("string").fillna(MISSING)


def _cv_auc(codes: np.ndarray, y: np.ndarray, seed: int, k: int = 5, prior_n: float = 10.0) -> float:
    """Cross-validated AUC of a target-encoded column for binary ``y`` (0.5 = no signal).

    Each fold's rows are scored with the smoothed outcome rate of their code measured
    on the other folds, so a many-valued column cannot reach a high AUC by memorising.
    """
    y = np.asarray(y, dtype=float)
    k = min(k, int(min(y.sum(), len(y) - y.sum())))
    if k < 2:
        return 0.5
    from sklearn.model_selection import StratifiedKFold

    pred = np.zeros(len(y))
    m = int(codes.max()) + 1
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(codes, y):
        prior = y[tr].mean()
        n = np.bincount(codes[tr], minlength=m)
        s = np.bincount(codes[tr], weights=y[tr], minlength=m)
        pred[te] = ((s + prior_n * prior) / (n + prior_n))[codes[te]]
    return float(roc_auc_score(y, pred))


def _quick_tree(kind: str, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    est = HistGradientBoostingRegressor if kind == "regress" else HistGradientBoostingClassifier
    return est(max_iter=40, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
               random_state=seed)


def _model_auc(X: pd.DataFrame, kinds: dict[str, str], cols: list[str], y: np.ndarray,
               seed: int) -> float:
    """3-fold cross-validated AUC of a small gradient-boosted model on ``cols`` for ``y``."""
    if not cols:
        return 0.5
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("prep", make_preprocessor(kinds, cols)), ("clf", _quick_tree("classify", seed))])
    p = cross_val_predict(pipe, X[cols], y, method="predict_proba",
                          cv=StratifiedKFold(3, shuffle=True, random_state=seed))[:, 1]
    return float(roc_auc_score(y, p))


def _outcome_fit(target: pd.Series, kind: str, outcomes: pd.DataFrame, okinds: dict[str, str],
                 seed: int) -> float:
    """How well the outcome / post-sale columns ``outcomes`` predict one feature column.

    A number: cross-validated R^2 of its percentile rank (0 = not at all, 1 = a function of
    them). A category: the best one-vs-rest cross-validated AUC over its values covering
    at least 3% of the rows (0.5 = not at all).
    """
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import Pipeline

    cols = list(okinds)
    codes = _codes(target, kind)
    categorical = kind != "numeric" or len(np.unique(codes)) <= 5
    if not categorical:
        t = pd.to_numeric(target, errors="coerce").astype(float)
        ok = t.notna().to_numpy()
        if ok.sum() < 30:
            return 0.0
        r = t[ok].rank(pct=True).to_numpy()
        pipe = Pipeline([("prep", make_preprocessor(okinds, cols)), ("reg", _quick_tree("regress", seed))])
        p = cross_val_predict(pipe, outcomes.loc[ok, cols], r, cv=KFold(3, shuffle=True, random_state=seed))
        return float(max(0.0, 1 - np.sum((r - p) ** 2) / np.sum((r - r.mean()) ** 2)))
    vals, counts = np.unique(codes, return_counts=True)
    frequent = vals[(counts >= 0.03 * len(codes)) & (counts >= 10)]
    if len(vals) < 2 or len(frequent) == 0:
        return 0.5
    best = 0.5
    for v in frequent[np.argsort(-counts[np.isin(vals, frequent)], kind="stable")][:3]:
        yv = (codes == v).astype(int)
        if yv.sum() < 6 or len(yv) - yv.sum() < 6:
            continue
        pipe = Pipeline([("prep", make_preprocessor(okinds, cols)), ("clf", _quick_tree("classify", seed))])
        p = cross_val_predict(pipe, outcomes[cols], yv, method="predict_proba",
                              cv=StratifiedKFold(3, shuffle=True, random_state=seed))[:, 1]
        best = max(best, float(roc_auc_score(yv, p)))
        if len(vals) == 2:
            break
    return best


def _deterministic_value(codes: np.ndarray, labels: np.ndarray, text: pd.Series,
                         min_n: int, sides: tuple[int, ...] = (0, 1)) -> str | None:
    """A value of the column whose accounts (nearly) all share one label (p <= 1e-6).

    ``labels`` is binary. A value with at least ``min_n`` accounts, at most 1% of them
    against the rule, and a binomial tail probability of so few exceptions at the overall
    rate of at most 1e-6, is an outcome in disguise (a status "Churned" that is only
    given to churned accounts). ``sides``: which outcomes count, 1 (all accounts of the
    value labelled 1) and / or 0 (none labelled 1). Returns a description, or None.
    """
    from scipy import stats

    base = float(labels.mean())
    if not 0.05 <= base <= 0.95:
        return None
    for v in np.unique(codes):
        hit = codes == v
        n = int(hit.sum())
        if n < min_n:
            continue
        pos = int(labels[hit].sum())
        for side, k, p in ((0, pos, base), (1, n - pos, 1 - base)):  # exceptions to "all 0", "all 1"
            if side in sides and k <= 0.01 * n and stats.binom.cdf(k, n, p) <= 1e-6:
                x = pd.to_numeric(text[hit], errors="coerce")
                first = text[hit].iloc[0]
                shown = (f"{x.min():g}-{x.max():g}" if x.notna().all() and x.nunique() > 1
                         else MISSING if pd.isna(first) else str(first))
                return f"{shown} ({n} accounts, rate {pos / n:.0%})"
    return None


#: a numeric column must reach this AUC for best vs worst before its tracking of the value
#: score inside the cohorts is measured (see :func:`_tracking`)
_TRACK_AUC = 0.85
#: the outcome columns predict a category's values this well (one-vs-rest AUC) only when it
#: is computed from them
_EXACT_FIT = 0.995


def _value_proxy(rows: pd.DataFrame, value: pd.Series | None,
                 outcome_cols: list[str]) -> pd.DataFrame | None:
    """The value score of ``rows`` as a one-column frame when ``value`` is given, else the
    numeric outcome columns of ``rows`` (each is tried on its own: their directions are not
    known here). None when neither is available."""
    if value is not None:
        return pd.DataFrame({"value": pd.to_numeric(value.reindex(rows.index), errors="coerce")
                             .astype(float)})
    cols = [c for c in outcome_cols if pd.api.types.is_numeric_dtype(rows[c])
            and not pd.api.types.is_bool_dtype(rows[c])]
    return rows[cols].astype(float) if cols else None


def _tracking(x: pd.Series, scores: pd.DataFrame, y: np.ndarray) -> tuple[float, float, int, float]:
    """Spearman correlation of a numeric column with the value score inside the best cohort
    and inside the worst cohort (``y`` 1 / 0), and the smaller cohort's size (0 when it
    cannot be measured: fewer than 30 accounts, or a column or score flat inside a cohort),
    and its Spearman correlation with ``y`` over both cohorts (the direction it separates them).

    ``scores`` holds the value score, or several stand-ins for it (then the one the column
    follows most closely in both cohorts is reported). A measure taken after the outcome (a
    call length, a health score) keeps rising with the value score inside each cohort; a
    pre-sale trait that decides membership (a size band, a segment) is nearly flat inside
    at least one cohort.
    """
    from scipy.stats import spearmanr

    xv = pd.to_numeric(x, errors="coerce").astype(float).to_numpy()
    best: tuple = (0.0, 0.0, 0, 0.0)
    top = -1.0
    for col in scores.columns:
        sv = scores[col].to_numpy(dtype=float)
        out, sizes = [], []
        for side in (1, 0):
            m = (y == side) & np.isfinite(xv) & np.isfinite(sv)
            sizes.append(int(m.sum()))
            if m.sum() < 30 or np.ptp(xv[m]) == 0 or np.ptp(sv[m]) == 0:
                out.append(0.0)
                sizes[-1] = 0  # not measurable (a yes/no outcome: the score is flat inside)
            else:
                out.append(float(spearmanr(xv[m], sv[m]).statistic))
        strength = min(abs(out[0]), abs(out[1])) if out[0] * out[1] > 0 else 0.0
        if strength > top:
            top = strength
            ok = np.isfinite(xv)
            overall = (float(spearmanr(xv[ok], y[ok]).statistic)
                       if ok.sum() >= 30 and np.ptp(xv[ok]) > 0 and np.ptp(y[ok]) > 0 else 0.0)
            best = (round(out[0], 4), round(out[1], 4), min(sizes), round(overall, 4))
    return best


def _follows(t: tuple | None) -> bool:
    """A weaker form of :func:`_tracks`, used only beside a telling name: inside both
    cohorts the column moves with the value score in the same direction as it separates
    the cohorts, each correlation at least two standard errors (2 / sqrt(n))."""
    if not t or t[2] < 30 or len(t) < 4:
        return False
    r_best, r_worst, n, overall = t
    floor = 2 / np.sqrt(n)
    return r_best * overall > 0 and r_worst * overall > 0 and min(abs(r_best), abs(r_worst)) >= floor


def _tracks(t: tuple | None) -> bool:
    """Whether :func:`_tracking` shows a column that follows the value score inside both
    cohorts, in the same direction, each correlation at least 0.12 and three standard
    errors (1 / sqrt(n)) of the smaller cohort."""
    if not t or t[2] < 30:
        return False
    r_best, r_worst, n = t[:3]
    floor = max(0.12, 3 / np.sqrt(n))
    return r_best * r_worst > 0 and min(abs(r_best), abs(r_worst)) >= floor


def _tracking_words(t: tuple) -> str:
    return (f"it follows the value score inside the best and inside the worst cohort alike "
            f"(Spearman {t[0]:.2f} and {t[1]:.2f}), as a measure taken after the outcome does")


def _outcome_kinds(frame: pd.DataFrame) -> dict[str, str]:
    return {c: ("numeric" if pd.api.types.is_numeric_dtype(frame[c])
                and not pd.api.types.is_bool_dtype(frame[c]) else "categorical")
            for c in frame.columns}


def screen_columns(df: pd.DataFrame, kinds: dict[str, str], y_best: pd.Series, *,
                   trusted: list[str] = (), leakage_auc: float = 0.97,
                   churned: pd.Series | None = None, outcome_columns: list[str] = (),
                   post_sale: list[str] = (), value: pd.Series | None = None,
                   seed: int = 0, max_rows: int = 3000) -> ColumnScreen:
    """Find constant, identifier-like and leakage-suspect feature columns.

    A feature *behaves like an outcome* (a leak) when the data say so, from these signals
    (computed on at most ``max_rows`` accounts, seeded):

    * ``auc_best`` / ``auc_churn``: cross-validated AUC of the column alone (target-encoded
      codes; numbers in 10 quantile bins, few-valued numbers per value) for best vs worst
      and for churn;
    * ``outcome_fit``: how well the outcome, post-sale and churn columns predict the column
      (R^2 of its rank, or the best one-vs-rest AUC of a value; see :func:`_outcome_fit`),
      and ``post_sale_fit``, the same from the post-sale columns alone;
    * ``deterministic``: a value whose accounts all churn / all stay (or, by name, all best /
      all worst), beyond chance at p <= 1e-6;
    * ``drop_share``: the share of the fit-like model's AUC above 0.5 that is lost when the
      column is left out (a quick 3-fold gradient-boosted model);
    * ``name``: the column is named like a post-sale or contact-outcome measure (health,
      status, stage, tag, duration, renewal, last_, days_to, _score, ...);
    * ``tracking``: for a number with AUC >= 0.85 (or named like an outcome), its Spearman
      correlation with the value score inside the best and inside the worst cohort, and
      with the cohort itself. A measure taken after the outcome (a call length, a health
      score) keeps following the outcome inside each cohort; a pre-sale trait that decides
      membership (a size band, a segment) is flat inside at least one cohort.

    Rule: converging evidence, never one signal that a strong true ICP column also shows.
    Set aside when (1) the AUC alone for churn reaches ``leakage_auc`` (churn is a noisy
    post-sale event a pre-sale trait does not decide); or (1b) the AUC alone for best vs
    worst reaches ``leakage_auc`` AND a second sign: a telling name, tracking of the
    value score in both cohorts (same sign, each >= 0.12 and 3 standard errors), or, for a
    category, values the outcome columns give exactly (one-vs-rest AUC >= 0.995, an ARR
    band); or (1c) a number with AUC >= 0.85 that tracks the value score in both cohorts;
    or (2) the outcome columns predict a number almost exactly (R^2 >= 0.9, at least 0.05
    of it owed to the outcome columns) and it is associated with the outcome (AUC >= 0.6);
    or (3) a value's accounts all churn (or all stay, only beside a name or a churn AUC
    >= 0.85); or (4) it is named like an outcome AND one of: it dominates the single-column
    AUCs for best vs worst or for churn (at least 1.5 times the next column's Gini, AUC
    >= 0.65 and three standard errors above 0.5), or its AUC alone reaches 0.75 (both only
    with 50 accounts or more on each side; for a number whose tracking can be measured, only
    when it follows the value score inside both cohorts in its own direction, 2 standard
    errors), the fit-like model loses at least half its signal without it (a number: 20%,
    and tracking), the outcome columns predict it (R^2 >= 0.5 / AUC >= 0.85), or a value
    is deterministic for best vs worst (for a number, with tracking).
    A name alone, or a strong but plausible pre-sale signal alone (a column carrying most
    of the model, a column alone at AUC 0.98: a channel, a segment, a size band), never
    sets a column aside; the fit model's AUC >= 0.95 warning names such columns instead.

    Parameters
    ----------
    df : DataFrame
        Accounts (all rows). Not modified.
    kinds : dict
        Feature column -> kind.
    y_best : Series of bool, indexed like the best/worst rows of ``df``
        True for best-cohort accounts, False for worst.
    trusted : list of str
        Columns the user vouches for (``columns.trusted``); warned about but kept.
    leakage_auc : float
        A column whose own AUC for best vs worst (or churn) reaches this is a leak.
    churned : Series of bool, optional
        Churn of every account of ``df``.
    outcome_columns : list of str
        Outcome, post-sale and churn columns of ``df`` (for ``outcome_fit``).
    post_sale : list of str
        Which of ``outcome_columns`` are post-sale columns (usage, tickets). A number they
        alone predict almost exactly, with the outcomes adding nothing, is not set aside on
        that ground (Telco's MonthlyCharges is recovered exactly from TotalCharges and
        tenure, and is the plan's price, known before the sale).
    value : Series, optional
        The value score of every account (``icpml.cohorts.value_score``), for ``tracking``.
        Without it each numeric outcome column stands in for it.
    seed : int
    max_rows : int
        Accounts sampled (deterministically) for the model-based signals.

    Returns
    -------
    ColumnScreen
    """
    from threadpoolctl import threadpool_limits

    # one OpenMP thread, as for every icpml fit (see icpml.models.openmp_threads)
    n = os.environ.get("ICPML_THREADS", "")
    with threadpool_limits(limits=int(n) if n.isdigit() and int(n) > 0 else 1, user_api="openmp"):
        return _screen(df, kinds, y_best, trusted=trusted, leakage_auc=leakage_auc,
                       churned=churned, outcome_columns=outcome_columns, post_sale=post_sale,
                       value=value, seed=seed, max_rows=max_rows)


def _screen(df: pd.DataFrame, kinds: dict[str, str], y_best: pd.Series, *, trusted, leakage_auc,
            churned, outcome_columns, post_sale, value, seed, max_rows) -> ColumnScreen:
    screen = ColumnScreen()
    rng = np.random.default_rng(seed)
    ends = y_best.index
    if len(ends) > max_rows:
        ends = pd.Index(np.sort(rng.choice(ends.to_numpy(), max_rows, replace=False)))
    y = y_best.loc[ends].to_numpy().astype(int)
    rows = df.loc[ends]
    all_rows = df.index
    if len(all_rows) > max_rows:
        all_rows = pd.Index(np.sort(rng.choice(all_rows.to_numpy(), max_rows, replace=False)))
    both = len(np.unique(y)) == 2
    ch = None
    if churned is not None:
        ch = churned.loc[all_rows].astype(bool).to_numpy().astype(int)
        if len(np.unique(ch)) < 2:
            ch = None
    ocols = [c for c in dict.fromkeys(outcome_columns) if c in df.columns and c not in kinds]
    out_frame = df.loc[all_rows, ocols]
    okinds = _outcome_kinds(out_frame)
    post_only = [c for c in ocols if c in set(post_sale)]
    score = _value_proxy(df.loc[ends], value, [c for c in ocols if c not in set(post_sale)])

    reasons: dict[str, str] = {}
    for c, kind in kinds.items():
        s = df[c]
        nonnull = s.dropna()
        reason = None
        if s.nunique(dropna=False) <= 1:
            reason = f"'{c}' has the same value for every account; it cannot separate customers"
        day = _date_example(nonnull) if reason is None and kind == "categorical" else None
        if day is not None:
            reason = (f"'{c}' holds dates (e.g. '{day}'); a date cannot be a criterion (prospects' "
                      "dates are new values): derive a number from it (e.g. years since founding), "
                      "or name it in columns.date for an out-of-time holdout")
        if reason is None and kind == "categorical" and len(nonnull):
            ratio = nonnull.nunique() / len(nonnull)
            if ratio > 0.5 and nonnull.nunique() > 20:
                reason = (f"'{c}' looks like an identifier ({nonnull.nunique()} distinct values "
                          f"in {len(nonnull)} rows); identifiers cannot be targeted")
        if reason is None and _ID_NAME.search(c) and kind != "numeric" and nonnull.nunique() > 20:
            reason = f"'{c}' is named like an identifier; identifiers cannot be targeted"
        if reason:
            reasons[c] = reason
            continue
        sig: dict = {"name": _leak_named(c)}
        if both:
            sig["auc_best"] = round(_cv_auc(_codes(rows[c], kind), y, seed), 4)
            screen.single_auc[c] = sig["auc_best"]
        if ch is not None:
            sig["auc_churn"] = round(_cv_auc(_codes(df.loc[all_rows, c], kind), ch, seed), 4)
        screen.signals[c] = sig

    def assoc(c: str) -> float:
        return max(screen.signals[c].get("auc_best", 0.5), screen.signals[c].get("auc_churn", 0.5))

    min_n = max(20, int(0.01 * len(all_rows)))
    # the standard error of an AUC under no signal, sqrt((1/n_pos + 1/n_neg) / 12): AUCs of
    # columns are compared only beyond it, and only with at least 50 accounts on each side
    noise: dict[str, float] = {}
    for target, lab in (("auc_best", y if both else None), ("auc_churn", ch)):
        if lab is not None and min(lab.sum(), len(lab) - lab.sum()) >= 50:
            noise[target] = float(np.sqrt((1 / lab.sum() + 1 / (len(lab) - lab.sum())) / 12))
    outcome_fit: dict[str, float] = {}

    def judge(c: str, live: list[str], auc_all: list) -> list[str]:
        """Why ``c`` behaves like an outcome, judged against the columns in ``live``."""
        sig, kind = screen.signals[c], kinds[c]
        a = assoc(c)
        why: list[str] = []
        codes_all = _codes(df.loc[all_rows, c], kind)
        few_values = len(np.unique(codes_all)) <= 30
        shown = df.loc[all_rows, c] if kind == "numeric" else _as_category_text(df.loc[all_rows, c])
        numeric_target = kind == "numeric" and len(np.unique(codes_all)) > 5
        a_best, a_churn = sig.get("auc_best", 0.5), sig.get("auc_churn", 0.5)
        if numeric_target and score is not None and both and a_best >= _TRACK_AUC:
            sig["tracking"] = _tracking(rows[c], score, y)
        if a_churn >= leakage_auc:
            # churn is a noisy post-sale event: a pre-sale trait does not decide it
            why.append(f"alone it separates churn almost perfectly (AUC {a_churn:.3f})")
        elif a_best >= leakage_auc:
            # a strong true ICP column separates best from worst as well: that alone is not
            # enough, it must be backed by a second, independent sign of an outcome
            support = []
            if sig["name"]:
                support.append("it is named like a post-sale or contact-outcome measure")
            if _tracks(sig.get("tracking")):
                support.append(_tracking_words(sig["tracking"]))
            if ocols:
                if c not in outcome_fit:
                    outcome_fit[c] = _outcome_fit(df.loc[all_rows, c], kind, out_frame, okinds, seed)
                sig["outcome_fit"] = round(outcome_fit[c], 4)
                # a category the outcomes give exactly (an ARR band): a strong true segment
                # is predicted well from the outcomes too, but not without error
                if not numeric_target and outcome_fit[c] >= _EXACT_FIT:
                    support.append(f"the outcome and post-sale columns predict its values almost "
                                   f"exactly (AUC {outcome_fit[c]:.2f})")
            if support:
                why.append(f"alone it separates best from worst almost perfectly (AUC {a_best:.3f}) "
                           "and " + "; ".join(support))
            else:
                sig["strong_presale"] = True
        if not why and ch is not None and few_values:
            # a value whose accounts all churn is an outcome in disguise; one whose accounts
            # (nearly) never churn is also what a strong true ICP segment looks like, so that
            # needs a name or a near-deterministic churn association beside it
            d = _deterministic_value(codes_all, ch, shown, min_n, sides=(1,))
            if d is None and (sig["name"] or a_churn >= 0.85):
                d = _deterministic_value(codes_all, ch, shown, min_n, sides=(0,))
            if d:
                sig["deterministic"] = f"churn: {d}"
                why.append(f"the value {d} decides churn outright")
        # a number the outcomes predict almost exactly is derived from them (a health score,
        # an ARR band as a number); categories are left to the value and name signals: a
        # genuine channel or contract type can be well predicted from a rich spend profile
        if not why and ocols and a >= 0.6 and (numeric_target or sig["name"]):
            if c not in outcome_fit:
                outcome_fit[c] = _outcome_fit(df.loc[all_rows, c], kind, out_frame, okinds, seed)
            sig["outcome_fit"] = round(outcome_fit[c], 4)
            if numeric_target and outcome_fit[c] >= 0.9 and post_only:
                # does it need the outcomes, or do post-sale columns alone recover it?
                key = c + "\0post"
                if key not in outcome_fit:
                    outcome_fit[key] = _outcome_fit(df.loc[all_rows, c], kind,
                                                    out_frame[post_only], _outcome_kinds(out_frame[post_only]), seed)
                sig["post_sale_fit"] = round(outcome_fit[key], 4)
            if (numeric_target and outcome_fit[c] >= 0.9
                    and outcome_fit[c] - outcome_fit.get(c + "\0post", 0.0) >= 0.05):
                why.append(f"the outcome and post-sale columns ({', '.join(ocols)}) predict it "
                           f"almost exactly (R^2 {outcome_fit[c]:.2f})")
        if not why and _tracks(sig.get("tracking")):
            why.append(f"alone it separates best from worst (AUC {a_best:.3f}) and "
                       + _tracking_words(sig["tracking"]))
        if not why and sig["name"] and a >= 0.6:
            support: list[str] = []
            if numeric_target and score is not None and both and "tracking" not in sig:
                sig["tracking"] = _tracking(rows[c], score, y)
            # a number whose tracking of the value score can be measured must follow it
            # inside both cohorts before its strength counts: a strong true numeric ICP
            # (a band) dominates the AUCs as much as a call length does
            flat = (numeric_target and sig.get("tracking") is not None
                    and sig["tracking"][2] > 0 and not _follows(sig["tracking"]))
            for target, label in (("auc_best", "best vs worst"), ("auc_churn", "churn")):
                if target not in sig or target not in noise or flat:
                    continue
                own = sig[target]
                others = [screen.signals[o].get(target, 0.5) for o in live if o != c]
                second = max(others) if others else 0.5
                if (own >= max(0.65, 0.5 + 3 * noise[target])
                        and (2 * own - 1) >= 1.5 * max(2 * second - 1, 0.02)):
                    support.append(f"its own AUC for {label} ({own:.2f}) is far above every "
                                   f"other column's (next {second:.2f})")
                elif own >= 0.75:
                    support.append(f"alone it predicts {label} strongly (AUC {own:.2f}; the "
                                   f"best other column {second:.2f})")
            fit_o = outcome_fit.get(c)
            if fit_o is not None and fit_o >= (0.5 if numeric_target else 0.85):
                support.append(f"the outcome and post-sale columns predict it "
                               f"({'R^2' if numeric_target else 'AUC'} {fit_o:.2f})")
            if both and few_values:
                d = _deterministic_value(_codes(rows[c], kind), y,
                                         rows[c] if kind == "numeric" else _as_category_text(rows[c]),
                                         min_n)
                if d:
                    sig["deterministic"] = f"best vs worst: {d}"
                # a range of a number that decides best vs worst is what a planted band
                # gives: for a number it counts only when it also follows the value score
                # inside both cohorts
                if d and (not numeric_target or _tracks(sig.get("tracking"))):
                    support.append(f"the value {d} decides best vs worst outright")
            if both and not support and len(live) > 1:
                fit_kinds = {o: kinds[o] for o in live}
                if not auc_all:
                    auc_all.append(_model_auc(rows, fit_kinds, live, y, seed))
                without = _model_auc(rows, fit_kinds, [o for o in live if o != c], y, seed)
                share = (auc_all[0] - without) / max(auc_all[0] - 0.5, 1e-9)
                sig["drop_share"] = round(float(share), 4)
                # a column carrying much of the model is also what a strong true ICP column
                # is: a number must also follow the value score inside both cohorts, a
                # category must carry at least half the model
                if (share >= 0.5 if not numeric_target
                        else share >= 0.2 and _tracks(sig.get("tracking"))):
                    support.append(f"the model's AUC falls from {auc_all[0]:.2f} to {without:.2f} "
                                   "without it")
            if support:
                why.append("it is named like a post-sale or contact-outcome measure and "
                           + "; ".join(support))
        return why

    # in rounds: a leak found drops out of the comparison, so a second, weaker leak is no
    # longer overshadowed by the first (a call duration next to a health score)
    live = list(screen.signals)
    for _ in range(len(live)):
        auc_all: list = []
        found = {}
        for c in live:
            if c in reasons:
                continue
            why = judge(c, live, auc_all)
            if why:
                found[c] = (f"'{c}' behaves like an outcome, not a pre-sale trait: "
                            + "; ".join(why) + "; it is probably known only after the sale")
        if not found:
            break
        reasons.update(found)
        live = [c for c in live if c not in found or c in trusted]
    for c in kinds:
        reason = reasons.get(c)
        if not reason:
            continue
        if c in trusted:
            screen.warnings.append(reason + " (kept: listed in columns.trusted)")
        else:
            screen.excluded[c] = reason
            screen.warnings.append(reason + "; set aside from models and criteria "
                                   "(list it in columns.trusted to keep it)")
    return screen
