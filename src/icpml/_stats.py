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
