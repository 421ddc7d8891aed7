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


# ----------------------------------------------------------------------------- strong true effects
# A genuine strong pre-sale effect (one column alone separating best from worst at AUC >= 0.95)
# must not be taken for a leak; post-outcome columns of the three shapes users list (a health
# score from usage and churn, a status tag set after the outcome, a contact duration that
# follows the outcome) still must be, even when named neutrally.
_NEUTRAL_LEAKS = ("pulse_index", "crm_label", "touch_minutes")


def _strong_effect_table(n: int, seed: int) -> tuple[pd.DataFrame, str, object]:
    """A drawn table whose planted ICP is ONE pre-sale column (a category set, or a one- or
    two-sided numeric band, drawn at random) with a strong effect, plus noise columns, two
    outcomes, churn, a post-sale usage column, and three neutrally named leaks.

    Returns the table, the strong column's name and the config.
    """
    rng = np.random.default_rng([seed, 14])
    region = rng.choice(["N", "S", "E", "W"], n)
    employees = np.round(np.exp(rng.normal(4.0, 1.0, n)))
    noise = rng.normal(0, 1, n).round(3)
    if rng.random() < 0.5:
        strong = "segment"
        vals = np.array(["Alpha", "Beta", "Gamma", "Delta", "Omega"])
        good = rng.choice(vals, size=2, replace=False)  # 40% of accounts: more than the best 25%
        x = rng.choice(vals, n)
        icp = np.isin(x, good)
        col = pd.array(list(x), dtype="string")
    else:
        strong = "seats"
        x = np.round(np.exp(rng.normal(5.0, 1.0, n)))
        lo = np.quantile(x, rng.uniform(0.3, 0.6))
        hi = np.quantile(x, 0.92) if rng.random() < 0.5 else np.inf
        icp = (x >= lo) & (x <= hi)
        col = x
    v = rng.uniform(4.5, 6.0) * icp + rng.normal(0, 1, n)
    arr = np.round(np.exp(10 + 0.4 * v + rng.normal(0, 0.15, n)), -1)
    expansion = np.round(v + rng.normal(0, 0.3, n), 3)
    churned = rng.random(n) < 1 / (1 + np.exp(1.5 + rng.uniform(0.6, 1.2) * v))
    usage = np.clip(0.55 + 0.1 * v + rng.normal(0, 0.12, n), 0, 1).round(3)
    # the three leak shapes, each with its own drawn noise
    pulse = np.clip(np.round(30 + 40 * usage + 25 * (~churned) + rng.normal(0, rng.uniform(3, 7), n)),
                    0, 100)
    q1, q3 = np.quantile(v, [0.25, 0.75])
    tag = np.where(churned, "Churned", np.where(v >= q3, "Expanding", np.where(v <= q1, "At risk", "Active")))
    flip = rng.random(n) < rng.uniform(0.02, 0.08)
    tag = np.where(flip, rng.choice(["Active", "At risk", "Expanding"], n), tag)
    top = v >= np.quantile(v, 0.75)
    minutes = np.round(np.exp(4.5 + 0.7 * top + rng.uniform(0.15, 0.35) * v
                              + rng.normal(0, rng.uniform(0.3, 0.5), n)))
    df = pd.DataFrame({"cid": np.arange(n), strong: col, "region": region, "employees": employees,
                       "noise": noise, "pulse_index": pulse,
                       "crm_label": pd.array(list(tag), dtype="string"), "touch_minutes": minutes,
                       "usage": usage, "arr": arr, "expansion": expansion, "churned": churned})
    cfg = config_from_dict({
        "columns": {"id": "cid",
                    "features": {"firmographic": [strong, "region", "employees", "noise"],
                                 "intent": list(_NEUTRAL_LEAKS)},
                    "post_sale": ["usage"],
                    "outcomes": [{"column": "arr"}, {"column": "expansion"}], "churn": "churned"},
        "criteria": {"stability_resamples": 0}})
    return df, strong, cfg


def _screen_as_discover(df: pd.DataFrame, cfg):
    """``screen_columns`` called as ``discover()`` calls it."""
    from icpml.cohorts import label_cohorts, value_score
    from icpml.data import feature_kinds, validate_accounts
    from icpml.features import screen_columns

    df = validate_accounts(df, cfg)
    score = value_score(df, cfg.columns.outcomes)
    lab = label_cohorts(score)
    ends = lab[lab != "middle"] == "best"
    return screen_columns(df, feature_kinds(df, cfg), ends, churned=df["churned"].astype(bool),
                          outcome_columns=["arr", "expansion", "usage", "churned"],
                          post_sale=["usage"], value=score, seed=cfg.models.seed)


@pytest.mark.parametrize("seed", range(8))
def test_strong_true_effect_kept_and_neutral_leaks_set_aside(seed):
    df, strong, cfg = _strong_effect_table(2000, seed)
    before = df.copy()
    s = _screen_as_discover(df, cfg)
    assert s.signals[strong]["auc_best"] >= 0.95  # the drawn effect is as strong as a leak
    assert strong not in s.excluded, s.excluded[strong]
    assert set(s.excluded) == set(_NEUTRAL_LEAKS), s.excluded
    pd.testing.assert_frame_equal(df, before)


def test_strong_true_effect_becomes_the_icp_with_a_warning():
    """End to end: the strong column stays a feature and names a segment, and the fit
    AUC >= 0.95 warning names it (a warning, not a removal)."""
    df, strong, cfg = _strong_effect_table(2000, 1)
    df = df.drop(columns=list(_NEUTRAL_LEAKS))
    data = cfg.model_dump(mode="json", exclude={"project_root"})
    del data["columns"]["features"]["intent"]
    res = discover(config_from_dict(data), df)
    assert strong not in res.screen.excluded and strong in res.fit_model.columns
    # it carries the segments (ICP or anti-ICP: which side depends on the drawn share)
    assert strong in {c.column for c in res.criteria.icp + res.criteria.anti_icp}
    assert res.fit_model.holdout["roc_auc"] >= 0.95
    (w,) = [w for w in res.warnings if "almost perfectly" in w]
    assert f"{strong} " in w and "before the sale" in w  # warned, not removed
