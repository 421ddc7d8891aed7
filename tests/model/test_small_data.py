"""Small data (250 customers): a single planted category is claimed, null data is not.

Each seed draws its own table (:func:`_draw`): five categorical columns with random
level counts and shares, two numeric columns, one boolean. The planted ICP is ONE level
of a random categorical column covering 8-16% of the accounts; optionally a planted
exclusion, one level (7-12%) of another column, lowers the value. The fit model's trees
cannot split a category held by ~20 accounts of a 100-row fold, so these are the cases
where SHAP proposes nothing and the plain category contrasts must (issue #14 point 3).
Tolerances: the planted level is the ICP (its column, the level among the values) with
membership F1 >= 0.7 on 5,000 fresh accounts at a planted lift >= 2.5 and at least 15
planted accounts (seed 2 draws only 10: not detectable, not tested); a null table of the
same shape gives no criterion at all, and its verdict says what 250 accounts cannot show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml import discover
from icpml.cohorts import BEST, label_cohorts, value_score
from icpml.config import config_from_dict
from icpml.data import validate_accounts

_COLS = ("language", "region", "crm", "segment", "billing")


def _schema(seed: int) -> dict:
    rng = np.random.default_rng(50_000 + seed)
    cats = {}
    for col in _COLS:
        k = int(rng.integers(4, 9))
        p = rng.dirichlet(np.full(k, 3.0))
        cats[col] = ([f"{col[:3].upper()}{i}" for i in range(k)], p)
    icp_col, anti_col = (str(c) for c in rng.choice(_COLS, size=2, replace=False))
    share = float(rng.uniform(0.08, 0.16))
    names, p = cats[icp_col]
    p = np.r_[share, (1 - share) * p[1:] / p[1:].sum()]
    cats[icp_col] = (names, p)
    a_share = float(rng.uniform(0.07, 0.12))
    names_a, pa = cats[anti_col]
    pa = np.r_[pa[:-1] / pa[:-1].sum() * (1 - a_share), a_share]
    cats[anti_col] = (names_a, pa)
    return {"cats": cats, "icp": (icp_col, names[0]), "anti": (anti_col, names_a[-1]),
            "effect": float(rng.uniform(2.2, 3.0))}


def _draw(seed: int, n: int, *, signal: bool = True, anti: bool = True,
          rows_seed: int | None = None) -> tuple[pd.DataFrame, dict, object]:
    sch = _schema(seed)
    rng = np.random.default_rng(seed if rows_seed is None else rows_seed)
    df = pd.DataFrame({"account_id": [f"S{i:05d}" for i in range(n)]})
    for col, (names, p) in sch["cats"].items():
        df[col] = rng.choice(names, size=n, p=p)
    df["employees"] = np.round(np.exp(np.log(150) + rng.normal(0, 1, n))).astype(int)
    df["growth_pct"] = np.round(rng.normal(10, 8, n), 1)
    df["onprem"] = rng.random(n) < 0.3
    icp = (df[sch["icp"][0]] == sch["icp"][1]).to_numpy()
    bad = (df[sch["anti"][0]] == sch["anti"][1]).to_numpy()
    value = rng.normal(0, 1, n)
    if signal:
        value = value + sch["effect"] * (icp & ~bad) - (2.5 * bad if anti else 0.0)
    df["arr"] = np.round(np.exp(np.log(30_000) + 0.45 * value + rng.normal(0, 0.3, n)), -1)
    df["nrr"] = np.round(1.0 + 0.08 * value + rng.normal(0, 0.06, n), 3)
    df["churned"] = rng.random(n) < 1 / (1 + np.exp(1.3 + 0.9 * value))
    cfg = config_from_dict({
        "name": "small",
        "columns": {"id": "account_id",
                    "features": {"firmographic": [*_COLS, "employees", "growth_pct", "onprem"]},
                    "outcomes": [{"column": "arr", "direction": "higher", "weight": 1.0},
                                 {"column": "nrr", "direction": "higher", "weight": 1.0}],
                    "churn": "churned"},
        "criteria": {"stability_resamples": 0},
    })
    return df, sch, cfg


def _truth(df: pd.DataFrame, sch: dict, anti: bool = True) -> np.ndarray:
    m = (df[sch["icp"][0]] == sch["icp"][1]).to_numpy(bool, copy=True)
    if anti:
        m &= (df[sch["anti"][0]] != sch["anti"][1]).to_numpy(bool)
    return m


def _lift(df: pd.DataFrame, sch: dict, cfg) -> float:
    coh = label_cohorts(value_score(df, cfg.columns.outcomes), 0.25, 0.25)
    b = (coh == BEST).to_numpy()
    t = _truth(df, sch)
    return float(b[t].mean() / b.mean())


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    tp = int((pred & true).sum())
    d = int(pred.sum() + true.sum())
    return 2 * tp / d if d else 0.0


def _found(seed: int):
    df, sch, cfg = _draw(seed, 250)
    assert _lift(df, sch, cfg) >= 2.5
    assert _truth(df, sch).sum() >= 15  # a segment of 10 accounts is not detectable
    cs = discover(cfg, df).criteria
    assert cs.meta["evidence"]["method"] == "crossfit"
    assert cs.verdict["icp_found"], cs.verdict["message"]
    col, level = sch["icp"]
    hit = [c for c in cs.icp if c.column == col]
    assert hit and level in hit[0].values, [c.describe() for c in cs.icp]
    fresh = validate_accounts(_draw(seed, 5000, rows_seed=seed + 999)[0], cfg)
    assert _f1(cs.icp_mask(fresh).to_numpy(bool), _truth(fresh, sch)) >= 0.7
    return cs, sch


@pytest.mark.parametrize("seed", [0])
def test_small_single_category_icp_is_found(seed):
    cs, sch = _found(seed)
    # this draw's planted exclusion (8% of the accounts, 2.5 SD lower value) is detectable:
    # it is proposed from the category contrasts and confirmed out of fold
    assert [c.describe() for c in cs.anti_icp] == [f"{sch['anti'][0]} = {sch['anti'][1]}"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 3, 4])
def test_small_single_category_icp_other_seeds(seed):
    _found(seed)


@pytest.mark.parametrize("seed", [0])
def test_small_null_table_claims_nothing(seed):
    df, _, cfg = _draw(seed, 250, signal=False)
    cs = discover(cfg, df).criteria
    assert not cs.verdict["icp_found"]
    assert not cs.icp and not cs.anti_icp, [c.describe() for c in cs.icp + cs.anti_icp]
    # the verdict says what this size cannot conclude, for the ICP and for exclusions
    assert "could be told apart from chance" in cs.verdict["message"]
    assert "No exclusion (anti-ICP) held up out of fold: with 250 accounts" in cs.verdict["message"]
    assert 1.5 < cs.verdict["anti_detectable_worst_lift"] < 2.5
