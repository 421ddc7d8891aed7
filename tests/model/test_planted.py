"""Behaviour on planted signals: the known ICP is recovered, nothing is invented on noise.

Tolerances: employees band bounds within 15% of the planted 150 and 600; the small-company
exclusion's threshold within 20% of 50; category sets exact. On data whose outcomes ignore
the features, no ICP criterion may be reported.
"""

from __future__ import annotations

import pytest

from icpml import discover, make_accounts
from icpml.synthetic import planted_anti_match, planted_icp_match


def _by_column(criteria):
    return {c.column: c for c in criteria}


def assert_planted(res):
    icp = _by_column(res.criteria.icp)
    assert icp["industry"].op == "in" and set(icp["industry"].values) == {"SaaS", "FinTech"}
    assert icp["crm"].values == ("Salesforce",)
    band = icp["employees"]
    assert band.op == "between"
    assert band.low == pytest.approx(150, rel=0.15) and band.high == pytest.approx(600, rel=0.15)
    anti = res.criteria.anti_icp
    assert any(c.column == "requires_onprem" and c.values == ("True",) for c in anti)
    small = [c for c in anti if c.column == "employees" and c.op == "<"]
    assert small and small[0].high == pytest.approx(50, rel=0.2)
    assert res.criteria.verdict["icp_found"]


def test_planted_icp_recovered(discovery):
    assert_planted(discovery)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.xfail(
    strict=True, reason="known (#14): the upper edge is shown as 700, the roundest number among "
    "cuts within chi-square 2 of the best, which all lie above the planted 600 on this seed")), 3])
def test_planted_icp_recovered_other_seeds(demo_cfg, seed):
    assert_planted(discover(demo_cfg, make_accounts(3000, seed=seed)))


def test_rules_match_planted_membership_on_fresh_accounts(discovery, demo_cfg):
    from icpml.data import validate_accounts

    fresh = validate_accounts(make_accounts(4000, seed=99), demo_cfg)
    pred, true = discovery.criteria.icp_mask(fresh), planted_icp_match(fresh) & ~planted_anti_match(fresh)
    tp = (pred & true).sum()
    f1 = 2 * tp / (pred.sum() + true.sum())
    assert f1 > 0.8
    anti_pred, anti_true = discovery.criteria.anti_mask(fresh), planted_anti_match(fresh)
    assert 2 * (anti_pred & anti_true).sum() / (anti_pred.sum() + anti_true.sum()) > 0.9


def test_tiers_order_outcomes(discovery):
    t = discovery.tiers.set_index("tier")
    assert t.loc["Tier 1", "best_rate"] > t.loc["Tier 2", "best_rate"] > t.loc["Tier 3", "best_rate"]
    assert t.loc["Excluded", "churn_rate"] > t.loc["Tier 1", "churn_rate"]


def test_no_signal_no_criteria(nosignal_discovery):
    cs = nosignal_discovery.criteria
    assert not cs.icp
    assert cs.verdict["icp_found"] is False
    assert "No reliable ICP" in cs.verdict["message"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 12))
def test_no_signal_many_seeds(demo_cfg, seed):
    res = discover(demo_cfg, make_accounts(2000, seed=seed, signal=False))
    assert not res.criteria.icp and not res.criteria.verdict["icp_found"]


def test_outcomes_ids_and_post_sale_never_become_criteria(discovery, demo_cfg):
    banned = {demo_cfg.columns.id, demo_cfg.columns.name, *demo_cfg.columns.post_sale,
              *(m.column for m in demo_cfg.columns.outcomes), demo_cfg.columns.churn, "domain"}
    used = {c.column for c in discovery.criteria.icp + discovery.criteria.anti_icp
            + discovery.criteria.unconfirmed}
    assert used and not used & banned


def test_same_seed_same_bytes(demo_cfg, accounts, discovery):
    again = discover(demo_cfg, accounts)
    assert again.criteria.to_json() == discovery.criteria.to_json()
    assert again.scored.equals(discovery.scored)


def test_small_data_says_what_cannot_be_concluded(demo_cfg):
    res = discover(demo_cfg, make_accounts(120, seed=4))
    ev = res.criteria.icp_evidence
    if res.criteria.verdict["icp_found"]:
        lo, hi = ev["lift_ci"]
        assert lo > 1  # a claim on small data must still clear its interval
    else:
        assert "No reliable ICP" in res.criteria.verdict["message"]


def test_interaction_found_as_a_conjunction(demo_cfg):
    """Industry and size pay off only together, on-prem hurts only small companies."""
    from icpml.synthetic import make_interaction_accounts

    cfg = demo_cfg.model_copy(update={"criteria": demo_cfg.criteria.model_copy(
        update={"stability_resamples": 0})})
    res = discover(cfg, make_interaction_accounts(3000, seed=0))
    icp = _by_column(res.criteria.icp)
    assert set(icp) == {"industry", "employees", "crm"}
    assert set(icp["industry"].values) == {"SaaS", "FinTech"}
    assert icp["employees"].low == pytest.approx(150, rel=0.15)
    assert icp["employees"].high == pytest.approx(600, rel=0.15)  # not widened by the order
    (pair,) = [c for c in res.criteria.anti_icp if c.also]
    assert set(pair.columns) == {"requires_onprem", "employees"}
    (size,) = [p for p in pair.parts if p.column == "employees"]
    assert size.op == "<" and size.high == pytest.approx(200, rel=0.1)  # refined within on-prem
    # on-prem alone would drop the large on-prem accounts, which are fine here
    assert not any(c.column == "requires_onprem" and not c.also for c in res.criteria.anti_icp)
    assert pair.evidence["best_wrongly_excluded"] <= 0.02


def test_no_demo_column_is_set_aside_as_a_leak(discovery, demo_cfg):
    """industry, employees, crm and the rest are strong pre-sale signals, not outcomes."""
    assert discovery.screen.excluded == {}
    assert set(discovery.fit_model.columns) == set(demo_cfg.columns.feature_columns)


def test_planted_criteria_reappear_in_resamples(discovery):
    stab = discovery.criteria.meta["stability"]
    # every criterion reappeared in the first 5 of at most 8 refits: with min_stability 0.6
    # (5 of 8) no further refit could change a call, so the refits stop there
    assert stab["max_resamples"] == 8 and 5 <= stab["n_resamples"] <= 8
    assert f"share of {stab['n_resamples']} refits" in stab["measures"]
    for c in discovery.criteria.icp:
        assert stab["per_criterion"][c.describe()] >= 0.8, stab
    assert stab["icp_set_share"] >= 0.8
    assert discovery.criteria.verdict["tentative"] is False
    assert discovery.criteria.verdict["message"].startswith("ICP found")


def test_near_perfect_fit_names_its_columns(discovery):
    auc = discovery.fit_model.holdout["roc_auc"]
    warned = [w for w in discovery.warnings if w.startswith("the fit model separates")]
    assert bool(warned) == (auc >= 0.95)
    if warned:
        assert "employees" in warned[0] or "requires_onprem" in warned[0]
