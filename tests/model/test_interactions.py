"""Pure interactions: an ICP ``A and B`` whose parts are flat on their own is found.

Each seed draws its own planted pair (:func:`_params`): two of four columns (category
sets of 1-2 categories, one-sided numeric cuts and numeric bands, each part covering
20-45% of the accounts), a bonus ``b`` for accounts meeting both, and negative main
effects ``-b * share(other part)`` for each part, so that A alone and B alone leave the
average value unchanged (the main effects cancel). The test checks that the marginal
lifts are indeed near 1 (a univariate look sees nothing), then that icpml's ICP matches
the planted pair on fresh accounts with F1 >= 0.8, and that the pair's exports (SQL,
pandas, JSON) select exactly the accounts its mask marks. On null data (outcomes
ignore the features) nothing may be claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from _shared import compensated_interaction as _compensated
from icpml import discover
from icpml.cohorts import BEST, label_cohorts, value_score
from icpml.config import Config, config_from_dict
from icpml.criteria import CriteriaSet

_CATS = {"segment": 5, "stack": 6}


@dataclass
class Planted:
    """The planted pair: per column, a category set or an inclusive numeric band."""

    parts: dict[str, tuple]
    effect: float
    probs: dict[str, np.ndarray]

    def part_masks(self, df: pd.DataFrame) -> list[np.ndarray]:
        out = []
        for col, spec in self.parts.items():
            if spec[0] == "set":
                out.append(df[col].isin(spec[1]).to_numpy(bool))
            else:
                out.append(df[col].between(spec[1], spec[2]).to_numpy(bool))
        return out

    def truth(self, df: pd.DataFrame) -> np.ndarray:
        a, b = self.part_masks(df)
        return a & b


def _rows(rng: np.random.Generator, n: int, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame({"account_id": [f"A{i:06d}" for i in range(n)]})
    for col, k in _CATS.items():
        df[col] = rng.choice([f"{col[:2].upper()}{i}" for i in range(k)], size=n, p=probs[col])
    df["revenue_musd"] = np.round(np.exp(np.log(40) + 1.1 * rng.normal(0, 1, n)), 2)
    df["web_visits"] = rng.integers(0, 1000, n)
    df["noise_num"] = np.round(rng.normal(50, 15, n), 1)
    df["noise_cat"] = rng.choice(["n1", "n2", "n3", "n4"], size=n)
    return df


def _params(seed: int) -> Planted:
    """The planted pair of ``seed``: shapes vary (set x set, set x band, band x cut...)."""
    rng = np.random.default_rng(20_000 + seed)
    probs = {col: rng.dirichlet(np.full(k, 5.0)) for col, k in _CATS.items()}
    pilot = _rows(np.random.default_rng(1), 20_000, probs)
    cols = list(rng.permutation(["segment", "stack", "revenue_musd", "web_visits"])[:2])
    parts: dict[str, tuple] = {}
    for col in sorted(cols):
        if col in _CATS:
            while True:  # 1-2 categories covering 20-45% of the accounts
                names = [f"{col[:2].upper()}{i}" for i in range(_CATS[col])]
                chosen = tuple(sorted(rng.choice(names, size=int(rng.integers(1, 3)), replace=False)))
                if 0.2 <= pilot[col].isin(chosen).mean() <= 0.45:
                    break
        else:
            share = rng.uniform(0.25, 0.45)
            start = [0.0, 1 - share, rng.uniform(0.05, 0.95 - share)][int(rng.integers(0, 3))]
            lo, hi = np.quantile(pilot[col], [start, start + share])
            lo = float(pilot[col].min()) if start == 0 else float(np.round(lo, 0))
            hi = float(pilot[col].max()) if start + share >= 1 else float(np.round(hi, 0))
            chosen = ("band", lo, hi)
        parts[col] = ("set", chosen) if col in _CATS else chosen
    return Planted(parts, float(rng.uniform(2.8, 3.5)), probs)


def draw(seed: int, n: int, *, signal: bool = True, rows_seed: int | None = None
         ) -> tuple[pd.DataFrame, Config, Planted]:
    """Accounts with the planted pair of ``seed`` (see the module docstring)."""
    plant = _params(seed)
    rng = np.random.default_rng(seed if rows_seed is None else rows_seed)
    df = _rows(rng, n, plant.probs)
    a, b = plant.part_masks(df)
    v = rng.normal(0, 1, n)
    if signal:
        v = v + _compensated(plant.effect, a, b, v)
    df["arr"] = np.round(np.exp(np.log(30_000) + 0.45 * v + rng.normal(0, 0.3, n)), -1)
    df["nrr"] = np.round(1.0 + 0.08 * v + rng.normal(0, 0.06, n), 3)
    df["churned"] = rng.random(n) < 1 / (1 + np.exp(1.3 + 0.9 * v))
    cfg = config_from_dict({
        "name": "interaction",
        "columns": {"id": "account_id",
                    "features": {"firmographic": ["segment", "stack", "revenue_musd", "web_visits",
                                                  "noise_num", "noise_cat"]},
                    "outcomes": [{"column": "arr", "direction": "higher", "weight": 1.0},
                                 {"column": "nrr", "direction": "higher", "weight": 1.0}],
                    "churn": "churned"},
        "criteria": {"stability_resamples": 0},
    })
    return df, cfg, plant


def _best(df: pd.DataFrame, cfg: Config) -> np.ndarray:
    return (label_cohorts(value_score(df, cfg.columns.outcomes), 0.25, 0.25) == BEST).to_numpy()


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    d = int(pred.sum() + true.sum())
    return 2 * int((pred & true).sum()) / d if d else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_planted_interaction_is_found(seed):
    df, cfg, plant = draw(seed, 4000)
    best = _best(df, cfg)
    for part in plant.part_masks(df):  # the parts are flat alone: a pure interaction
        assert best[part].mean() / best.mean() == pytest.approx(1.0, abs=0.2)
    assert best[plant.truth(df)].mean() / best.mean() > 1.8
    res = discover(cfg, df)
    cs = res.criteria
    assert cs.icp, cs.verdict
    fresh, _, _ = draw(seed, 4000, rows_seed=10_000 + seed)
    from icpml.data import validate_accounts

    fresh_c = validate_accounts(fresh, cfg)
    pred = cs.icp_mask(fresh_c).to_numpy(bool)
    assert _f1(pred, plant.truth(fresh)) >= 0.8, [c.describe() for c in cs.icp]
    pairs = [c for c in cs.icp if c.also]
    assert pairs and sorted(pairs[0].columns) == sorted(plant.parts)
    # one operator table: the pair's exports select exactly the accounts its mask marks
    pair = pairs[0]
    want = pair.mask(fresh_c).to_numpy(bool)
    assert np.array_equal(fresh.eval(pair.to_pandas(cs.schema), engine="python").to_numpy(bool), want)
    again = CriteriaSet.from_dict(cs.to_dict())
    assert np.array_equal(again.icp_mask(fresh_c).to_numpy(bool), pred)
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("t", fresh.assign(_row_=range(len(fresh))))
    rows = [r[0] for r in con.execute(
        f"SELECT _row_ FROM t WHERE {pair.to_sql(cs.schema)} ORDER BY _row_").fetchall()]
    assert rows == np.flatnonzero(want).tolist()
    assert " and " in pair.describe()


@pytest.mark.parametrize("seed", [0, 1])
def test_null_data_claims_nothing(seed):
    df, cfg, _ = draw(seed, 4000, signal=False)
    cs = discover(cfg, df).criteria
    assert not cs.icp and not cs.anti_icp, [c.describe() for c in cs.icp + cs.anti_icp]
    assert not cs.verdict["icp_found"]
