"""Drift between the data a model learned from and fresh data.

Two views, the second more useful than the first:

* **Population stability (PSI)** per targetable column. A model run stores a
  *profile* of its training data (:func:`data_profile`: decile edges and
  proportions for numbers, category shares for the rest, missing share for
  both); :func:`psi_table` bins fresh data the same way and computes
  ``PSI = sum((p_fresh - p_train) * ln(p_fresh / p_train))``. Rule of thumb:
  < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
* **Criteria drift**: each criterion's coverage and lift on fresh data vs when it
  was learned (:func:`criteria_drift`). A criterion whose fresh lift interval
  reaches the "no effect" side (inclusion: <= 1; exclusion: >= 1) has stopped
  holding, whatever PSI says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icpml.criteria import CriteriaSet, segment_evidence

__all__ = ["data_profile", "psi_table", "criteria_drift"]

_EPS = 1e-4
_MISSING = "__missing__"


def data_profile(df: pd.DataFrame, kinds: dict[str, str], bins: int = 10) -> dict:
    """A compact, JSON-ready description of each column's distribution.

    Numbers: the inner quantile edges of ``bins`` bins and the share in each;
    other kinds: the shares of the 50 commonest values; both: the missing share.
    :func:`psi_table` bins fresh data the same way.

    Parameters
    ----------
    df : pandas.DataFrame
        The training accounts. Not modified.
    kinds : dict of str to str
        Kind of each column to profile (absent columns are skipped).
    bins : int, default 10
        Quantile bins of a numeric column (fewer when edges tie).

    Returns
    -------
    dict
        Column -> ``{"kind", "missing", "n", "shares"}`` plus ``"edges"`` for
        numbers (shares 0-1).
    """
    prof: dict = {}
    for c, kind in kinds.items():
        if c not in df.columns:
            continue
        s = df[c]
        entry: dict = {"kind": kind, "missing": float(s.isna().mean()), "n": int(len(s))}
        if kind == "numeric":
            x = pd.to_numeric(s, errors="coerce").dropna().to_numpy(float)
            edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1))) if len(x) else np.array([])
            inner = edges[1:-1].tolist()
            entry["edges"] = inner
            entry["shares"] = _numeric_shares(x, inner).tolist()
        else:
            shares = s.astype("string").value_counts(normalize=True, dropna=True)
            top = shares.head(50)
            entry["shares"] = {str(k): float(v) for k, v in top.items()}
        prof[c] = entry
    return prof


def _numeric_shares(x: np.ndarray, inner: list[float]) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(len(inner) + 1)
    idx = np.searchsorted(np.asarray(inner), x, side="right")
    return np.bincount(idx, minlength=len(inner) + 1) / len(x)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.clip(np.asarray(p, float), _EPS, None)
    q = np.clip(np.asarray(q, float), _EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_table(profile: dict, fresh: pd.DataFrame) -> pd.DataFrame:
    """PSI of each profiled column on fresh data, largest first.

    The population stability index ``sum((q - p) * ln(q / p))`` over the bins of
    the training profile ``p`` and the fresh shares ``q`` (shares clipped at
    1e-4). Missingness is its own bin, so a column that starts arriving empty
    drifts.

    Parameters
    ----------
    profile : dict
        From :func:`data_profile` on the training data.
    fresh : pandas.DataFrame
        Fresh accounts. Not modified.

    Returns
    -------
    pandas.DataFrame
        One row per profiled column: ``column``, ``psi`` and ``status``
        (``stable`` <= 0.1 < ``moderate shift`` <= 0.25 < ``major shift``);
        columns absent from ``fresh`` come first with PSI NaN and status
        ``missing``.
    """
    rows = []
    for c, entry in profile.items():
        if c not in fresh.columns:
            rows.append({"column": c, "psi": np.nan, "status": "missing"})
            continue
        s = fresh[c]
        miss_tr, miss_fr = entry["missing"], float(s.isna().mean())
        if entry["kind"] == "numeric":
            x = pd.to_numeric(s, errors="coerce").dropna().to_numpy(float)
            p = np.asarray(entry["shares"]) * (1 - miss_tr)
            q = _numeric_shares(x, entry["edges"]) * (1 - miss_fr)
        else:
            train = entry["shares"]
            fresh_sh = s.astype("string").value_counts(normalize=True, dropna=True)
            cats = list(train)
            p = np.array([train[k] for k in cats] + [max(1 - sum(train.values()), 0)]) * (1 - miss_tr)
            q_known = np.array([float(fresh_sh.get(k, 0.0)) for k in cats])
            q = np.append(q_known, max(1 - q_known.sum(), 0)) * (1 - miss_fr)
        value = _psi(np.append(p, miss_tr), np.append(q, miss_fr))
        status = "major shift" if value > 0.25 else ("moderate shift" if value > 0.1 else "stable")
        rows.append({"column": c, "psi": value, "status": status})
    out = pd.DataFrame(rows, columns=["column", "psi", "status"])
    return out.sort_values("psi", ascending=False, na_position="first", kind="stable").reset_index(drop=True)


def criteria_drift(criteria: CriteriaSet, fresh: pd.DataFrame, is_best: pd.Series,
                   churned: pd.Series | None = None, *, n_bootstrap: int = 300,
                   seed: int = 0) -> pd.DataFrame:
    """Each criterion's coverage and lift as learned vs on fresh data.

    Parameters
    ----------
    criteria : CriteriaSet
        The criteria with their evidence at discovery.
    fresh : pandas.DataFrame
        Coerced fresh accounts with known outcomes. Not modified.
    is_best : pandas.Series of bool
        Best-cohort membership of the fresh accounts.
    churned : pandas.Series of bool, optional
        Churn of the fresh accounts.
    n_bootstrap : int, default 300
        Resamples of the fresh lift interval.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per criterion: ``kind``, ``criterion``, ``coverage_then``,
        ``coverage_now`` (shares), ``lift_then``, ``lift_now``,
        ``lift_now_ci_low``, ``lift_now_ci_high`` (ratios) and ``holds``, False
        when the fresh lift interval reaches the no-effect side (an inclusion's
        lower bound <= 1, an exclusion's upper bound >= 1).
    """
    rows = []
    for c in criteria.icp + criteria.anti_icp:
        ev = segment_evidence(c.mask(fresh), is_best, churned, n_bootstrap=n_bootstrap, seed=seed,
                              side="include" if c.kind == "icp" else "exclude")
        lo, hi = ev["lift_ci"]
        if c.kind == "icp":
            holds = bool(np.isfinite(lo) and lo > 1)
        else:
            holds = bool(np.isfinite(hi) and hi < 1)
        rows.append({
            "kind": c.kind, "criterion": c.describe(),
            "coverage_then": c.evidence.get("coverage"), "coverage_now": ev["coverage"],
            "lift_then": c.evidence.get("lift"), "lift_now": ev["lift"],
            "lift_now_ci_low": lo, "lift_now_ci_high": hi, "holds": holds,
        })
    return pd.DataFrame(rows, columns=["kind", "criterion", "coverage_then", "coverage_now",
                                       "lift_then", "lift_now", "lift_now_ci_low",
                                       "lift_now_ci_high", "holds"])
