"""Band and set fitting: numeric bounds and category sets chosen for the segment's held-out quality."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from icpml._vocab import MISSING
from icpml.cohorts import BEST, WORST
from icpml.criteria.rule import OPERATORS, Criterion, _as_category, _code_value
from icpml.data import spelling_key


def _roundest(lo: float, hi: float, *, include_lo: bool, include_hi: bool) -> float:
    """The roundest number t in the gap between two observed values (lo, hi).

    Any threshold in the gap classifies the observed accounts the same way, so we
    show the one a person would write: 600 rather than 601.5.
    """
    if hi <= lo:
        return float(hi)

    def ok(t: float) -> bool:
        return (t > lo or (include_lo and t == lo)) and (t < hi or (include_hi and t == hi))

    span = hi - lo
    for exp in range(int(math.floor(math.log10(max(abs(hi), abs(lo), 1e-12)))), -7, -1):
        step = 10.0 ** exp
        for mult in (10, 5, 2, 1):  # prefer multiples of 10, then 5, 2, 1 of this step
            q = step * mult
            t = math.ceil(lo / q) * q
            if not ok(t):
                t += q
            if ok(t):
                return float(round(t, 10))
        if step < span / 1000:
            break
    return float((lo + hi) / 2)


# ----------------------------------------------------------------------------- refine
def _refine_bound(x: np.ndarray, y: np.ndarray, bound: float, *, upper: bool,
                  width: float = 0.15) -> float:
    """Move one numeric bound to the best outcome split near it (a stump on ``y``).

    Only accounts whose rank lies within ``width`` of the bound's rank are used,
    so the refinement stays local to the edge the model found. The result is
    the roundest number in the gap between the two observed values it separates.
    """
    ok = np.isfinite(x)
    x, y = x[ok], y[ok].astype(float)
    if len(x) < 20:
        return bound
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    r = np.searchsorted(x, bound) / len(x)
    lo_r, hi_r = max(r - width, 0.0), min(r + width, 1.0)
    a, z = int(lo_r * len(x)), int(np.ceil(hi_r * len(x)))
    xs, ys = x[a:z], y[a:z]
    i = _stump(xs, ys)
    if i is None:
        return bound
    if upper:  # x <= t keeps xs[:i]
        return _roundest(xs[i - 1], xs[i], include_lo=True, include_hi=False)
    return _roundest(xs[i - 1], xs[i], include_lo=False, include_hi=True)


def refine_numeric(c: Criterion, rows: pd.DataFrame, cohort: pd.Series) -> Criterion:
    """Refine a numeric criterion's bounds on outcome labels (see :func:`_refine_bound`).

    ICP bounds split best from the rest; exclusion bounds split worst from the rest.

    Parameters
    ----------
    c : Criterion
        The criterion; returned unchanged unless numeric.
    rows : pandas.DataFrame
        Coerced accounts to refine on (train + selection, never held-out rows).
    cohort : pandas.Series
        Cohort of each row of ``rows``.

    Returns
    -------
    Criterion
        ``c`` with moved ``low`` / ``high`` (evidence unchanged).
    """
    if c.also:  # each numeric part on the accounts that meet the other parts
        parts = list(c.parts)
        for i, part in enumerate(parts):
            others = np.logical_and.reduce([q.mask(rows).to_numpy(bool) for j, q in enumerate(parts)
                                            if j != i])
            parts[i] = refine_numeric(part, rows[others], cohort[others])
        return replace(parts[0], also=tuple(parts[1:]))
    if c.op not in ("between", ">=", ">", "<", "<="):
        return c
    x = pd.to_numeric(rows[c.column], errors="coerce").to_numpy(float)
    y = ((cohort == BEST) if c.kind == "icp" else (cohort == WORST)).to_numpy(bool)
    low, high = c.low, c.high
    if low is not None:
        low = _refine_bound(x, y, low, upper=False)
    if high is not None:
        if c.op == "<":
            # "x < t": the same split as "x <= t'" with t the next round number up
            t = _refine_bound(x, y, high, upper=False)
            high = t
        else:
            high = _refine_bound(x, y, high, upper=True)
    if low is not None and high is not None and low > high:
        return c
    return replace(c, low=low, high=high)


def _band_stat(pos: np.ndarray, cnt: np.ndarray, total_pos: float, n: int) -> np.ndarray:
    """Pearson chi-square of a 2x2 table (inside vs outside, best vs rest), vectorised."""
    out_pos, out_n = total_pos - pos, n - cnt
    p = total_pos / n
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = pos / cnt - out_pos / out_n
        stat = cnt * out_n / n * diff ** 2 / (p * (1 - p))
    return np.where((cnt > 0) & (out_n > 0) & (diff > 0), stat, -np.inf)


def _chi2_in(c: Criterion, rows: pd.DataFrame, y: np.ndarray, seg: np.ndarray) -> float:
    """Pearson chi-square of ``c`` (inside vs outside) against ``y`` among ``seg`` (0 when ``c``
    does not raise the rate)."""
    m = c.mask(rows).to_numpy(bool)[seg]
    yy = np.asarray(y, dtype=bool)[seg]
    n = len(yy)
    if n == 0:
        return -np.inf
    return max(0.0, float(_band_stat(np.array([yy[m].sum()], float), np.array([m.sum()], float),
                                     float(yy.sum()), n)[0]))


#: How much (chi-square, 1 df at 5%) a second edge must add before a band replaces a one-sided cut.
_EDGE_GAIN = 3.84


#: Edges whose band is within this chi-square of the best one cannot be told apart (about an
#: 85% likelihood interval): the roundest of them is shown (:func:`_round_edge`).
_EDGE_SLACK = 2.0


#: Fewest accounts a band's segment needs before its bounds are fit, and the fewest on the
#: far side of a cut.
_MIN_BAND_ROWS, _MIN_OUTSIDE = 40, 5


_TAIL_SHARE = 0.5


def _round_edge(x: np.ndarray, near: np.ndarray, upper: bool) -> int:
    """The cut position (index into sorted ``x``) of the roundest threshold among near-best cuts.

    ``near`` are cut positions (0 < i < len(x)) whose band is within :data:`_EDGE_SLACK`
    of the best; a lower edge at position i keeps ``x[i:]`` (threshold in
    ``(x[i-1], x[i]]``), an upper edge keeps ``x[:i]`` (threshold in ``[x[i-1], x[i])``).
    The roundest number from the lowest to the highest of them (:func:`_roundest`) is
    mapped back to its position, so noise in the exact change point gives 600, not 688.
    """
    first, last = int(near.min()), int(near.max())
    if upper:
        t = _roundest(x[first - 1], x[last], include_lo=True, include_hi=False)
        return int(np.searchsorted(x, t, side="right"))
    t = _roundest(x[first - 1], x[last], include_lo=False, include_hi=True)
    return int(np.searchsorted(x, t, side="left"))


def _drop_weak_edge(c: Criterion, rows: pd.DataFrame, y: np.ndarray, segment: np.ndarray,
                    bar: float) -> Criterion:
    """``c`` without the edge of its band that adds less than :data:`_EDGE_GAIN` in the segment.

    The model's own band is kept when the data do not clearly prefer other bounds; but an
    edge the data do not support either (a cut at the far tail of a one-sided effect) is
    dropped, by the same rule that lets a second edge into a fitted band, provided the
    one-sided cut itself clears ``bar`` (the scan's chi-square: noise moves nothing).
    """
    if c.op != "between":
        return c
    whole = _chi2_in(c, rows, y, segment)
    one = [(_chi2_in(d, rows, y, segment), i, d) for i, d in enumerate(
        (replace(c, op=">=", high=None), replace(c, op="<=", low=None)))]
    stat, _, d = max(one, key=lambda t: (t[0], -t[1]))
    return d if stat >= max(bar, whole - _EDGE_GAIN) else c


def fit_band(c: Criterion, rows: pd.DataFrame, is_best: np.ndarray, segment: np.ndarray,
             min_k: int, max_cuts: int = 400) -> Criterion:
    """Choose an ICP numeric criterion's bounds for the segment, given the other criteria.

    Among ``rows`` in ``segment`` (every other ICP criterion met, no exclusion), the
    bounds are the cut points that best separate best-cohort accounts from the rest of
    the segment (largest Pearson chi-square of inside vs outside the band, the split a
    depth-2 tree makes): the change points of the best rate, not the tightest interval
    with the most significant lift nor the widest one with the largest F1 (with
    additive effects the accounts just outside a planted band are still above average,
    and F1 / WRAcc would widen the band to take them). A two-sided band replaces the
    best one-sided cut only when its second edge adds a chi-square of at least 3.84 (5%,
    1 df); a one-sided cut replaces "no cut" likewise; and the result replaces the
    model's bounds only when it beats them by the same margin and clears the 5%
    chi-square Bonferroni-corrected for the cut points scanned (noise never moves a
    bound; but an edge of the model's band that adds less than 3.84 is dropped,
    :func:`_drop_weak_edge`). The band keeps at least ``min_k`` accounts (at most a
    quarter of the segment is required), and each cut leaves at least half that many (and
    5) accounts on its far side, so no cut trims a handful of tail accounts.

    The exact change point is noisy (a handful of accounts past a planted 600 decide
    between 600 and 688), so each edge is then shown as the roundest number among the
    cuts whose band's chi-square is within :data:`_EDGE_SLACK` (2.0) of the best, the
    other edge held (:func:`_round_edge`, :func:`_roundest`), if the rounded band still
    is within that slack; otherwise the best cut's own roundest number. Missing values
    never meet the criterion.

    Parameters
    ----------
    c : Criterion
        The ICP criterion whose bounds are chosen.
    rows : pandas.DataFrame
        Coerced accounts (the refinement rows).
    is_best : numpy.ndarray of bool
        Best-cohort membership of each row.
    segment : numpy.ndarray of bool
        Rows meeting every other ICP criterion and no exclusion.
    min_k : int
        Fewest accounts a criterion may cover.
    max_cuts : int, default 400
        Most candidate cut points scanned (evenly spaced among the value changes).

    Returns
    -------
    Criterion
        ``c`` with new bounds; ``c`` unchanged when it is not a numeric ICP
        criterion, the segment has fewer than 40 accounts, or no cut clears
        the bar (the caller's confirmation test then decides whether it stays).
    """
    if c.kind != "icp" or c.also or OPERATORS[c.op].family != "numeric":
        return c
    x_all = pd.to_numeric(rows[c.column], errors="coerce").to_numpy(float)
    seg = segment & np.isfinite(x_all)
    n_seg = int(segment.sum())
    if n_seg < _MIN_BAND_ROWS:
        return c
    min_in = max(_MIN_OUTSIDE, min(min_k, n_seg // 4))
    y_all = np.asarray(is_best, dtype=bool)
    miss_pos = float(y_all[segment & ~np.isfinite(x_all)].sum())
    order = np.argsort(x_all[seg], kind="stable")
    x, y = x_all[seg][order], y_all[seg][order].astype(float)
    m = len(x)
    cs = np.concatenate([[0.0], np.cumsum(y)])
    # cut positions i (x[:i] below, x[i:] above) where the value changes; at most max_cuts
    cuts = np.flatnonzero(x[1:] != x[:-1]) + 1
    if len(cuts) > max_cuts:
        cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, max_cuts).round().astype(int))]
    lo_i = np.concatenate([[0], cuts])      # band starts at x[lo]
    hi_i = np.concatenate([cuts, [m]])      # band ends before x[hi]
    total = float(cs[-1]) + miss_pos
    cnt = hi_i[None, :] - lo_i[:, None]
    pos = cs[hi_i][None, :] - cs[lo_i][:, None]
    stat = _band_stat(pos, cnt.astype(float), total, n_seg)
    # every cut leaves at least half of min_in (and 5) accounts on its far side: a cut
    # that trims a handful of tail accounts fits noise
    tail = max(_MIN_OUTSIDE, int(_TAIL_SHARE * min_in))
    ok_lo = (lo_i == 0) | (lo_i >= tail)
    ok_hi = (hi_i == m) | (m - hi_i >= tail)
    stat = np.where((cnt >= min_in) & (n_seg - cnt >= _MIN_OUTSIDE) & ok_lo[:, None]
                    & ok_hi[None, :], stat, -np.inf)
    # whole range (only missing values left out), one-sided (an open end) and two-sided
    full = stat[0, -1]
    one_lo, one_hi = stat[:, -1], stat[0, :]
    a = int(np.argmax(one_lo))
    z = int(np.argmax(one_hi))
    one = (one_lo[a], a, len(hi_i) - 1) if one_lo[a] >= one_hi[z] else (one_hi[z], 0, z)
    two_flat = int(np.argmax(stat))
    ta, tz = divmod(two_flat, stat.shape[1])
    scan = float(stats.chi2.isf(0.05 / max(len(cuts), 1), 1))  # the best of many cut points
    best = (full, 0, len(hi_i) - 1)
    if np.isfinite(one[0]) and one[0] >= (full if np.isfinite(full) else 0.0) + _EDGE_GAIN:
        best = one
    if np.isfinite(stat[ta, tz]) and stat[ta, tz] >= best[0] + _EDGE_GAIN and ta > 0 and tz < len(hi_i) - 1:
        best = (stat[ta, tz], ta, tz)
    if best[0] < max(scan, _chi2_in(c, rows, y_all, segment) + _EDGE_GAIN):
        return _drop_weak_edge(c, rows, y_all, segment, scan)  # keep the model's bounds
    top, a, z = best
    lo, hi = int(lo_i[a]), int(hi_i[z])
    if lo == 0 and hi == m:
        return c
    # round each edge within the cuts the data cannot tell from the best one (other edge held)
    bar = top - _EDGE_SLACK
    rlo, rhi = lo, hi
    if lo > 0:
        rlo = _round_edge(x, lo_i[(stat[:, z] >= bar) & (lo_i > 0)], upper=False)
    if hi < m:
        a2 = int(np.searchsorted(lo_i, rlo))
        row = stat[a2] if a2 < len(lo_i) and lo_i[a2] == rlo else stat[a]
        near = hi_i[(row >= bar) & (hi_i < m)]
        rhi = _round_edge(x, near, upper=True) if len(near) else hi
    k_in = rhi - rlo
    if k_in >= min_in and n_seg - k_in >= _MIN_OUTSIDE:
        s_round = _band_stat(np.array([cs[rhi] - cs[rlo]]), np.array([float(k_in)]), total, n_seg)[0]
        if s_round >= bar:
            lo, hi = rlo, rhi
    low = _roundest(x[lo - 1], x[lo], include_lo=False, include_hi=True) if lo > 0 else None
    high = _roundest(x[hi - 1], x[hi], include_lo=True, include_hi=False) if hi < m else None
    return _band(c, low, high)


def _band(c: Criterion, low: float | None, high: float | None) -> Criterion:
    """``c`` as the band ``[low, high]`` (either end open when None; both None: ``c``)."""
    if low is not None and high is not None:
        return replace(c, op="between", low=low, high=high)
    if low is not None:
        return replace(c, op=">=", low=low, high=None)
    if high is not None:
        return replace(c, op="<=", low=None, high=high)
    return c


#: Fewer accounts than this in the segment: category sets stay as SHAP proposed them (a
#: ranking of many categories on a few dozen accounts picks noise).
_MIN_SET_ROWS = 60


def fit_set(c: Criterion, rows: pd.DataFrame, is_best: np.ndarray, segment: np.ndarray,
            min_k: int, min_per_value: int = 3) -> Criterion:
    """Choose an ICP category set for the segment, given the other criteria.

    Among ``rows`` in ``segment`` (every other ICP criterion met, no exclusion), the
    categories with at least ``min_per_value`` accounts there are ranked by their best
    rate (shrunk towards the segment's rate by one pseudo-account, so a category seen
    twice does not lead); the set is the prefix of that ranking with the largest Pearson
    chi-square of inside vs outside (the optimal binary split of an ordered category,
    Breiman et al. 1984, sec. 9.4). The set keeps SHAP's choice when the data cannot
    tell (fewer than ``4 * min_k`` or :data:`_MIN_SET_ROWS` accounts, or no prefix beats SHAP's set by the
    5% chi-square, Bonferroni-corrected for the prefixes compared). Only plain
    ``in`` criteria of columns with three or more categories are refit.

    Parameters
    ----------
    c : Criterion
        The ICP criterion whose category set is chosen.
    rows : pandas.DataFrame
        Coerced accounts (the refinement rows).
    is_best : numpy.ndarray of bool
        Best-cohort membership of each row.
    segment : numpy.ndarray of bool
        Rows meeting every other ICP criterion and no exclusion.
    min_k : int
        Fewest accounts a criterion may cover.
    min_per_value : int, default 3
        Fewest accounts a category needs in the segment to be ranked.

    Returns
    -------
    Criterion
        ``c`` with the chosen ``values``, or ``c`` unchanged.
    """
    if c.kind != "icp" or c.also or c.op != "in":
        return c
    seg = np.asarray(segment, dtype=bool)
    n = int(seg.sum())
    if n < max(4 * min_k, _MIN_SET_ROWS):
        return c
    code = c.is_code(None, rows[c.column])
    if code:  # a code set: the values as numbers (the same key for 2, 2.0 and "2")
        num = pd.to_numeric(rows[c.column], errors="coerce").to_numpy(float)[seg]
        cat = np.array([MISSING if np.isnan(v) else _code_value(v) for v in num], dtype=object)
        keys = np.array([str(v) for v in cat], dtype=object)
    else:
        cat = _as_category(rows[c.column]).to_numpy(object)[seg]
        keys = np.array([spelling_key(v) for v in cat], dtype=object)
    y = np.asarray(is_best, dtype=bool)[seg]
    uk, inv = np.unique(keys, return_inverse=True)
    if len(uk) < 3:
        return c
    cnt = np.bincount(inv, minlength=len(uk)).astype(float)
    pos = np.bincount(inv, weights=y.astype(float), minlength=len(uk))
    rate = (pos + y.mean()) / (cnt + 1)
    order = [i for i in np.argsort(-rate, kind="stable") if cnt[i] >= min_per_value]
    if not order:
        return c
    stat = _band_stat(np.cumsum(pos[order]), np.cumsum(cnt[order]), float(y.sum()), n)
    stat = np.where(np.cumsum(cnt[order]) >= min_k, stat, -np.inf)
    j = int(np.argmax(stat))
    bar = float(stats.chi2.isf(0.05 / max(len(order) - 1, 1), 1))  # the best of several prefixes
    if not np.isfinite(stat[j]) or stat[j] < _chi2_in(c, rows, is_best, seg) + bar:
        return c  # the data do not clearly prefer another set: keep the model's
    chosen = set(uk[order[:j + 1]])
    if code:
        return replace(c, values=tuple({v for v, k in zip(cat, keys, strict=True) if k in chosen}))
    # one shown spelling per key: the most frequent one in the segment
    names = {}
    for v, k in zip(cat, keys, strict=True):
        if k in chosen:
            names.setdefault(k, {}).setdefault(v, 0)
            names[k][v] += 1
    values = tuple(sorted(max(sorted(d), key=d.get) for d in names.values()))
    return replace(c, values=values)


def _stump(x: np.ndarray, s: np.ndarray) -> int | None:
    """Index i maximizing the SHAP difference when splitting sorted x between i-1 and i."""
    n = len(x)
    if n < 2:
        return None
    cs = np.cumsum(s)
    total = cs[-1]
    best_i, best_gain = None, -np.inf
    for i in range(1, n):
        if x[i] == x[i - 1]:
            continue
        left, right = cs[i - 1] / i, (total - cs[i - 1]) / (n - i)
        gain = i * (n - i) * (left - right) ** 2  # between-group sum of squares (times n)
        if gain > best_gain:
            best_gain, best_i = gain, i
    return best_i
