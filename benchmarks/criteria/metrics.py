"""Segment metrics: held-out quality, membership vs the planted truth, false discoveries.

All rates use the held-out accounts (every cohort; the target is ``is_best``):

* coverage   = share of held-out accounts in the ICP segment;
* best rate  = share of the segment in the best cohort;
* lift       = best rate / overall best rate;
* WRAcc      = coverage * (best rate - overall best rate);
* p value    = one-sided Fisher exact test, best rate inside > outside;
* wrongly excluded = share of held-out best-cohort accounts inside the anti-ICP.

Membership precision / recall / F1 compare a method's segment with the planted
truth on fresh accounts from the same generator (another seed).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def segment_quality(mask: np.ndarray, is_best: np.ndarray) -> dict[str, float]:
    """Coverage, best rate, lift, WRAcc and one-sided Fisher p of ``mask`` for ``is_best``."""
    mask, is_best = np.asarray(mask, bool), np.asarray(is_best, bool)
    n, k = len(mask), int(mask.sum())
    base = float(is_best.mean()) if n else float("nan")
    if k == 0:
        return {"coverage": 0.0, "best_rate": float("nan"), "lift": float("nan"),
                "wracc": 0.0, "p_value": 1.0}
    rate = float(is_best[mask].mean())
    inside, outside = int(is_best[mask].sum()), int(is_best[~mask].sum())
    table = [[inside, k - inside], [outside, (n - k) - outside]]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue) if k < n else 1.0
    return {"coverage": k / n, "best_rate": rate, "lift": rate / base if base else float("nan"),
            "wracc": (k / n) * (rate - base), "p_value": p}


def anti_quality(anti: np.ndarray, is_best: np.ndarray, is_worst: np.ndarray) -> dict[str, float]:
    """Coverage of the anti-ICP, best accounts it wrongly excludes, worst-cohort lift inside."""
    anti = np.asarray(anti, bool)
    is_best, is_worst = np.asarray(is_best, bool), np.asarray(is_worst, bool)
    n_best = int(is_best.sum())
    worst_base = float(is_worst.mean()) if len(anti) else float("nan")
    return {
        "anti_coverage": float(anti.mean()) if len(anti) else 0.0,
        "wrongly_excluded": float((anti & is_best).sum() / n_best) if n_best else float("nan"),
        "anti_worst_lift": (float(is_worst[anti].mean()) / worst_base
                            if anti.any() and worst_base else float("nan")),
    }


def membership(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of ``pred`` against ``true`` (0 when undefined)."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    tp = float((pred & true).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / true.sum() if true.sum() else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def ratio(a: float | None, b: float | None) -> float:
    """``a / b``, NaN when either is missing or ``b`` is 0."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return float("nan")
    return a / b


def nanmean(values: list[float | None]) -> float:
    """Mean of the finite values (NaN when there is none)."""
    vals = [v for v in values if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def jsonable(x, digits: int | None = None):
    """``x`` with numpy scalars, tuples and sets made JSON-ready (non-finite floats as
    None, dict keys as text); floats rounded to ``digits`` when given. Shared by the
    benchmark scripts (``run.py``, ``procedural.py``)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v, digits) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            return None
        return round(float(x), digits) if digits is not None else float(x)
    return x
