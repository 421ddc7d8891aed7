"""Value score, cohort labels and the contrast table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpml._stats import benjamini_hochberg
from icpml.cohorts import cohort_contrast, label_cohorts, value_score
from icpml.config import OutcomeMetric, demo_config
from icpml.data import feature_kinds, validate_accounts
from icpml.synthetic import make_accounts


def test_value_score_directions_and_weights():
    df = pd.DataFrame({"arr": [10, 20, 30, 40], "cost": [4, 3, 2, 1], "nps": [0, 0, 100, np.nan]})
    s = value_score(df, [OutcomeMetric(column="arr", weight=2),
                         OutcomeMetric(column="cost", direction="lower"),
                         OutcomeMetric(column="nps", weight=1)])
    # ranks: arr 0,1/3,2/3,1; cost (lower better) same; nps 0.25,0.25,1, missing
    expected = [(2 * 0 + 0 + 0.25) / 4, (2 / 3 + 1 / 3 + 0.25) / 4, (4 / 3 + 2 / 3 + 1) / 4,
                (2 + 1) / 3]
    assert s.tolist() == pytest.approx(expected)


def test_labels_quantiles_ties_and_degenerate():
    s = pd.Series(np.arange(100) / 99)
    lab = label_cohorts(s, 0.25, 0.25)
    assert (lab == "best").sum() == 25 and (lab == "worst").sum() == 25
    assert (label_cohorts(pd.Series([0.5] * 40)) == "middle").all()


def test_contrast_finds_planted_and_not_noise():
    from icpml.config import config_from_dict

    d = demo_config().to_dict()
    d.pop("project_root")
    d["columns"]["features"]["intent"].append("noise")
    cfg = config_from_dict(d)
    raw = make_accounts(1500, seed=2)
    raw["noise"] = np.random.default_rng(0).normal(size=len(raw))
    df = validate_accounts(raw, cfg)
    lab = label_cohorts(value_score(df, cfg.columns.outcomes))
    ct = cohort_contrast(df, lab, cfg, feature_kinds(df, cfg)).set_index("feature")
    assert ct.loc["requires_onprem", "q_value"] < 1e-6
    assert ct.loc["noise", "q_value"] > 0.05  # a column drawn independently of value
    assert ct.loc["intent_score", "effect"] > 0  # best cohort has higher intent
    assert set(ct.columns) >= {"best", "worst", "effect", "p_value", "q_value"}


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.2])
    q = benjamini_hochberg(p)
    # sorted p: .01,.03,.04,.2 with m=4 -> .04, .0533, .0533, .2
    assert q[0] == pytest.approx(0.04) and q[2] == pytest.approx(0.16 / 3)
    assert q[1] == pytest.approx(0.16 / 3) and np.isnan(q[3]) and q[4] == pytest.approx(0.2)


@pytest.mark.parametrize("share_yes", [0.1, 0.9])
def test_yes_no_outcome_splits_at_the_tied_value(share_yes):
    n = 200
    s = pd.Series([1.0] * int(n * share_yes) + [0.0] * int(n * (1 - share_yes)))
    labels = label_cohorts(s)
    assert (labels[s == 1.0] == "best").all() and (labels[s == 0.0] == "worst").all()
    assert (label_cohorts(pd.Series([0.5] * 50)) == "middle").all()
