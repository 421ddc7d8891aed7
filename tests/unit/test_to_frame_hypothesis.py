"""CriteriaSet.to_frame (the review table) and load_hypothesis from an in-memory mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml.criteria import CriteriaSet, Criterion
from icpml.errors import ConfigError
from icpml.hypothesis import load_hypothesis


def _ev(**kw) -> dict:
    base = {"n": 1000, "n_covered": 300, "coverage": 0.3, "best_rate": 0.5, "lift": 2.0,
            "lift_ci": [1.5, 2.5], "churn_inside": 0.1, "churn_outside": 0.2,
            "best_wrongly_excluded": 0.05, "q_value": 0.001}
    return {**base, **kw}


def _set() -> CriteriaSet:
    size = Criterion("icp", "employees", "between", low=150, high=600, evidence=_ev())
    ind = Criterion("icp", "industry", "in", values=("SaaS", "FinTech"), evidence=_ev(lift=1.5))
    pair = Criterion("anti_icp", "requires_onprem", "==", values=("True",), source="churn_model",
                     also=(Criterion("anti_icp", "employees", "<", high=200),),
                     evidence=_ev(n_covered=40, coverage=0.04, lift=0.2, lift_ci=[0.1, 0.4]))
    per = {size.describe(): 0.9, ind.describe(): 0.4, pair.describe(): 0.75}
    return CriteriaSet(icp=[size, ind], anti_icp=[pair],
                       meta={"stability": {"per_criterion": per, "unstable": [ind.describe()]}})


def test_to_frame_one_row_per_criterion_with_the_evidence():
    cs = _set()
    before = cs.to_dict()
    f = cs.to_frame()
    assert list(f["side"]) == ["ICP", "ICP", "anti-ICP"]
    assert list(f["criterion"]) == [c.describe() for c in cs.icp + cs.anti_icp]
    assert list(f["columns"]) == ["employees", "industry", "requires_onprem, employees"]
    assert list(f["kind"]) == ["numeric", "categorical", "boolean"]
    assert list(f["source"]) == ["fit_model", "fit_model", "churn_model"]
    assert list(f["n_covered"]) == [300, 300, 40]
    np.testing.assert_allclose(f["lift"], [2.0, 1.5, 0.2])
    np.testing.assert_allclose(f["lift_ci_low"], [1.5, 1.5, 0.1])
    np.testing.assert_allclose(f["lift_ci_high"], [2.5, 2.5, 0.4])
    np.testing.assert_allclose(f["coverage"], [0.3, 0.3, 0.04])
    np.testing.assert_allclose(f["churn_inside"], [0.1] * 3)
    np.testing.assert_allclose(f["churn_outside"], [0.2] * 3)
    np.testing.assert_allclose(f["best_wrongly_excluded"], [0.05] * 3)
    np.testing.assert_allclose(f["stability"], [0.9, 0.4, 0.75])
    assert list(f["tentative"]) == [False, True, False]
    assert cs.to_dict() == before  # reading the table changes nothing


def test_to_frame_unmeasured_figures_are_missing_not_zero():
    # a hypothesis before evaluate_criteria: no evidence, no stability run
    cs = load_hypothesis({"icp": [{"column": "employees", "op": ">=", "low": 100}],
                          "anti_icp": [{"column": "industry", "op": "in", "values": ["Retail"]}]})
    f = cs.to_frame()
    assert len(f) == 2 and list(f["source"]) == ["hypothesis", "hypothesis"]
    assert f[["lift", "coverage", "stability", "churn_inside"]].isna().all().all()
    assert f["tentative"].isna().all() and str(f["tentative"].dtype) == "boolean"
    assert f["n_covered"].isna().all()


def test_to_frame_of_an_empty_set_has_the_columns():
    f = CriteriaSet().to_frame()
    assert f.empty and {"side", "criterion", "lift", "lift_ci_low", "tentative"} <= set(f.columns)


def test_load_hypothesis_mapping_equals_file(tmp_path):
    spec = {"icp": [{"column": "industry", "op": "in", "values": ["SaaS", "FinTech"]},
                    {"column": "employees", "op": "between", "low": 150, "high": 600}],
            "anti_icp": [{"column": "requires_onprem", "op": "==", "values": [True],
                          "also": [{"column": "employees", "op": "<", "high": 200}]}]}
    import yaml

    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(spec), encoding="utf-8")
    frozen = repr(spec)
    from_dict, from_file = load_hypothesis(spec), load_hypothesis(p)
    assert repr(spec) == frozen  # the mapping is not modified
    assert from_dict.icp == from_file.icp and from_dict.anti_icp == from_file.anti_icp
    assert [c.describe() for c in from_dict.icp] == ["industry in {SaaS, FinTech}",
                                                     "150 <= employees <= 600"]
    assert from_dict.anti_icp[0].columns == ["requires_onprem", "employees"]


@pytest.mark.parametrize("spec, words", [
    ({"icp": [{"column": "employees", "op": "between", "low": 1}]}, "needs low and high"),
    ({"icp": [{"column": "industry", "op": "in"}]}, "needs values"),
    ({"icp": [], "anti": []}, "anti"),
    ([{"column": "industry", "op": "in", "values": ["SaaS"]}], "expected a YAML file or a mapping"),
    ({"icp": {"column": "industry"}}, "icp"),
])
def test_load_hypothesis_mapping_errors_name_the_rule(spec, words):
    with pytest.raises(ConfigError, match=words) as e:
        load_hypothesis(spec)
    assert "\n" not in str(e.value)


def test_load_hypothesis_mapping_checks_columns_against_the_config():
    from icpml import demo_config

    cfg = demo_config()
    with pytest.raises(ConfigError, match="'not_a_column' is not a targetable feature"):
        load_hypothesis({"icp": [{"column": "not_a_column", "op": ">", "low": 1}]}, cfg)
    feature = cfg.columns.feature_columns[0]
    assert load_hypothesis({"icp": [{"column": feature, "op": "is_missing"}]}, cfg).icp


def test_to_frame_does_not_mutate_a_dataframe_free_set():
    # to_frame builds a new frame each time; editing it leaves the set alone
    cs = _set()
    f = cs.to_frame()
    f.loc[0, "lift"] = 99.0
    assert cs.icp[0].evidence["lift"] == 2.0 and cs.to_frame().loc[0, "lift"] == 2.0
    assert isinstance(f, pd.DataFrame)


def test_to_frame_of_an_evaluated_hypothesis_reports_its_evidence():
    # real evidence (segment_evidence through evaluate_criteria) on generated accounts: every
    # figure of the table is the criterion's own, and the planted ICP beats the base rate
    from icpml import demo_config, make_accounts
    from icpml.data import validate_accounts
    from icpml.hypothesis import evaluate_criteria

    cfg = demo_config()
    raw = make_accounts(600, seed=5)
    df = validate_accounts(raw, cfg)
    spec = {"icp": [{"column": "industry", "op": "in", "values": ["SaaS", "FinTech"]},
                    {"column": "employees", "op": "between", "low": 150, "high": 600}],
            "anti_icp": [{"column": "requires_onprem", "op": "==", "values": [True]}]}
    cs = evaluate_criteria(load_hypothesis(spec, cfg), df, cfg)
    f = cs.to_frame()
    assert list(f["side"]) == ["ICP", "ICP", "anti-ICP"]
    for row, c in zip(f.itertuples(index=False), cs.icp + cs.anti_icp, strict=True):
        ev = c.evidence
        assert row.n_covered == ev["n_covered"] and row.coverage == ev["coverage"]
        assert row.lift == ev["lift"] and row.q_value == ev["q_value"]
        assert [row.lift_ci_low, row.lift_ci_high] == ev["lift_ci"]
        assert row.churn_inside == ev["churn_inside"]
        assert row.best_wrongly_excluded == ev["best_wrongly_excluded"]
    assert (f.loc[f["side"] == "ICP", "lift_ci_low"] > 1).all()
    assert f.loc[f["side"] == "anti-ICP", "lift"].iloc[0] < 1
    assert f["stability"].isna().all() and f["tentative"].isna().all()
