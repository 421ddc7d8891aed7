"""The leakage guard and numeric codes end to end: the shared cases and drawn tables.

* A contact-outcome column listed as a feature (Bank Marketing's ``duration``) never
  becomes a criterion, and a warning names it.
* On drawn tables with a planted pre-sale ICP and post-outcome columns listed as features
  (a health score from usage and churn, a call duration that follows the outcome), the
  leaks are set aside and the planted ICP is still found.
* A numeric code (Channel 1/2) yields the same ICP as when it is declared categorical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _shared import case_dir as _case
from icpml import discover
from icpml.config import config_from_dict, load_config

_ROOT = Path(__file__).resolve().parents[2]



def _no_stability(cfg):
    return cfg.model_copy(update={"criteria": cfg.criteria.model_copy(
        update={"stability_resamples": 0})})


def _used(cs) -> set[str]:
    return {col for c in cs.icp + cs.anti_icp + cs.unconfirmed for col in c.columns}


def test_case_call_duration_is_set_aside():
    folder = _case("call-duration-becomes-icp")
    cfg = _no_stability(load_config(folder / "naive.yaml"))
    res = discover(cfg, pd.read_csv(folder / "bank_calls_sample.csv"))
    assert "duration" in res.screen.excluded
    assert "duration" not in _used(res.criteria)
    assert "duration" not in res.fit_model.columns
    (w,) = [w for w in res.criteria.warnings if w.startswith("'duration'")]
    assert "set aside" in w and "columns.trusted" in w
    assert res.criteria.meta["screened_out"] == {"duration": res.screen.excluded["duration"]}
    assert res.criteria.meta["leakage_signals"]["duration"]["name"] is True
    again = discover(cfg, pd.read_csv(folder / "bank_calls_sample.csv"))
    assert again.criteria.to_json() == res.criteria.to_json()  # same data, config, seed: same bytes


@pytest.mark.parametrize("config", ["numeric.yaml", "categorical.yaml"])
def test_case_numeric_code_finds_channel(config):
    folder = _case("numeric-code-no-icp")
    cfg = load_config(folder / config)
    data = pd.read_csv(folder / "clients.csv")
    res = discover(cfg, data)
    assert res.criteria.verdict["icp_found"]
    (channel,) = [c for c in res.criteria.icp if c.column == "Channel"]
    assert (channel.mask(data) == (data["Channel"] == 2)).all()


def _planted_with_leaks(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, dict]:
    """A drawn table: a planted ICP of a random category set and a random size band, noise
    columns, outcomes, a post-sale usage column, and two leaks listed as features.

    Returns the table, the planted ICP membership and the config.
    """
    rng = np.random.default_rng(seed)
    cats = np.array(["Agri", "Bank", "Chem", "Defense", "Energy", "Food"])
    good = rng.choice(cats, size=2, replace=False)
    sector = rng.choice(cats, n)
    size = np.round(np.exp(rng.normal(5.0, 1.0, n)))
    lo = float(np.round(np.quantile(size, rng.uniform(0.15, 0.35)), -1))
    hi = float(np.round(np.quantile(size, rng.uniform(0.7, 0.9)), -1))
    region = rng.choice(["N", "S", "E", "W"], n)
    noise = rng.normal(0, 1, n).round(3)
    icp = np.isin(sector, good) & (size >= lo) & (size <= hi)
    value = 1.4 * icp + 0.3 * np.isin(sector, good) + 0.3 * ((size >= lo) & (size <= hi)) \
        + rng.normal(0, 0.7, n)
    revenue = np.round(np.exp(10 + 0.5 * value + rng.normal(0, 0.3, n)), -1)
    churned = rng.random(n) < 1 / (1 + np.exp(1.0 + 0.9 * value))
    usage = np.clip(0.5 + 0.1 * value + rng.normal(0, 0.1, n), 0, 1).round(3)
    health = np.round(100 * np.clip(0.5 + 0.8 * (usage - 0.5) - 0.3 * churned
                                    + rng.normal(0, 0.12, n), 0, 1), 1)
    duration = np.round(np.exp(rng.normal(5 + 1.3 * pd.Series(revenue).rank(pct=True), 0.6)))
    df = pd.DataFrame({"cid": np.arange(n), "sector": sector, "size": size, "region": region,
                       "noise": noise, "customer_health": health, "call_duration": duration,
                       "usage": usage, "revenue": revenue, "churned": churned})
    cfg = config_from_dict({
        "columns": {"id": "cid", "features": {"firmographic": ["sector", "size", "region", "noise"],
                                              "intent": ["customer_health", "call_duration"]},
                    "post_sale": ["usage"], "outcomes": [{"column": "revenue"}], "churn": "churned"},
        "criteria": {"stability_resamples": 0}})
    return df, pd.Series(icp, index=df.index), {"good": set(good), "band": (lo, hi), "cfg": cfg}


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_icp_found_and_leaks_set_aside(seed):
    df, truth, planted = _planted_with_leaks(3000, seed)
    res = discover(planted["cfg"], df)
    assert set(res.screen.excluded) == {"customer_health", "call_duration"}
    assert not _used(res.criteria) & {"customer_health", "call_duration"}
    for c in ("customer_health", "call_duration"):
        assert any(w.startswith(f"'{c}'") for w in res.warnings)
    assert res.criteria.verdict["icp_found"]
    sector = [c for c in res.criteria.icp if c.column == "sector"]
    assert sector and set(sector[0].values) == planted["good"]
    pred = res.criteria.icp_mask(df)
    f1 = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert f1 >= 0.7
