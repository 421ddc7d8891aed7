"""The identifier / leakage screen and the one-hot -> business column map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _shared import CASES
from icpml.cohorts import label_cohorts, value_score
from icpml.config import demo_config
from icpml.data import feature_kinds, validate_accounts
from icpml.features import business_column_map, make_preprocessor, screen_columns
from icpml.synthetic import make_accounts


def test_business_column_map():
    X = pd.DataFrame({"n": [1.0, 2.0, 3.0] * 5, "c": ["a", "b", "c"] * 5})
    pre = make_preprocessor({"n": "numeric", "c": "categorical"}, ["n", "c"], min_frequency=1)
    pre.fit(X)
    assert business_column_map(pre) == ["n", "c", "c", "c"]


def test_screen_flags_identifiers_and_disguised_outcomes():
    cfg = demo_config()
    df = validate_accounts(make_accounts(1500, seed=6), cfg)
    df["website"] = df["domain"]
    df["arr_band"] = pd.cut(df["arr"], [0, 2e4, 5e4, 1e9], labels=["low", "mid", "high"]).astype("string")
    kinds = {**feature_kinds(df, cfg), "website": "categorical", "arr_band": "categorical"}
    # as discover() calls it: with the outcome columns (a best-vs-worst AUC alone, which a
    # strong true ICP column also reaches, does not set a column aside)
    s = _screen(df, cfg, kinds)
    assert "website" in s.excluded and "identifier" in s.excluded["website"]
    assert "arr_band" in s.excluded and "outcome" in s.excluded["arr_band"]
    assert not set(s.excluded) & set(cfg.columns.feature_columns)
    kept = _screen(df, cfg, kinds, trusted=["arr_band"])
    assert "arr_band" not in kept.excluded and any("kept" in w for w in kept.warnings)


# ----------------------------------------------------------------------------- leakage guard
# the shared cases sit beside the repository (../shared/cases); from a git worktree under
# /work/wt/NAME, one level further up
_ROOT = Path(__file__).resolve().parents[2]
LEAKS = ("account_health", "cs_status", "last_call_duration", "cs_index", "bucket")


def _with_leaks(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Post-outcome columns of the kinds users list as features, drawn at random.

    ``account_health`` (usage and churn with noise), ``cs_status`` ("Churned" exactly for
    churned accounts), ``last_call_duration`` (longer for high-ARR accounts, loosely),
    and two without a telling name: ``cs_index`` (a near-exact function of usage and
    NPS) and ``bucket`` (one code only churned accounts carry).
    """
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(out)
    usage = out["product_usage_pct"].to_numpy(float)
    ch = out["churned"].to_numpy(bool)
    noise = rng.uniform(0.08, 0.35)
    out["account_health"] = np.round(100 * np.clip(
        0.5 + 0.8 * (usage - 0.55) - 0.35 * ch + rng.normal(0, noise, n), 0, 1), 1)
    out["cs_status"] = np.where(ch, "Churned", rng.choice(["Active", "Renewal due", "Expansion"], n))
    v = out["arr"].rank(pct=True).to_numpy()
    out["last_call_duration"] = np.round(np.exp(rng.normal(5 + rng.uniform(1.0, 1.6) * v, 0.6, n)))
    out["cs_index"] = np.round(3 * usage + 0.01 * out["nps"].to_numpy(float)
                               + rng.normal(0, 0.02, n), 3)
    out["bucket"] = np.where(ch, "K", rng.choice(["A", "B", "C"], n))
    return out


def _screen(df, cfg, kinds=None, **kw):
    score = value_score(df, cfg.columns.outcomes)
    lab = label_cohorts(score)
    ends = lab[lab != "middle"] == "best"
    churn = cfg.columns.churn
    outcome_cols = [m.column for m in cfg.columns.outcomes] + list(cfg.columns.post_sale)
    return screen_columns(df, kinds or feature_kinds(df, cfg), ends,
                          churned=df[churn].astype(bool) if churn else None,
                          outcome_columns=outcome_cols + ([churn] if churn else []),
                          post_sale=list(cfg.columns.post_sale), value=score,
                          seed=cfg.models.seed, **kw)


# one seed per kind in the unit tier, the others in the integration tier
MORE = pytest.mark.integration


@pytest.mark.parametrize("seed", [0, pytest.param(3, marks=MORE), pytest.param(7, marks=MORE)])
def test_leaks_are_set_aside_and_presale_columns_kept(seed):
    cfg = demo_config()
    df = validate_accounts(_with_leaks(make_accounts(2000, seed=seed), seed), cfg)
    before = df.copy()
    kinds = {**feature_kinds(df, cfg), "account_health": "numeric", "cs_status": "categorical",
             "last_call_duration": "numeric", "cs_index": "numeric", "bucket": "categorical"}
    s = _screen(df, cfg, kinds)
    assert set(s.excluded) == set(LEAKS), s.excluded
    for c in LEAKS:  # one warning line per column, saying why
        (w,) = [w for w in s.warnings if w.startswith(f"'{c}'")]
        assert "behaves like an outcome" in w and "columns.trusted" in w
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=MORE), pytest.param(2, marks=MORE)])
def test_no_false_flags_on_the_demo(seed):
    cfg = demo_config()
    df = validate_accounts(make_accounts(2000, seed=seed), cfg)
    s = _screen(df, cfg)
    assert s.excluded == {} and s.warnings == []
    # funding_stage and intent_score are named like outcomes: names alone never set aside
    assert s.signals["funding_stage"]["name"] and s.signals["intent_score"]["name"]


def test_a_name_alone_never_sets_aside():
    cfg = demo_config()
    rng = np.random.default_rng(11)
    df = validate_accounts(make_accounts(1500, seed=11), cfg)
    df["deal_stage"] = rng.choice(["won", "open", "lost"], len(df))
    df["last_touch_duration"] = rng.exponential(200, len(df)).round()
    kinds = {**feature_kinds(df, cfg), "deal_stage": "categorical", "last_touch_duration": "numeric"}
    assert _screen(df, cfg, kinds).excluded == {}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dominant_presale_code_is_kept(seed):
    """One plain pre-sale column carrying nearly all the signal (a channel) stays a feature."""
    rng = np.random.default_rng(seed)
    n = 800
    channel = rng.choice([1, 2], n, p=[0.7, 0.3])
    region = rng.choice([1, 2, 3], n)
    spend = np.exp(8 + 0.9 * (channel == 2) + rng.normal(0, 0.5, n))
    df = pd.DataFrame({"client_id": np.arange(n), "Channel": channel, "Region": region,
                       "spend": spend})
    from icpml.config import config_from_dict

    cfg = config_from_dict({"columns": {"id": "client_id",
                                        "features": {"firmographic": ["Channel", "Region"]},
                                        "outcomes": [{"column": "spend"}]}})
    s = _screen(validate_accounts(df, cfg), cfg)
    assert s.excluded == {}


def test_trusted_column_is_kept_with_a_warning():
    cfg = demo_config()
    df = validate_accounts(_with_leaks(make_accounts(1500, seed=5), 5), cfg)
    kinds = {**feature_kinds(df, cfg), "last_call_duration": "numeric"}
    s = _screen(df, cfg, kinds, trusted=["last_call_duration"])
    assert "last_call_duration" not in s.excluded
    assert any(w.startswith("'last_call_duration'") and "kept" in w for w in s.warnings)


def test_case_call_duration_screen():
    """Bank Marketing sample: `duration` (length of the call) is set aside, nothing else."""
    folder = CASES / "call-duration-becomes-icp"
    if not folder.exists():
        pytest.skip(f"case folder {folder} is absent")
    from icpml.config import load_config

    cfg = load_config(folder / "naive.yaml")
    df = validate_accounts(pd.read_csv(folder / "bank_calls_sample.csv"), cfg)
    s = _screen(df, cfg)
    assert set(s.excluded) == {"duration"}
    assert "named like a post-sale or contact-outcome measure" in s.excluded["duration"]


def _shared_data(name: str) -> Path:
    for base in (_ROOT / ".." / "shared" / "data", _ROOT / ".." / ".." / "shared" / "data"):
        if (base / name).exists():
            return base / name
    pytest.skip(f"shared data set {name} is absent")


@pytest.mark.integration  # a real data set
def test_telco_presale_columns_are_kept():
    """IBM Telco: Contract (the strongest churn driver) and MonthlyCharges (recovered exactly
    from the post-sale TotalCharges and tenure) are pre-sale and stay features."""
    from icpml.config import config_from_dict

    t = pd.read_csv(_shared_data("ibm_telco_churn") / "Telco-Customer-Churn.csv")
    t["TotalCharges"] = pd.to_numeric(t["TotalCharges"], errors="coerce")
    t["churned"] = t["Churn"] == "Yes"
    t["retained"] = (~t["churned"]).astype(int)
    feats = ["gender", "SeniorCitizen", "Partner", "Dependents", "PhoneService", "InternetService",
             "OnlineSecurity", "TechSupport", "Contract", "PaperlessBilling", "PaymentMethod",
             "MonthlyCharges"]
    cfg = config_from_dict({"columns": {
        "id": "customerID", "features": {"firmographic": feats},
        "post_sale": ["TotalCharges", "tenure"], "outcomes": [{"column": "retained"}],
        "churn": "churned"}})
    s = _screen(validate_accounts(t.drop(columns=["Churn"]), cfg), cfg)
    assert s.excluded == {}


@pytest.mark.integration  # a real data set, 45k rows
def test_bank_full_duration_set_aside_among_all_columns():
    """UCI Bank Marketing, 45k rows, all 16 columns listed: only `duration` is set aside."""
    from icpml.config import config_from_dict

    b = pd.read_csv(_shared_data("uci_bank_marketing") / "bank-full.csv", sep=";")
    b["id"] = np.arange(len(b))
    b["y"] = (b["y"] == "yes").astype(int)
    cols = [c for c in b.columns if c not in ("id", "y")]
    cfg = config_from_dict({"columns": {"id": "id", "features": {"firmographic": cols},
                                        "outcomes": [{"column": "y"}]}})
    s = _screen(validate_accounts(b, cfg), cfg)
    assert set(s.excluded) == {"duration"}


def test_trusted_must_name_a_feature():
    from icpml.config import config_from_dict
    from icpml.errors import ConfigError

    base = {"columns": {"id": "id", "features": {"firmographic": ["a"]},
                        "outcomes": [{"column": "y"}], "trusted": ["y"]}}
    with pytest.raises(ConfigError, match="columns.trusted names 'y'"):
        config_from_dict(base)
    base["columns"]["trusted"] = ["a"]
    assert config_from_dict(base).columns.trusted == ["a"]


def test_category_text_stays_small_with_one_very_long_value():
    """The encoder's input is fixed-width unicode only when every value is short: one
    20,000-character cell in a 30,000-row column made it 2.4 GB; the one-hot encoding is the
    same either way."""
    import numpy as np
    import pandas as pd

    from icpml.features import _as_text, make_preprocessor

    short = pd.DataFrame({"c": pd.array(["SaaS", "Media", None] * 10_000, dtype="string")})
    long_ = short.copy()
    long_.iloc[0, 0] = "z" * 20_000
    assert _as_text(short).dtype.kind == "U"
    text = _as_text(long_)
    assert text.dtype == object and text.nbytes < 1_000_000
    # fitted on either table, the rows they share are encoded alike (the long value alone
    # adds the infrequent column)
    a = make_preprocessor({"c": "categorical"}, ["c"], min_frequency=5).fit(short)
    b = make_preprocessor({"c": "categorical"}, ["c"], min_frequency=5).fit(long_)
    enc_a, enc_b = a.transform(short.iloc[1:]), b.transform(short.iloc[1:])
    assert enc_b.shape[1] == enc_a.shape[1] + 1 and not enc_b[:, -1].any()
    np.testing.assert_array_equal(enc_a, enc_b[:, :-1])
