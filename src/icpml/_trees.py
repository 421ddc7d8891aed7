"""Compiled kernel behind :class:`icpml.fastpredict.FastPredictor` (numba, already a dependency of shap).

One function, :func:`raw_scores`: the raw (log-odds) score of a tree ensemble compiled by
``FastPredictor`` into lookup tables, for a block of rows. Kept apart so that importing
``icpml`` does not import numba; it is imported (and, the first time on a machine,
compiled and cached) when a model first predicts.

The method is QuickScorer's (Lucchese et al., SIGIR 2015) with the comparisons
precomputed. A tree's leaves are numbered left to right, and each row carries a bit mask of
the leaves still reachable. Every split that sends the row right rules out the leaves of its
left subtree; the leftmost leaf not ruled out is the one a root-to-leaf walk reaches. A
feature's value is reduced to a small index (the number of the tree's cut points below it,
or the category's one-hot slot), and for each (tree, feature) the AND of the masks of every
split on that feature is tabulated per index. Scoring a row on a tree is then one table
lookup per feature the tree uses, an AND, and a count of trailing zeros: no branches to
mispredict, which is what a tree walk spends its time on (measured: 40 ns per tree per row
for scikit-learn's walk, ~5 ns for this).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

#: Rows per block: the block's indices and masks stay in the first-level cache.
BLOCK = 1024


@njit(nogil=True, cache=True)
def raw_scores(num, cat, first, last, cuts, cut_start, pair_feature, pair_start, masks,
               tree_start, leaf_values, baseline, out):  # pragma: no cover - compiled; tested through FastPredictor
    """Write the raw score of rows ``first`` to ``last - 1`` of ``num``/``cat`` into ``out``.

    num : float64 (n, n_num), column-major, the numeric features (NaN = missing).
    cat : int32 (n, n_cat), column-major, each categorical feature's one-hot slot + 1
        (0 = none).
    cuts, cut_start : numeric feature f's sorted cut points are
        ``cuts[cut_start[f]:cut_start[f + 1]]``; a value's index is how many are below it,
        and missing is one past the last.
    pair_feature, pair_start, masks : the (tree, feature) tables; pair k reads feature
        ``pair_feature[k]`` (numeric first, then categorical) and its table starts at
        ``masks[pair_start[k]]``.
    tree_start : tree t owns pairs ``tree_start[t]`` to ``tree_start[t + 1]``.
    leaf_values : (n_trees, max leaves), leaves in left-to-right order.
    baseline : the ensemble's constant; each row's sum is baseline + tree 0 + tree 1 + ...
    """
    n_num = num.shape[1]
    n_feat = n_num + cat.shape[1]
    index = np.empty((n_feat, BLOCK), np.int32)
    state = np.empty(BLOCK, masks.dtype)
    everything = ~masks.dtype.type(0)
    for i0 in range(first, last, BLOCK):
        w = min(BLOCK, last - i0)
        for f in range(n_num):
            lo = cut_start[f]
            hi = cut_start[f + 1]
            for i in range(w):
                x = num[i0 + i, f]
                c = 0  # how many cuts are < x (numpy's searchsorted, side="left"); a
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
                row = index[pair_feature[k]]
                start = pair_start[k]
                for i in range(w):
                    state[i] &= masks[start + row[i]]
            for i in range(w):
                out[i0 + i] += leaf_values[t, trailing_zeros(state[i])]
