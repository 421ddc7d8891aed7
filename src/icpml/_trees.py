"""Compiled kernel behind :class:`icpml.fastpredict.FastPredictor` (numba, already a dependency of shap).

One function, :func:`raw_scores`: the raw (log-odds) score of a tree ensemble compiled by
``FastPredictor`` into split tables, for a range of rows. Kept apart so that importing
``icpml`` does not import numba; it is imported (and, the first time on a machine,
compiled and cached) when a model first predicts.

The method is QuickScorer's (Lucchese et al., SIGIR 2015), vectorised over rows. A tree's
leaves are numbered left to right, and each row carries a bit mask of the leaves still
reachable. Every split that sends the row right rules out the leaves of its left subtree;
the leftmost leaf not ruled out is the one a root-to-leaf walk reaches (its lowest set
bit). Each feature's value is first reduced to a small index - for a number, how many of
the ensemble's cut points lie below it (missing: one past the last); for a category, its
one-hot slot - so that every split becomes "the index is in [low, low + span]: go right",
one subtraction and one unsigned comparison. The innermost loop applies one split to a
block of rows with no branches and no gathers, which the compiler turns into SIMD
instructions: 3-4 ns per tree per row on the development machine, against 80-110 ns for
scikit-learn's ``predict_proba`` on the same encoded rows, one thread each
(``benchmarks/scoring/run.py``), whose tree walk spends its time on mispredicted branches.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

#: Rows per block: the block's indices and leaf masks stay in the first-level cache.
BLOCK = 1024


@njit(nogil=True, cache=True)
def raw_scores(num, cat, first, last, cuts, cut_start, split_feature, split_low, split_span,
               split_keep, tree_start, leaf_values, baseline, out):  # pragma: no cover - compiled; tested through FastPredictor
    """Write the raw score of rows ``first`` to ``last - 1`` of ``num``/``cat`` into ``out``.

    num : float64 (n, n_num), column-major, the numeric features (NaN = missing).
    cat : int32 (n, n_cat), column-major, each categorical feature's one-hot slot + 1
        (0 = none).
    cuts, cut_start : numeric feature f's sorted cut points are
        ``cuts[cut_start[f]:cut_start[f + 1]]``.
    split_feature, split_low, split_span, split_keep : split k reads feature
        ``split_feature[k]`` (numeric first, then categorical); a row whose index lies in
        ``[split_low[k], split_low[k] + split_span[k]]`` goes right and keeps only the
        leaves in ``split_keep[k]``.
    tree_start : tree t owns splits ``tree_start[t]`` to ``tree_start[t + 1] - 1``.
    leaf_values : (n_trees, max leaves), leaves in left-to-right order.
    baseline : the ensemble's constant; each row's sum is baseline + tree 0 + tree 1 + ...
    """
    n_num = num.shape[1]
    n_feat = n_num + cat.shape[1]
    index = np.empty((n_feat, BLOCK), np.uint16)
    state = np.empty(BLOCK, split_keep.dtype)
    everything = ~split_keep.dtype.type(0)
    for i0 in range(first, last, BLOCK):
        w = min(BLOCK, last - i0)
        for f in range(n_num):
            lo = cut_start[f]
            hi = cut_start[f + 1]
            for i in range(w):
                x = num[i0 + i, f]
                c = 0  # how many cuts are < x (numpy's searchsorted, side="left"): a
                for j in range(lo, hi):  # vectorised count beats a binary search here
                    c += cuts[j] < x
                index[f, i] = hi - lo + 1 if np.isnan(x) else c
        for g in range(cat.shape[1]):
            for i in range(w):
                index[n_num + g, i] = cat[i0 + i, g]
        for i in range(w):
            out[i0 + i] = baseline
        for t in range(tree_start.shape[0] - 1):
            for i in range(w):
                state[i] = everything
            for k in range(tree_start[t], tree_start[t + 1]):
                row = index[split_feature[k]]
                low = split_low[k]
                span = split_span[k]
                keep = split_keep[k]
                for i in range(w):
                    state[i] &= keep if np.uint16(row[i] - low) <= span else everything
            for i in range(w):
                out[i0 + i] += leaf_values[t, trailing_zeros(state[i])]
