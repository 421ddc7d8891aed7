"""Value score, best / middle / worst cohorts, and the cohort contrast table.

The **value score** of an account is the weighted mean of its percentile ranks on
each outcome metric, each ranked in its own direction (higher ARR is better,
higher support cost is worse). Percentile ranks make metrics on different scales
(dollars, ratios, NPS points) comparable and are insensitive to outliers and to
monotone transforms (log ARR ranks like ARR). A metric missing for an account is
skipped in that account's mean.

The **best** cohort is the top ``best_quantile`` of the score, the **worst** the
bottom ``worst_quantile``; everything else is **middle** and is left out of the
fit model, which learns the contrast between the two ends.

The **cohort contrast** describes, feature by feature, how best and worst differ:
numeric columns by medians, Cliff's delta and a Mann-Whitney U test; categorical
and boolean columns by the most over-represented value, Cramér's V and a
chi-square test (missing values count as their own category). P-values are
corrected across all features with Benjamini-Hochberg.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from icpml._stats import benjamini_hochberg
from icpml._vocab import BEST, MIDDLE, WORST
from icpml.config import Config, OutcomeMetric

__all__ = ["value_score", "label_cohorts", "cohort_contrast",
           "BEST", "WORST", "MIDDLE"]



def value_score(df: pd.DataFrame, outcomes: list[OutcomeMetric]) -> pd.Series:
    """Composite value score in [0, 1] (1 = best), one per account.

    Parameters
    ----------
    df : DataFrame
        Must hold every outcome column (numeric).
    outcomes : list of OutcomeMetric
        Column, direction and weight of each metric.

    Returns
    -------
    Series named ``value_score``; NaN where an account has no outcome at all.

    Examples
    --------
    >>> import pandas as pd
    >>> from icpml.config import OutcomeMetric
    >>> df = pd.DataFrame({"arr": [1, 2, 3], "tickets": [3, 2, 1]})
    >>> value_score(df, [OutcomeMetric(column="arr"),
    ...                  OutcomeMetric(column="tickets", direction="lower")]).tolist()
    [0.0, 0.5, 1.0]
    """
    num = np.zeros(len(df))
    den = np.zeros(len(df))
    for m in outcomes:
        s = pd.to_numeric(df[m.column], errors="coerce").astype(float)
        if m.direction == "lower":
            s = -s
        # percentile rank in [0, 1]: (rank - 1) / (n - 1), ties averaged
        n = int(s.notna().sum())
        r = (s.rank(method="average") - 1) / max(n - 1, 1)
        ok = r.notna().to_numpy()
        num[ok] += m.weight * r.to_numpy()[ok]
        den[ok] += m.weight
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return pd.Series(score, index=df.index, name="value_score")


def label_cohorts(score: pd.Series, best_quantile: float = 0.25,
                  worst_quantile: float = 0.25) -> pd.Series:
    """Label each account ``best``, ``middle`` or ``worst`` from its value score.

    Accounts tied at a cut point fall on the same side, so cohort sizes may
    differ slightly from the quantiles. When ties swallow both cut points (a
    yes/no outcome such as ``converted``, where 90% share one value), the
    accounts split at the tied value instead: a yes/no outcome gives best =
    yes and worst = no. Accounts with no score are ``middle``; a constant score
    leaves everyone ``middle`` (nothing to contrast).

    Parameters
    ----------
    score : pandas.Series of float
        Value score of each account (:func:`value_score`).
    best_quantile : float, default 0.25
        Share of accounts with the highest score labelled ``best``.
    worst_quantile : float, default 0.25
        Share with the lowest score labelled ``worst``.

    Returns
    -------
    pandas.Series
        String dtype, named ``cohort``, same index as ``score``.

    Examples
    --------
    >>> import pandas as pd
    >>> from icpml.cohorts import label_cohorts
    >>> label_cohorts(pd.Series([0.1, 0.5, 0.9, 0.3])).tolist()
    ['worst', 'middle', 'best', 'middle']
    """
    s = score.astype(float)
    hi = s.quantile(1 - best_quantile)
    lo = s.quantile(worst_quantile)
    labels = pd.Series(MIDDLE, index=s.index, name="cohort", dtype="string")
    if hi > lo:
        labels[s >= hi] = BEST
        labels[s <= lo] = WORST
    elif s.nunique() >= 2:  # both cut points on one tied value
        above = (s > lo) if lo < s.max() else (s >= lo)
        labels[above] = BEST
        labels[~above & s.notna()] = WORST
    return labels


def _cliffs_delta(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Cliff's delta (P(a>b) - P(a<b)) and the two-sided Mann-Whitney p-value."""
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    delta = 2 * res.statistic / (len(a) * len(b)) - 1
    return float(delta), float(res.pvalue)


def cohort_contrast(df: pd.DataFrame, cohorts: pd.Series, cfg: Config,
                    kinds: dict[str, str]) -> pd.DataFrame:
    """Best vs worst, feature by feature, with effect sizes and BH q-values.

    Numeric columns: medians, Cliff's delta (Cliff 1993) and a two-sided
    Mann-Whitney U test; categorical and boolean columns: the most
    over-represented value, Cramér's V and a chi-square test (missing values are a
    category). P-values are Benjamini-Hochberg corrected across all features.

    Parameters
    ----------
    df : pandas.DataFrame
        Validated accounts, one per row. Not modified.
    cohorts : pandas.Series
        Cohort of each account (:func:`label_cohorts`), same index.
    cfg : Config
        Supplies the feature columns and their groups.
    kinds : dict of str to str
        Kind of each feature column.

    Returns
    -------
    pandas.DataFrame
        One row per feature column, sorted by q-value then |effect|: ``feature,
        group, kind, best, worst, effect, effect_measure, p_value, q_value,
        missing_best, missing_worst``. ``best`` / ``worst`` are short text
        summaries (median and IQR, or the most over-represented value and its
        share); ``missing_*`` are shares (0-1).
    """
    groups = cfg.columns.feature_groups
    best = df[cohorts == BEST]
    worst = df[cohorts == WORST]
    rows = []
    for col in cfg.columns.feature_columns:
        kind = kinds[col]
        b, w = best[col], worst[col]
        row = {
            "feature": col,
            "group": groups[col],
            "kind": kind,
            "missing_best": float(b.isna().mean()) if len(b) else np.nan,
            "missing_worst": float(w.isna().mean()) if len(w) else np.nan,
        }
        if kind == "numeric":
            bv, wv = b.dropna().to_numpy(float), w.dropna().to_numpy(float)
            if len(bv) >= 2 and len(wv) >= 2 and np.ptp(np.r_[bv, wv]) > 0:
                delta, p = _cliffs_delta(bv, wv)
            else:
                delta, p = np.nan, np.nan
            row.update(
                best=_numeric_summary(bv), worst=_numeric_summary(wv),
                effect=delta, effect_measure="Cliff's delta", p_value=p,
            )
        else:
            bt = b.astype("string").fillna("(missing)")
            wt = w.astype("string").fillna("(missing)")
            table = pd.crosstab(
                pd.concat([bt, wt]).to_numpy(),
                np.r_[np.zeros(len(bt)), np.ones(len(wt))],
            )
            if table.shape[0] >= 2 and table.shape[1] == 2:
                chi2, p, _, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
                n = table.to_numpy().sum()
                v = float(np.sqrt(chi2 / n)) if n else np.nan
            else:
                p, v = np.nan, np.nan
            bshare = bt.value_counts(normalize=True)
            wshare = wt.value_counts(normalize=True)
            diff = bshare.sub(wshare, fill_value=0).sort_values(ascending=False, kind="stable")
            top = str(diff.index[0]) if len(diff) else ""
            low = str(diff.index[-1]) if len(diff) else ""
            row.update(
                best=f"{top}: {bshare.get(top, 0):.0%}" if top else "",
                worst=f"{low}: {wshare.get(low, 0):.0%}" if low else "",
                effect=v, effect_measure="Cramér's V", p_value=p,
            )
        rows.append(row)
    out = pd.DataFrame(rows)
    out["q_value"] = benjamini_hochberg(out["p_value"].to_numpy())
    out["abs_effect"] = out["effect"].abs()
    out = out.sort_values(["q_value", "abs_effect", "feature"], ascending=[True, False, True],
                          na_position="last", kind="stable").drop(columns="abs_effect")
    cols = ["feature", "group", "kind", "best", "worst", "effect", "effect_measure",
            "p_value", "q_value", "missing_best", "missing_worst"]
    return out[cols].reset_index(drop=True)


def _numeric_summary(v: np.ndarray) -> str:
    if len(v) == 0:
        return "no values"
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return f"median {_fmt(med)} (IQR {_fmt(q1)}-{_fmt(q3)})"


def _fmt(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.2f}"
