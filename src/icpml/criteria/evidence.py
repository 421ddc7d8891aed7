"""Held-out evidence for a segment: coverage, lift with a bootstrap interval, churn inside/outside, wrongly excluded best customers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from icpml.config import CriteriaConfig


# ----------------------------------------------------------------------------- evidence
def _fisher_greater(a_pos: int, a_n: int, b_pos: int, b_n: int) -> float:
    """One-sided Fisher p-value that the rate in A exceeds the rate in B."""
    if a_n == 0 or b_n == 0:
        return 1.0
    return float(stats.fisher_exact([[a_pos, a_n - a_pos], [b_pos, b_n - b_pos]],
                                    alternative="greater").pvalue)


def segment_evidence(mask: pd.Series, is_best: pd.Series, churned: pd.Series | None, *,
                     is_worst: pd.Series | None = None, n_bootstrap: int = 500, seed: int = 0,
                     side: str = "include") -> dict:
    """Evidence of a segment (a boolean mask over accounts) on some accounts.

    The rates are shares of the accounts given (held-out rows in discovery); the
    lift is the segment's best rate over the base rate, with a percentile
    bootstrap interval; ``wracc`` is the weighted relative accuracy of subgroup
    discovery (Lavrac et al. 2004), ``coverage * (best_rate - base_rate)``; the
    p-value is a one-sided Fisher exact test (scipy) of the 2x2 table.

    Parameters
    ----------
    mask : pandas.Series of bool
        Accounts in the segment.
    is_best : pandas.Series of bool
        Best-cohort accounts (middle and worst are False), aligned with ``mask``.
    churned : pandas.Series of bool, optional
        Whether each account churned; adds ``churn_inside`` and ``churn_outside``.
    is_worst : pandas.Series of bool, optional
        Worst-cohort membership; adds ``worst_rate`` and ``worst_lift``.
    n_bootstrap : int, default 500
        Resamples of the lift interval.
    seed : int, default 0
        Seed of the bootstrap.
    side : {"include", "exclude", "churn"}
        Which one-sided test gives ``p_value``: the segment's best rate is
        higher (include) or lower (exclude) than the rest's, or its churn rate
        is higher (churn).

    Returns
    -------
    dict
        ``n`` and ``n_covered`` (counts), ``coverage``, ``best_rate``,
        ``best_rate_outside``, ``base_rate``, ``best_wrongly_excluded`` (shares
        0-1), ``lift`` and ``lift_ci`` (``[low, high]``, ratios), ``wracc``,
        ``p_value``, and the optional churn / worst figures above. Undefined
        figures (empty segment) are NaN.
    """
    m = mask.to_numpy(bool)
    b = is_best.to_numpy(bool)
    n = len(m)
    k = int(m.sum())
    base = float(b.mean()) if n else float("nan")
    rate = float(b[m].mean()) if k else float("nan")
    out_rate = float(b[~m].mean()) if n - k else float("nan")
    ev: dict = {
        "n": n,
        "n_covered": k,
        "coverage": k / n if n else float("nan"),
        "best_rate": rate,
        "best_rate_outside": out_rate,
        "base_rate": base,
        "lift": rate / base if k and base > 0 else float("nan"),
        "wracc": (k / n) * (rate - base) if k and n else float("nan"),
        "best_wrongly_excluded": float(m[b].mean()) if b.any() else float("nan"),
    }
    if is_worst is not None:
        w = is_worst.to_numpy(bool)
        ev["worst_rate"] = float(w[m].mean()) if k else float("nan")
        ev["worst_lift"] = (ev["worst_rate"] / w.mean()) if k and w.any() else float("nan")
    ch = None
    if churned is not None:
        ch = churned.to_numpy(bool)
        ev["churn_inside"] = float(ch[m].mean()) if k else float("nan")
        ev["churn_outside"] = float(ch[~m].mean()) if n - k else float("nan")
    if side == "include":
        ev["p_value"] = _fisher_greater(int(b[m].sum()), k, int(b[~m].sum()), n - k)
    elif side == "exclude":
        ev["p_value"] = _fisher_greater(int(b[~m].sum()), n - k, int(b[m].sum()), k)
    else:
        ev["p_value"] = (_fisher_greater(int(ch[m].sum()), k, int(ch[~m].sum()), n - k)
                         if ch is not None else float("nan"))
    lo, hi = _bootstrap_lift(m, b, n_bootstrap, seed)
    ev["lift_ci"] = [lo, hi]
    return ev


def _bootstrap_lift(m: np.ndarray, b: np.ndarray, n_boot: int, seed: int,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of lift = P(best | segment) / P(best).

    ``m`` (in the segment) and ``b`` (best cohort) are boolean arrays over the same n
    accounts. Lift depends on the rows only through the counts of the four cells
    (segment x best), so resampling n rows with replacement is drawing those counts
    from a multinomial(n, observed cell shares): the same bootstrap distribution as
    indexing rows, in O(n) once plus O(n_boot) (no n_boot x n matrix: at 1,000,000
    accounts that matrix took 1.7 GB). Resamples whose lift is undefined (no segment
    row or no best row drawn) are dropped; with fewer than half left the interval is
    (nan, nan). Seeded: the same inputs give the same interval.
    """
    n = len(m)
    if n == 0 or m.sum() == 0 or b.sum() == 0:
        return float("nan"), float("nan")
    m, b = np.asarray(m, bool), np.asarray(b, bool)
    both = int((m & b).sum())
    cells = np.array([both, int(m.sum()) - both, int(b.sum()) - both, 0], dtype=np.int64)
    cells[3] = n - cells[:3].sum()
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cells / n, size=n_boot)  # (n_boot, 4): mb, m only, b only, neither
    seg = draws[:, 0] + draws[:, 1]
    best = draws[:, 0] + draws[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = (draws[:, 0] / seg) / (best / n)
    lift = lift[np.isfinite(lift)]
    if len(lift) < n_boot / 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(lift, a)), float(np.quantile(lift, 1 - a))


def _min_count(cfg: CriteriaConfig, n: int) -> int:
    """The fewest accounts a criterion may cover among ``n``: ``min_support_share`` of them,
    and never under 5."""
    return max(5, int(math.ceil(cfg.min_support_share * n)))


# ----------------------------------------------------------------------------- derive
def _odds_ratio(bad: np.ndarray, m: np.ndarray) -> float:
    """Odds ratio of ``bad`` inside vs outside ``m`` (0.5 continuity correction)."""
    a, b_ = bad[m].sum() + 0.5, (~bad[m]).sum() + 0.5
    c, d = bad[~m].sum() + 0.5, (~bad[~m]).sum() + 0.5
    return float((a / b_) / (c / d))


def detectable_lift(n: int, base_rate: float, coverage: float = 0.25) -> float:
    """The smallest lift a segment covering ``coverage`` of ``n`` accounts needs to be confirmed.

    The lift at which the lower end of a 95% (normal) interval of the segment's best
    rate just clears the base rate: what the data *can* tell apart from chance. On
    90 held-out accounts with a 25% best cohort that is about 1.8x; on 900, about 1.2x.

    Parameters
    ----------
    n : int
        Accounts the evidence is measured on.
    base_rate : float
        Share (0-1) of accounts in the best cohort.
    coverage : float, default 0.25
        Share (0-1) of the accounts inside the segment.

    Returns
    -------
    float
        The lift (ratio); NaN when not estimable (e.g. no accounts).

    Examples
    --------
    >>> from icpml.criteria import detectable_lift
    >>> round(detectable_lift(900, 0.25), 1)
    1.2
    """
    k = coverage * n
    if k < 1 or not 0 < base_rate < 1:
        return float("nan")
    for lift in np.arange(1.01, 1 / base_rate + 1e-9, 0.01):
        r = min(lift * base_rate, 1.0)
        if r - 1.96 * math.sqrt(r * (1 - r) / k) > base_rate:
            return float(round(lift, 2))
    return float("nan")
