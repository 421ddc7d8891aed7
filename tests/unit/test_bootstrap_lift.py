"""The lift interval's bootstrap draws cell counts (multinomial), not an n_boot x n matrix of rows.

The reference below is the row-indexing bootstrap it replaced: both resample n accounts with
replacement, so their lift distributions are the same; only the random stream differs.
"""

from __future__ import annotations

import numpy as np
import pytest

from icpml.criteria.evidence import _bootstrap_lift


def _rows_bootstrap(m: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """The previous implementation's bootstrap lifts (resampled row indices)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(m), size=(n_boot, len(m)))
    mm, bb = m[idx], b[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = ((bb & mm).sum(axis=1) / mm.sum(axis=1)) / bb.mean(axis=1)
    return lift[np.isfinite(lift)]


def _case(n: int, seg: float, base: float, lift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.random(n) < seg
    p = np.where(m, base * lift, base * (1 - seg * lift) / (1 - seg))
    return m, rng.random(n) < p


@pytest.mark.parametrize(("n", "seg", "base", "lift"), [
    (300, 0.3, 0.25, 1.8),    # small holdout, a real ICP
    (2000, 0.1, 0.3, 1.0),    # no effect
    (1500, 0.2, 0.25, 0.2),   # an exclusion: few best inside
    (120, 0.05, 0.4, 1.5),    # tiny segment: some resamples have no segment row
])
def test_interval_matches_the_row_bootstrap(n, seg, base, lift):
    m, b = _case(n, seg, base, lift, seed=n)
    ref = _rows_bootstrap(m, b, 4000, seed=1)
    lo_ref, med_ref, hi_ref = np.quantile(ref, [0.025, 0.5, 0.975])
    lo, hi = _bootstrap_lift(m, b, 4000, seed=2)
    # same distribution: bounds agree up to Monte Carlo error (a few % of the width)
    width = hi_ref - lo_ref
    assert lo == pytest.approx(lo_ref, abs=0.06 * width + 1e-9)
    assert hi == pytest.approx(hi_ref, abs=0.06 * width + 1e-9)
    # and the same median: the default 500 draws, several seeds, centred where the rows put it
    mids = []
    for s in range(5):
        lo5, hi5 = _bootstrap_lift(m, b, 500, seed=s)
        assert lo5 <= hi5
        mids.append((lo5 + hi5) / 2)
    assert np.mean(mids) == pytest.approx((lo_ref + hi_ref) / 2, abs=0.08 * width + 1e-9)
    assert lo_ref <= med_ref <= hi_ref


def test_interval_by_hand_and_edge_cases():
    m = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    b = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0], bool)
    lo, hi = _bootstrap_lift(m, b, 500, seed=0)
    assert lo <= 1.875 <= hi
    assert _bootstrap_lift(m, b, 500, seed=0) == (lo, hi)  # seeded
    assert all(np.isnan(_bootstrap_lift(m, np.zeros(10, bool), 500, 0)))
    assert all(np.isnan(_bootstrap_lift(np.zeros(10, bool), b, 500, 0)))
    assert all(np.isnan(_bootstrap_lift(np.zeros(0, bool), np.zeros(0, bool), 500, 0)))
    # no best account in the segment: lift 0 in every resample
    assert _bootstrap_lift(m, ~m & b, 500, 0) == (0.0, 0.0)


def test_interval_at_a_million_accounts_needs_no_row_matrix():
    m, b = _case(1_000_000, 0.2, 0.25, 1.6, seed=0)
    lo, hi = _bootstrap_lift(m, b, 500, seed=0)  # the row bootstrap needed 500 x 1e6 indices
    lift = b[m].mean() / b.mean()
    assert lo < lift < hi and hi - lo < 0.05
