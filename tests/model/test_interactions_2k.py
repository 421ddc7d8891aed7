"""Pure interactions at ~2,000 customers, beside an anti-ICP: the pair is still found.

At 1.5k-4k customers the three-way split leaves a few hundred selection rows, and a pair
covering a few percent of the accounts was found by the pair search but then failed the
selection's test there; the pair search is now cross-fitted on all non-held-out rows
(``icpml.criteria.propose.crossfit_pairs``). Each seed draws its own scenario
(:func:`draw`): a planted pair ``A and B`` (a category set or a numeric cut or band per
part, parts covering 20-45% of the accounts) whose parts are flat alone (compensated
main effects), an independent bad segment (an anti-ICP on another column, 10-20% of the
accounts), noise columns, and 1,800-2,400 customers. The ICP must name the pair's two
columns and match the planted segment (pair and not anti) on fresh accounts with F1
>= 0.8; on null data of the same shape nothing may be claimed.
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
from icpml.data import validate_accounts

_CATS = {"segment": 5, "stack": 6, "region": 4}
_NUMS = ("revenue_musd", "web_visits", "tenure_years")


@dataclass
class Planted:
    """Planted pair (per column: ``("set", values)`` or ``("band", lo, hi)``), the anti
    column's bad range, the bonus of the pair, category probabilities and size."""

    parts: dict[str, tuple]
    anti: tuple[str, tuple]
    effect: float
    probs: dict[str, np.ndarray]
    n: int

    @staticmethod
    def _mask(df: pd.DataFrame, col: str, spec: tuple) -> np.ndarray:
        if spec[0] == "set":
            return df[col].isin(spec[1]).to_numpy(bool)
        return df[col].between(spec[1], spec[2]).to_numpy(bool)

    def part_masks(self, df: pd.DataFrame) -> list[np.ndarray]:
        return [self._mask(df, c, s) for c, s in self.parts.items()]

    def anti_mask(self, df: pd.DataFrame) -> np.ndarray:
        return self._mask(df, *self.anti)

    def truth(self, df: pd.DataFrame) -> np.ndarray:
        a, b = self.part_masks(df)
        return a & b & ~self.anti_mask(df)


def _rows(rng: np.random.Generator, n: int, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame({"account_id": [f"A{i:06d}" for i in range(n)]})
    for col, k in _CATS.items():
        df[col] = rng.choice([f"{col[:2].upper()}{i}" for i in range(k)], size=n, p=probs[col])
    df["revenue_musd"] = np.round(np.exp(np.log(40) + 1.1 * rng.normal(0, 1, n)), 2)
    df["web_visits"] = rng.integers(0, 1000, n)
    df["tenure_years"] = np.round(rng.gamma(3.0, 3.0, n), 1)
    df["noise_num"] = np.round(rng.normal(50, 15, n), 1)
    df["noise_cat"] = rng.choice(["n1", "n2", "n3", "n4"], size=n)
    return df


def _part(rng: np.random.Generator, pilot: pd.DataFrame, col: str, lo_share: float,
          hi_share: float) -> tuple:
    if col in _CATS:
        names = [f"{col[:2].upper()}{i}" for i in range(_CATS[col])]
        for _ in range(200):  # 1-2 categories covering the share asked
            chosen = tuple(sorted(rng.choice(names, size=int(rng.integers(1, 3)), replace=False)))
            if lo_share <= pilot[col].isin(chosen).mean() <= hi_share:
                return ("set", chosen)
        return ("set", (names[0],))
    share = rng.uniform(lo_share, hi_share)
    start = [0.0, 1 - share, rng.uniform(0.05, 0.95 - share)][int(rng.integers(0, 3))]
    lo, hi = np.quantile(pilot[col], [start, start + share])
    lo = float(pilot[col].min()) if start == 0 else float(np.round(lo, 0))
    hi = float(pilot[col].max()) if start + share >= 1 else float(np.round(hi, 0))
    return ("band", lo, hi)


def _params(seed: int) -> Planted:
    rng = np.random.default_rng(30_000 + seed)
    probs = {col: rng.dirichlet(np.full(k, 5.0)) for col, k in _CATS.items()}
    pilot = _rows(np.random.default_rng(1), 20_000, probs)
    cols = [str(c) for c in rng.permutation([*_CATS, *_NUMS])[:3]]
    parts = {c: _part(rng, pilot, c, 0.2, 0.45) for c in sorted(cols[:2])}
    anti = (cols[2], _part(rng, pilot, cols[2], 0.1, 0.2))
    return Planted(parts, anti, float(rng.uniform(2.6, 3.2)), probs,
                   int(rng.integers(1800, 2401)))


def draw(seed: int, *, signal: bool = True, rows_seed: int | None = None
         ) -> tuple[pd.DataFrame, Config, Planted]:
    """Accounts of ``seed``'s scenario (see the module docstring)."""
    plant = _params(seed)
    rng = np.random.default_rng(seed if rows_seed is None else rows_seed)
    n = plant.n
    df = _rows(rng, n, plant.probs)
    v = rng.normal(0, 1, n)
    if signal:
        v = v - 1.8 * plant.anti_mask(df)
        v = v + _compensated(plant.effect, *plant.part_masks(df), v)
    df["arr"] = np.round(np.exp(np.log(30_000) + 0.45 * v + rng.normal(0, 0.3, n)), -1)
    df["nrr"] = np.round(1.0 + 0.08 * v + rng.normal(0, 0.06, n), 3)
    df["churned"] = rng.random(n) < 1 / (1 + np.exp(1.3 + 0.9 * v))
    cfg = config_from_dict({
        "name": "interaction-2k",
        "columns": {"id": "account_id",
                    "features": {"firmographic": [*_CATS, *_NUMS, "noise_num", "noise_cat"]},
                    "outcomes": [{"column": "arr", "direction": "higher", "weight": 1.0},
                                 {"column": "nrr", "direction": "higher", "weight": 1.0}],
                    "churn": "churned"},
        "criteria": {"stability_resamples": 0},
    })
    return df, cfg, plant


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    d = int(pred.sum() + true.sum())
    return 2 * int((pred & true).sum()) / d if d else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pair_found_at_2k_customers(seed):
    df, cfg, plant = draw(seed)
    best = (label_cohorts(value_score(df, cfg.columns.outcomes), 0.25, 0.25) == BEST).to_numpy()
    for part in plant.part_masks(df):  # a univariate look sees nothing
        assert best[part].mean() / best.mean() == pytest.approx(1.0, abs=0.25)
    cs = discover(cfg, df).criteria
    assert cs.icp, cs.verdict
    pairs = [c for c in cs.icp if c.also]
    assert pairs and sorted(pairs[0].columns) == sorted(plant.parts), \
        [c.describe() for c in cs.icp]
    fresh, _, _ = draw(seed, rows_seed=50_000 + seed)
    pred = cs.icp_mask(validate_accounts(fresh, cfg)).to_numpy(bool)
    assert _f1(pred, plant.truth(fresh)) >= 0.8, [c.describe() for c in cs.icp + cs.anti_icp]


@pytest.mark.parametrize("seed", [0, 1])
def test_null_data_at_2k_claims_nothing(seed):
    df, cfg, _ = draw(seed, signal=False)
    cs = discover(cfg, df).criteria
    assert not cs.icp and not cs.anti_icp, [c.describe() for c in cs.icp + cs.anti_icp]
    assert not cs.verdict["icp_found"]
