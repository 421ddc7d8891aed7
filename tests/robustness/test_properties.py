"""Property-based: over generated account tables, discovery either succeeds with internally
consistent outputs or fails with a user error (IcpmlError), never an unexpected exception."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from icpml import discover  # noqa: E402
from icpml.config import config_from_dict  # noqa: E402
from icpml.errors import IcpmlError  # noqa: E402

TIERS = {"Tier 1", "Tier 2", "Tier 3", "Excluded"}

CFG = config_from_dict({
    "columns": {"id": "id", "features": {"firmographic": ["size", "segment", "flag"]},
                "outcomes": [{"column": "value"}], "churn": "churned"},
    "cohorts": {"min_per_cohort": 5},
    "models": {"cv_folds": 2, "max_iter": 20},
    "criteria": {"n_bootstrap": 50, "stability_resamples": 0},
})


@st.composite
def tables(draw):
    """Mostly well-formed tables of varied shape and signal, sometimes one hostile trait."""
    bad = draw(st.sampled_from(["none"] * 6 + ["inf", "all_churned", "none_churned",
                                                "no_variance", "tiny"]))
    n = draw(st.integers(8, 19)) if bad == "tiny" else draw(st.integers(40, 400))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    size = rng.lognormal(5, 1, n)
    size[rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.5]))] = np.nan
    if bad == "inf":
        size[:3] = np.inf
    n_cats = draw(st.integers(1, 6))
    segment = rng.choice([f"s{i}" for i in range(n_cats)], n).astype(object)
    if draw(st.booleans()):
        segment[0] = "singleton"  # a category with one member
    flag = rng.random(n) < draw(st.floats(0.0, 1.0))
    signal = draw(st.sampled_from([0.0, 0.5, 1.5, 3.0]))
    value = (rng.normal(0, 1, n) + signal * (segment == "s0")
             + signal * (np.nan_to_num(size, posinf=0.0) > 150))
    if bad == "no_variance":
        value[:] = 1.0
    churned = rng.random(n) < draw(st.sampled_from([0.1, 0.2, 0.35, 0.5]))
    if bad in ("all_churned", "none_churned"):
        churned[:] = bad == "all_churned"
    return pd.DataFrame({"id": [f"a{i}" for i in range(n)], "size": size, "segment": segment,
                         "flag": flag, "value": value, "churned": churned})


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables())
def test_discovery_is_consistent_or_a_user_error(df):
    before = df.copy()
    try:
        res = discover(CFG, df)
    except IcpmlError as err:
        hypothesis.event(f"user error: {str(err)[-90:]}")
        msg = str(err)
        assert msg and "\n" not in msg.strip(), msg  # one line (problems joined by ;)
        return
    finally:
        pd.testing.assert_frame_equal(df, before)  # the input is never modified
    hypothesis.event("discovered" + (" an ICP" if res.criteria.icp else ", no ICP"))
    scored = res.scored
    # tiers partition the accounts
    assert len(scored) == len(df) and scored["id"].is_unique
    assert set(scored["tier"].astype(str)) <= TIERS and scored["tier"].notna().all()
    # icp_match implies that no exclusion fired; Excluded iff an exclusion fired
    assert not (scored["icp_match"] & scored["anti_icp_match"]).any()
    assert ((scored["tier"] == "Excluded") == scored["anti_icp_match"]).all()
    if res.criteria.icp:
        assert ((scored["tier"] == "Tier 1") == scored["icp_match"]).all()
    crits = res.criteria.icp + res.criteria.anti_icp + res.criteria.unconfirmed
    if res.criteria.meta.get("evidence", {}).get("method", "holdout") == "holdout":
        # every criterion's stated held-out coverage equals its recomputed coverage
        hold = res.accounts[(res.split == "holdout").to_numpy()]
        for c in crits:
            assert c.evidence["coverage"] == pytest.approx(float(c.mask(hold).mean()), abs=1e-6)
        # the combined ICP evidence too
        if res.criteria.icp:
            assert res.criteria.icp_evidence["coverage"] == pytest.approx(
                float(res.criteria.icp_mask(hold).mean()), abs=1e-6)
    else:  # cross-fitted (small data): out-of-fold evidence on every account, a share
        assert res.criteria.meta["evidence"]["n"] == len(res.accounts)
        for c in crits:
            assert 0.0 <= c.evidence["coverage"] <= 1.0
    for p in ("fit_score", "churn_risk"):
        s = scored[p].dropna()
        assert ((s >= 0) & (s <= 1)).all()
