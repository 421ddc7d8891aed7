"""Cross-product ICP on planted signals: each product gets its own ICP, and they overlap little."""

from __future__ import annotations

import numpy as np
import pytest

from icpml import demo_config, make_accounts
from icpml.config import OutcomeMetric, config_from_dict
from icpml.errors import ConfigError
from icpml.products import discover_products


@pytest.fixture(scope="module")
def products():
    df = make_accounts(2500, seed=0)
    rng = np.random.default_rng(1)
    # the add-on sells to large companies, whatever their industry or CRM
    big = df["employees"] >= 1000
    df["addon_value"] = np.round(rng.lognormal(8, 0.5, len(df)) * np.where(big, 4.0, 1.0))
    cfg = demo_config()
    cfg = cfg.model_copy(update={
        "products": {"platform": [OutcomeMetric(column="arr"), OutcomeMetric(column="nrr")],
                     "addon": [OutcomeMetric(column="addon_value")]},
        "criteria": cfg.criteria.model_copy(update={"stability_resamples": 0}),
    })
    before = df.copy()
    res = discover_products(cfg, df)
    assert df.equals(before)  # input untouched
    return df, res


def test_one_icp_per_product(products):
    _, res = products
    s = res.summary.set_index("product")
    assert s.loc["platform", "icp_found"] and s.loc["addon", "icp_found"]
    assert "industry" in s.loc["platform", "icp"] or "crm" in s.loc["platform", "icp"]
    assert "employees >=" in s.loc["addon", "icp"]
    assert "industry" not in s.loc["addon", "icp"]


def test_combined_scores_and_overlap(products):
    df, res = products
    sc = res.scored
    assert len(sc) == len(df) and sc["account_id"].is_unique
    assert (sc["n_product_icps"] == sc["icp_platform"].astype(int) + sc["icp_addon"].astype(int)).all()
    assert sc["expected_value"].ge(0).all()
    # accounts meeting both product ICPs are worth more than those meeting none
    ev = sc.groupby("n_product_icps")["expected_value"].mean()
    assert ev.index.max() >= 1 and ev.iloc[-1] > ev.iloc[0]
    row = res.overlap.iloc[0]
    assert row["n_both"] <= min(row["n_a"], row["n_b"])
    assert 0 <= row["jaccard"] < 0.5  # different buyers: little overlap
    md = res.to_markdown()
    assert "| platform |" in md and "Overlap" in md


def test_products_config_is_checked():
    base = demo_config().model_dump(exclude={"project_root"})
    with pytest.raises(ConfigError, match="feature"):
        config_from_dict({**base, "products": {"x": [{"column": "employees"}]}})
    with pytest.raises(ConfigError, match="no outcome"):
        config_from_dict({**base, "products": {"x": []}})
    with pytest.raises(ConfigError, match="no products"):
        discover_products(demo_config(), make_accounts(50))
