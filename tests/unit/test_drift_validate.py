"""Drift (PSI, criteria drift) and validation of hand-written / registered ICPs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml.config import demo_config
from icpml.criteria import CriteriaSet, Criterion
from icpml.data import feature_kinds, validate_accounts
from icpml.drift import criteria_drift, data_profile, psi_table
from icpml.errors import ConfigError
from icpml.hypothesis import evaluate_criteria, load_hypothesis, wilson_interval
from icpml.synthetic import make_accounts


@pytest.fixture(scope="module")
def table():
    cfg = demo_config()
    return cfg, validate_accounts(make_accounts(2000, seed=4), cfg)


def test_psi_is_small_for_same_distribution_and_large_for_a_shift(table):
    cfg, df = table
    kinds = feature_kinds(df, cfg)
    prof = data_profile(df.iloc[:1000], kinds)
    same = psi_table(prof, df.iloc[1000:]).set_index("column")
    assert (same["psi"] < 0.1).all()
    shifted = df.iloc[1000:].copy()
    shifted["employees"] = shifted["employees"] * 5
    shifted["industry"] = "Retail"
    out = psi_table(prof, shifted).set_index("column")
    assert out.loc["employees", "status"] == "major shift"
    assert out.loc["industry", "psi"] > 0.25
    assert out.loc["region", "psi"] < 0.1


def test_psi_reports_missing_columns(table):
    cfg, df = table
    prof = data_profile(df, feature_kinds(df, cfg))
    out = psi_table(prof, df.drop(columns=["crm"])).set_index("column")
    assert out.loc["crm", "status"] == "missing"


def test_criteria_drift_flags_a_criterion_that_stopped_holding(table):
    cfg, df = table
    from icpml.cohorts import label_cohorts, value_score

    best = label_cohorts(value_score(df, cfg.columns.outcomes)) == "best"
    cs = CriteriaSet(icp=[Criterion("icp", "industry", "in", values=("FinTech", "SaaS"),
                                    evidence={"coverage": 0.35, "lift": 1.7})])
    out = criteria_drift(cs, df, best, n_bootstrap=200)
    assert bool(out.loc[0, "holds"])
    noise = pd.Series(np.random.default_rng(0).random(len(df)) < 0.25, index=df.index)
    assert not bool(criteria_drift(cs, df, noise, n_bootstrap=200).loc[0, "holds"])


def test_hypothesis_icp_evaluated_with_evidence(table, tmp_path):
    cfg, df = table
    p = tmp_path / "mine.yaml"
    p.write_text("icp:\n  - {column: industry, op: in, values: [SaaS, FinTech]}\n"
                 "anti_icp:\n  - {column: requires_onprem, op: '==', values: [true]}\n")
    cs = evaluate_criteria(load_hypothesis(p, cfg), df, cfg)
    assert cs.icp[0].evidence["lift"] > 1.3
    assert cs.anti_icp[0].evidence["lift"] < 0.5
    assert cs.icp_evidence["lift_ci"][0] > 1 and cs.verdict["icp_found"]
    assert "q_value" in cs.icp[0].evidence


def test_hypothesis_interaction_exclusion(table, tmp_path):
    cfg, df = table
    p = tmp_path / "mine.yaml"
    p.write_text("anti_icp:\n  - column: requires_onprem\n    op: '=='\n    values: [true]\n"
                 "    also: [{column: employees, op: '<', high: 200}]\n")
    (pair,) = load_hypothesis(p, cfg).anti_icp
    assert pair.describe() == "requires_onprem = True and employees < 200"
    expected = df["requires_onprem"].astype(bool) & (df["employees"] < 200)
    assert (pair.mask(df) == expected).all()
    bad = tmp_path / "bad.yaml"
    bad.write_text("anti_icp:\n  - column: requires_onprem\n    op: '=='\n    values: [true]\n"
                   "    also: [{column: arr, op: '<', high: 5}]\n")
    with pytest.raises(ConfigError, match="'arr' is not a targetable feature"):
        load_hypothesis(bad, cfg)


@pytest.mark.parametrize(("text", "needle"), [
    ("icp:\n  - {column: arr, op: '>', low: 5}\n", "not a targetable feature"),
    ("icp:\n  - {column: industry, op: like, values: [x]}\n", "icp.0.op"),
    ("icp:\n  - {column: employees, op: between, low: 5}\n", "needs low and high"),
    ("icpp: []\n", "icpp"),
])
def test_hypothesis_errors_name_the_problem(table, tmp_path, text, needle):
    cfg, _ = table
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_hypothesis(p, cfg)


def test_wilson_interval():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))
