"""Cross-fitted pair search (:func:`icpml.criteria.crossfit_pairs`), without a model.

A compensated interaction ``A and B`` (parts flat alone) is planted in 1,100 rows; the
SHAP ranking is faked (the pair's columns and noise columns all rank high), so only the
search and its out-of-fold judgement are exercised. The pair must be found with an
out-of-fold p-value below 0.05; with labels shuffled (no signal) no pair may pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml.config import CriteriaConfig
from icpml.criteria import crossfit_pairs
from icpml.explain import GroupedShap


def _scenario(seed: int, n: int = 1100) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "segment": pd.array(rng.choice(["s0", "s1", "s2", "s3"], n), dtype="string"),
        "revenue": np.round(rng.lognormal(3, 1, n), 2),
        "noise_a": rng.normal(0, 1, n),
        "noise_c": pd.array(rng.choice(["x", "y", "z"], n), dtype="string"),
    })
    a = (df["segment"] == "s1").to_numpy()
    b = (df["revenue"] <= np.quantile(df["revenue"], 0.4)).to_numpy()
    # top quartile: 70% inside A and B; A alone and B alone at about the base rate
    p = np.full(n, 0.25)
    p[a & b] = 0.7
    pa, pb = a.mean(), b.mean()
    p[a & ~b] = (0.25 * pa - 0.7 * (a & b).mean()) / max((a & ~b).mean(), 1e-9)
    p[~a & b] = (0.25 * pb - 0.7 * (a & b).mean()) / max((~a & b).mean(), 1e-9)
    p = np.clip(p, 0.02, 0.98)
    y = rng.random(n) < p
    return df, y, a & b


def _expl(df: pd.DataFrame) -> GroupedShap:
    rng = np.random.default_rng(0)
    vals = pd.DataFrame({c: rng.normal(0, 1.0 - 0.1 * i, len(df)) for i, c in enumerate(df.columns)},
                        index=df.index)
    return GroupedShap(values=vals, base_value=0.0, raw_output=vals.sum(axis=1).to_numpy(),
                       data=df, max_additivity_error=0.0)


_KINDS = {"segment": "categorical", "revenue": "numeric", "noise_a": "numeric",
          "noise_c": "categorical"}


@pytest.mark.parametrize("seed", [0])
def test_planted_pair_passes_out_of_fold(seed):
    df, y, truth = _scenario(seed)
    clear = np.ones(len(df), dtype=bool)
    pairs, p_oof, searched = crossfit_pairs(_expl(df), _KINDS, list(_KINDS), df, y, clear,
                                            CriteriaConfig())
    assert searched == 6
    assert pairs and sorted(pairs[0].columns) == ["revenue", "segment"]
    assert p_oof[0] < 0.05
    m = pairs[0].mask(df).to_numpy(bool)
    assert 2 * (m & truth).sum() / (m.sum() + truth.sum()) >= 0.8
    assert len(p_oof) == len(pairs) and all(0 <= p <= 1 for p in p_oof)
    assert df.equals(_scenario(seed)[0])  # input not modified


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffled_labels_pass_nothing(seed):
    df, y, _ = _scenario(seed)
    y = np.random.default_rng(100 + seed).permutation(y)
    _, p_oof, _ = crossfit_pairs(_expl(df), _KINDS, list(_KINDS), df, y,
                                 np.ones(len(df), dtype=bool), CriteriaConfig())
    assert all(p >= 0.05 for p in p_oof)
