"""Statistics shared by several stages (a leaf module: imports nothing from icpml)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["benjamini_hochberg"]


def benjamini_hochberg(p: np.ndarray | pd.Series) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (same shape); NaN p-values stay NaN and are not
    counted among the tests.

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, float("nan")]).round(3).tolist()
    [0.02, 0.04, nan]
    """
    p = np.asarray(p, dtype=float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(np.clip(p[ok], 0, 1), method="bh")
    return q


def sample_by_class(labels: np.ndarray | pd.Series, n: int, seed: int) -> np.ndarray:
    """Sorted positions of ``n`` of ``len(labels)`` items, each class in proportion (seeded).

    scikit-learn's stratified ``train_test_split`` where it applies (the rows it draws are
    those of earlier releases). It refuses when fewer than one row per class would be left
    out, or a class has a single member (1,002 accounts of three cohorts sampled to 1,000
    raised ``ValueError``); then each class gets its largest-remainder share of ``n``,
    drawn at random within the class.

    Parameters
    ----------
    labels : array-like, shape (n_rows,)
        The class of each row.
    n : int
        How many rows to keep; all of them (``arange``) when ``n >= n_rows``.
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray of int, shape (min(n, n_rows),)
        Positions into ``labels``, ascending.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(labels)
    if n >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    if len(y) - n >= len(classes) and n >= len(classes) and counts.min() >= 2:
        keep, _ = train_test_split(np.arange(len(y)), train_size=n, random_state=seed, stratify=y)
        return np.sort(keep)
    share = counts * n / len(y)
    take = np.floor(share).astype(int)
    extra = n - int(take.sum())
    take[np.argsort(-(share - take), kind="stable")[:extra]] += 1
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(keep))
