"""icpml on the public datasets in ``<workspace>/shared/data`` (see its README).

Contract checks of the adapters in :mod:`icpml.adapters.public` (one row per account,
unique ids, no outcome or post-sale column among the features, the Olist window
respected, input files unchanged) and end-to-end discoveries that must finish
with a coherent verdict and never turn a leakage column into a criterion. No
specific ICP is asserted: these are real data, not planted signals.

The data are not part of the repository (Olist is CC BY-NC-SA 4.0): every test
that reads them skips, with the reason, when the folder is absent
(``ICPML_REAL_DATA`` points elsewhere).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icpml import discover
from icpml.adapters import public_datasets
from icpml.adapters.public import (
    OLIST_DATA_END,
    maven_accounts,
    olist_mql_conversion,
    olist_sellers,
    telco_accounts,
)
from icpml.cohorts import BEST, WORST
from icpml.config import load_config
from icpml.data import load_source, validate_accounts
from icpml.errors import DataError

DATASETS = {name: (a.build, a.config) for name, a in public_datasets().items()}
PROJECT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ICPML_REAL_DATA",
                           Path(__file__).resolve().parents[2].parent / "shared" / "data"))
CONFIGS = PROJECT / "configs"
FOLDERS = {"olist": "olist_marketing_funnel", "telco": "ibm_telco_churn",
           "maven": "maven_crm_sales_opportunities"}

_ABSENT = f"public datasets not found at {DATA} (set ICPML_REAL_DATA to their folder)"

#: columns that must never become a feature or a criterion, per dataset: outcomes,
#: post-sale values, process attributes and known leaks (shared/data/README.md)
FORBIDDEN = {
    "olist": {"gmv", "n_orders", "n_items", "active_months", "days_to_first_sale", "activated",
              "churned", "lapsed", "won_date", "seller_id", "mql_id", "sdr_id", "sr_id",
              "seller_city", "seller_state", "seller_zip_code_prefix", "landing_page_id",
              "first_contact_date", "has_company", "has_gtin", "average_stock",
              "declared_product_catalog_size", "declared_monthly_revenue"},
    "telco": {"customerID", "tenure", "TotalCharges", "MonthlyCharges", "Churn"},
    "maven": {"account", "won_value", "win_rate", "n_won", "n_closed", "n_opportunities",
              "sales_agent", "manager", "regional_office", "product", "deal_stage",
              "engage_date", "close_date", "close_value", "subsidiary_of"},
}


def _need(name: str) -> Path:
    if not DATA.is_dir():
        pytest.skip(_ABSENT)
    folder = DATA / FOLDERS[name]
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def _md5s() -> dict[str, str]:
    out = {}
    for folder in FOLDERS.values():
        for p in sorted((DATA / folder).glob("*")):
            if p.is_file():
                out[str(p)] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def md5_before() -> dict[str, str]:
    if not DATA.is_dir():
        pytest.skip(_ABSENT)
    return _md5s()


@pytest.fixture(scope="module")
def tables(md5_before) -> dict[str, pd.DataFrame]:
    """Every adapter's table, built once (after the input files were hashed)."""
    out = {}
    for name, (builder, _) in DATASETS.items():
        if (DATA / FOLDERS[name]).is_dir():
            out[name] = builder(DATA)
    if (DATA / FOLDERS["olist"]).is_dir():
        out["olist_mql"] = olist_mql_conversion(DATA)
    return out


def _table(tables, name):
    _need(name)
    return tables[name]


def _cfg(name: str):
    return load_config(CONFIGS / DATASETS[name][1])


# ----------------------------------------------------------------------------- registry
def test_registry_configs_exist_and_validate():
    assert set(DATASETS) == {"olist", "telco", "maven"}
    for name, (builder, cfg_file) in DATASETS.items():
        assert callable(builder) and builder.__doc__
        cfg = load_config(CONFIGS / cfg_file)
        assert cfg.name == name
        assert cfg.data.path.startswith("../shared/data/")  # resolved from the project root


@pytest.mark.parametrize("name", ["olist", "telco", "maven"])
def test_config_alone_loads_the_dataset(tables, name):
    """`icpml discover --config configs/<name>.yaml` needs no code: the config says it all."""
    _need(name)
    if DATA != PROJECT.parent / "shared" / "data":
        pytest.skip("the configs read ../shared/data; ICPML_REAL_DATA points elsewhere")
    cfg = _cfg(name).model_copy(update={"project_root": PROJECT})
    df, source = load_source(cfg)
    checked = validate_accounts(df, cfg, source=source)
    assert len(checked) == len(tables[name])
    assert set(checked[cfg.columns.id]) == set(tables[name][cfg.columns.id].astype(str))
    if name == "maven":  # the generic CRM-export join equals the dataset's own builder
        cols = ["account", "n_opportunities", "n_closed", "n_won", "won_value", "win_rate"]
        pd.testing.assert_frame_equal(df[cols], tables[name][cols], check_dtype=False)
        assert {"won_value__gtxpro", "win_rate__mg_special"} <= set(df.columns)
    if name == "telco":  # Yes/No read as booleans, blank charges as missing
        assert checked["Churn"].sum() == 1869 and checked["TotalCharges"].isna().sum() == 11


@pytest.mark.parametrize("name", ["olist", "telco", "maven"])
def test_table_matches_its_config(tables, name):
    df, cfg = _table(tables, name), _cfg(name)
    cols = cfg.columns
    # one row per account, ids unique and present
    assert df[cols.id].notna().all()
    assert df[cols.id].is_unique
    # no outcome, post-sale, churn, id or known leak among the features
    feats = set(cols.feature_columns)
    roles = {cols.id, *(m.column for m in cols.outcomes), *cols.post_sale}
    roles |= {cols.churn} if cols.churn else set()
    roles |= {cols.date} if cols.date else set()
    assert not feats & roles
    assert not feats & FORBIDDEN[name], feats & FORBIDDEN[name]
    # icpml accepts the table as it is
    checked = validate_accounts(df, cfg, source=name)
    assert len(checked) == len(df)


@pytest.mark.parametrize("name", ["olist", "telco", "maven"])
def test_builders_return_new_frames(tables, name):
    _need(name)
    builder = DATASETS[name][0]
    a, b = builder(DATA), builder(DATA / FOLDERS[name])  # shared root or own folder
    pd.testing.assert_frame_equal(a, b)
    assert a is not b and a is not tables[name]
    before = tables[name].copy()
    a.loc[:, a.columns[1]] = None  # a caller mutating its table touches no other
    pd.testing.assert_frame_equal(tables[name], before)


@pytest.mark.parametrize("builder, filename", [
    (olist_sellers, "olist_closed_deals_dataset.csv"),
    (olist_mql_conversion, "olist_marketing_qualified_leads_dataset.csv"),
    (telco_accounts, "Telco-Customer-Churn.csv"),
    (maven_accounts, "accounts.csv"),
])
def test_missing_file_is_a_one_line_data_error(tmp_path, builder, filename):
    with pytest.raises(DataError) as err:
        builder(tmp_path)
    msg = str(err.value)
    assert filename in msg and "\n" not in msg
    assert "pass the folder" in msg


# ----------------------------------------------------------------------------- Olist
def _raw_olist():
    folder = _need("olist")
    deals = pd.read_csv(folder / "olist_closed_deals_dataset.csv", parse_dates=["won_date"])
    items = pd.read_csv(folder / "olist_order_items_dataset.csv",
                        parse_dates=["shipping_limit_date"])
    return deals, items


def test_olist_window_respected_and_outcomes_recomputed(tables):
    df = _table(tables, "olist")
    deals, items = _raw_olist()
    w = df.attrs["window_days"]
    end = pd.Timestamp(df.attrs["data_end"]) + pd.Timedelta(days=1)
    assert df.attrs["data_end"] == OLIST_DATA_END and w == 90
    # only sellers whose whole window is observed; the others are dropped, not zero-filled
    assert (df["won_date"] + pd.Timedelta(days=w) <= end).all()
    full = deals[deals["won_date"] + pd.Timedelta(days=w) <= end]
    assert set(df["seller_id"]) == set(full["seller_id"])
    assert df.attrs["n_censored"] == len(deals) - len(full) > 0
    assert len(df) == 667  # README: sellers won before June 2018, with a 90-day window

    # recompute the outcomes independently from the raw items
    x = items.merge(full[["seller_id", "won_date"]], on="seller_id")
    age = x["shipping_limit_date"] - x["won_date"]
    inw = x[(age >= pd.Timedelta(0)) & (age < pd.Timedelta(days=w))]
    gmv = inw.groupby("seller_id")["price"].sum()
    orders = inw.groupby("seller_id")["order_id"].nunique()
    got = df.set_index("seller_id")
    exp_gmv = gmv.reindex(got.index, fill_value=0.0)
    np.testing.assert_allclose(got["gmv"], exp_gmv, atol=0.006)
    assert (got["n_orders"] == orders.reindex(got.index, fill_value=0)).all()
    # sales after the window exist and are not counted
    after = x[age >= pd.Timedelta(days=w)]
    assert len(after) > 0
    assert got["gmv"].sum() < x.groupby("seller_id")["price"].sum().sum()
    assert (got["active_months"].between(0, int(np.ceil(w / 30)))).all()


def test_olist_never_sold_and_churn_flags(tables):
    df = _table(tables, "olist")
    never = df["n_items"] == 0
    assert 0.4 < never.mean() < 0.75
    assert (df.loc[never, ["gmv", "n_orders", "active_months"]] == 0).all().all()
    assert df.loc[never, "days_to_first_sale"].isna().all()
    assert (df["activated"] == ~never).all()
    assert df.loc[never, "churned"].all()  # not selling at the window's end
    assert (df["lapsed"] == (df["activated"] & df["churned"])).all()
    assert df["lapsed"].any() and (~df["churned"]).any()


def test_olist_features_are_pre_sale_only(tables):
    df = _table(tables, "olist")
    assert not set(df.columns) & {"sdr_id", "sr_id", "mql_id", "seller_city", "seller_state",
                                  "landing_page_id", "has_company", "declared_monthly_revenue"}
    assert df["origin"].notna().mean() > 0.95
    assert df["lead_type"].str.startswith("online_").any()


def test_olist_window_parameters(tables):
    _need("olist")
    short = olist_sellers(DATA, window_days=60)
    assert short.attrs["window_days"] == 60 and len(short) > len(tables["olist"])
    auto = olist_sellers(DATA, data_end=None)
    assert pd.Timestamp(auto.attrs["data_end"]) < pd.Timestamp("2019-01-01")  # 2020 rows ignored
    late = olist_sellers(DATA, data_end="2030-01-01")  # never past the last real sale day
    assert late.attrs["data_end"] == auto.attrs["data_end"]
    for bad in ({"window_days": 0}, {"window_days": 90, "churn_days": 90}):
        with pytest.raises(DataError):
            olist_sellers(DATA, **bad)
    with pytest.raises(DataError, match="shorter window_days"):
        olist_sellers(DATA, window_days=400)


def test_olist_mql_conversion(tables):
    _need("olist")
    m = tables["olist_mql"]
    assert len(m) == 8000 and m["mql_id"].is_unique
    assert list(m.columns) == ["mql_id", "first_contact_date", "landing_page_id", "origin",
                               "converted"]
    assert int(m["converted"].sum()) == 842  # README: 10.5%
    assert m["origin"].isna().sum() == 60


# ----------------------------------------------------------------------------- Telco, Maven
def test_telco_table(tables):
    df = _table(tables, "telco")
    csv = DATA / FOLDERS["telco"] / "Telco-Customer-Churn.csv"
    pd.testing.assert_frame_equal(telco_accounts(csv), df)  # the file itself works too
    assert len(df) == 7043
    assert int(df["Churn"].sum()) == 1869
    assert df["TotalCharges"].notna().all()
    assert (df.loc[df["tenure"] == 0, "TotalCharges"] == 0).all()
    assert df.attrs["n_total_charges_blank"] == 11


def test_maven_table(tables):
    df = _table(tables, "maven")
    folder = _need("maven")
    pipe = pd.read_csv(folder / "sales_pipeline.csv")
    assert len(df) == 85
    assert df["n_won"].sum() == (pipe["deal_stage"] == "Won").sum()
    assert df["n_closed"].sum() == pipe["deal_stage"].isin(["Won", "Lost"]).sum()
    assert df["won_value"].sum() == pytest.approx(
        pipe.loc[pipe["deal_stage"] == "Won", "close_value"].sum())
    assert df["win_rate"].between(0.5, 0.8).all()
    assert "technolgy" not in set(df["sector"])
    assert df["is_subsidiary"].sum() == df["subsidiary_of"].notna().sum() == 15


# ----------------------------------------------------------------------------- end to end
def _check_discovery(name: str, df: pd.DataFrame):
    cfg = _cfg(name)
    res = discover(cfg, df)
    cohorts = res.cohorts.value_counts()
    assert cohorts.get(BEST, 0) >= cfg.cohorts.min_per_cohort
    assert cohorts.get(WORST, 0) >= cfg.cohorts.min_per_cohort
    assert 0.0 <= res.fit_model.holdout["roc_auc"] <= 1.0
    assert len(res.scored) == len(df) and res.scored[cfg.columns.id].is_unique
    # a coherent verdict
    v = res.criteria.verdict
    assert isinstance(v["icp_found"], bool) and v["message"]
    if v["icp_found"]:
        assert res.criteria.icp
        assert res.criteria.icp_evidence["lift_ci"][0] > 1.0
    else:
        assert v["message"].startswith("No reliable ICP found")
    # only targetable columns reach the models and the criteria
    feats = set(cfg.columns.feature_columns)
    assert set(res.fit_model.columns) <= feats
    named = {c.column for c in res.criteria.icp + res.criteria.anti_icp + res.criteria.unconfirmed}
    assert named <= feats
    assert not named & FORBIDDEN[name]
    assert np.isfinite(res.fit_model.holdout["roc_auc"])
    return res


def test_discover_olist(tables, md5_before):
    df = _table(tables, "olist")
    res = _check_discovery("olist", df)
    # sellers with no sale tie at the bottom of the value score: worst = never sold
    never = df.set_index("seller_id")["n_items"].eq(0)
    coh = pd.Series(res.cohorts.to_numpy(), index=df["seller_id"])
    assert never[coh[coh == WORST].index].all()
    assert not never[coh[coh == BEST].index].any()
    assert res.churn_model is not None


def test_discover_maven(tables):
    res = _check_discovery("maven", _table(tables, "maven"))
    assert res.churn_model is None  # no churn label in this dataset
    # with min_samples_leaf=5 the trees can split on 23 training accounts (not a constant model)
    assert res.fit_explanation.importance().max() > 0
    assert res.criteria.meta["n_holdout"] < 30


@pytest.mark.slow
def test_discover_telco(tables):
    res = _check_discovery("telco", _table(tables, "telco"))
    # the well-known churn driver comes out on top (README: 42.7% vs 2.8% churn)
    assert res.churn_model is not None and res.churn_model.holdout["roc_auc"] > 0.75
    assert "Contract" in list(res.churn_explanation.importance().index[:3])


# ----------------------------------------------------------------------------- inputs
def test_input_files_unchanged(tables, md5_before):
    """Last in the file: after every table was built and discovered, the inputs are intact."""
    assert tables
    assert _md5s() == md5_before


def test_discover_olist_mql_conversion():
    """The lead-conversion view: yes/no outcome -> best = converted, worst = not."""
    _need("olist")
    if DATA != PROJECT.parent / "shared" / "data":
        pytest.skip("the config reads ../shared/data; ICPML_REAL_DATA points elsewhere")
    cfg = load_config(CONFIGS / "olist_mql.yaml").model_copy(update={"project_root": PROJECT})
    df, _ = load_source(cfg)
    res = discover(cfg, df)
    assert res.cohorts.value_counts().to_dict() == {WORST: 7158, BEST: 842}
    assert "landing_page_id" not in res.fit_model.columns  # a page identifier, screened out
    named = {c.column for c in res.criteria.icp + res.criteria.anti_icp}
    assert named <= {"origin"}
    assert 0.5 < res.fit_model.holdout["roc_auc"] < 0.8


def test_products_command_on_maven(tmp_path, monkeypatch):
    """`icpml products`: one ICP per product line; 85 accounts support none of them."""
    import yaml
    from typer.testing import CliRunner

    from icpml.cli import app

    folder = _need("maven")
    raw = yaml.safe_load((CONFIGS / "maven.yaml").read_text())
    raw["data"]["path"] = str(folder / "accounts.csv")
    raw["data"]["opportunities"]["path"] = str(folder / "sales_pipeline.csv")
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    cfg = tmp_path / "maven.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(tmp_path))
    result = CliRunner().invoke(app, ["--quiet", "products", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    out = next((tmp_path / "reports").glob("maven_products_*"))
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and not summary["icp_found"].any()
    scored = pd.read_csv(out / "products_scored.csv")
    assert len(scored) == 85 and (scored["n_product_icps"] == 0).all()
    assert "Overlap of the product ICPs" in (out / "products.md").read_text()
