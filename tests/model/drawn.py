"""Drawn scenarios for the criteria tests: each seed draws its own planted ICP.

:func:`draw` returns the accounts, an icpml config and the planted truth per row. The
planted ICP is a conjunction of category sets over random columns (random sizes) and a
wide revenue band on a lognormal revenue (edges at random quantiles). Optionally a
*confounder*, ``employees``, correlated 0.5-0.8 with revenue (on the log scale) but
without any effect of its own, and two noise columns. Outcomes (ARR, NRR, NPS, churn)
follow one latent value: a bonus for the whole ICP, a small one for each condition,
and noise. ``rows_seed`` draws fresh accounts from the same planted truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from icpml.config import Config, config_from_dict


@dataclass
class Drawn:
    accounts: pd.DataFrame
    config: Config
    sets: dict[str, set[str]]
    band: tuple[float, float]
    rho: float

    def truth(self, df: pd.DataFrame) -> pd.Series:
        m = df["revenue_musd"].between(*self.band)
        for col, vals in self.sets.items():
            m &= df[col].isin(vals)
        return m.astype(bool)


def _params(seed: int, n_sets: int) -> tuple[dict, tuple[float, float], float, dict]:
    rng = np.random.default_rng(10_000 + seed)
    cats = {}
    sets = {}
    for j in range(n_sets):
        col = ["segment", "stack", "channel"][j]
        k = int(rng.integers(4, 8))
        names = [f"{col[:2].upper()}{i}" for i in range(k)]
        p = rng.dirichlet(np.full(k, 4.0))
        size = int(rng.integers(2, max(3, k // 2 + 1)))
        chosen = set(rng.choice(names, size=size, replace=False, p=p).tolist())
        cats[col] = (names, p)
        sets[col] = chosen
    z_lo, z_hi = rng.uniform(-1.1, -0.6), rng.uniform(0.9, 1.5)
    band = (float(np.round(np.exp(np.log(40) + 1.1 * z_lo), 1)),
            float(np.round(np.exp(np.log(40) + 1.1 * z_hi), -1)))
    rho = float(rng.uniform(0.5, 0.8))
    return cats, band, rho, sets


def draw(seed: int, n: int, *, n_sets: int = 2, effect: float = 2.0, confounder: bool = True,
         signal: bool = True, rows_seed: int | None = None) -> Drawn:
    """Accounts with a planted ICP drawn from ``seed`` (see the module docstring)."""
    cats, band, rho, sets = _params(seed, n_sets)
    rng = np.random.default_rng(seed if rows_seed is None else rows_seed)
    df = pd.DataFrame({"account_id": [f"A{i:06d}" for i in range(n)]})
    for col, (names, p) in cats.items():
        df[col] = rng.choice(names, size=n, p=p)
    z = rng.normal(0, 1, n)
    df["revenue_musd"] = np.round(np.exp(np.log(40) + 1.1 * z), 2)
    if confounder:
        zc = rho * z + np.sqrt(1 - rho ** 2) * rng.normal(0, 1, n)
        df["employees"] = np.round(np.exp(np.log(200) + 1.0 * zc)).astype(int)
    df["noise_num"] = np.round(rng.normal(50, 15, n), 1)
    df["noise_cat"] = rng.choice(["n1", "n2", "n3", "n4"], size=n)
    conds = [df["revenue_musd"].between(*band).to_numpy()]
    conds += [df[c].isin(v).to_numpy() for c, v in sets.items()]
    icp = np.logical_and.reduce(conds)
    if signal:
        value = effect * icp + 0.25 * np.sum(conds, axis=0) + rng.normal(0, 1, n)
    else:
        value = rng.normal(0, 1, n)
    df["arr"] = np.round(np.exp(np.log(30_000) + 0.45 * value + rng.normal(0, 0.3, n)), -1)
    df["nrr"] = np.round(1.0 + 0.08 * value + rng.normal(0, 0.06, n), 3)
    df["churned"] = rng.random(n) < 1 / (1 + np.exp(1.3 + 0.9 * value))
    features = [*cats, "revenue_musd", *(["employees"] if confounder else []), "noise_num", "noise_cat"]
    cfg = config_from_dict({
        "name": "drawn",
        "columns": {"id": "account_id", "features": {"firmographic": features},
                    "outcomes": [{"column": "arr", "direction": "higher", "weight": 1.0},
                                 {"column": "nrr", "direction": "higher", "weight": 1.0}],
                    "churn": "churned"},
        "criteria": {"stability_resamples": 0},
    })
    return Drawn(df, cfg, sets, band, rho)


def f1(pred: pd.Series, true: pd.Series) -> float:
    """Membership F1 of ``pred`` against ``true`` (0 when both are empty)."""
    tp = int((pred & true).sum())
    d = int(pred.sum() + true.sum())
    return 2 * tp / d if d else 0.0


def planted_lift(d: Drawn) -> float:
    """Best-cohort lift (top 25% of the value score) of the planted ICP on ``d``'s accounts."""
    from icpml.cohorts import BEST, label_cohorts, value_score

    coh = label_cohorts(value_score(d.accounts, d.config.columns.outcomes), 0.25, 0.25)
    t = d.truth(d.accounts).to_numpy()
    b = (coh == BEST).to_numpy()
    return float(b[t].mean() / b.mean())
