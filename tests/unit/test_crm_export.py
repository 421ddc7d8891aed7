"""The generic CRM-export adapter: accounts + opportunities joined through config alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from icpml.adapters.crm import crm_accounts
from icpml.config import OpportunitiesConfig, config_from_dict, demo_config
from icpml.data import load_source
from icpml.errors import ConfigError, DataError

ACCOUNTS = pd.DataFrame({"id": ["a", "b", "c", "d"], "employees": [10, 200, 50, 900]})
OPPS = pd.DataFrame({
    "acct": ["a", "a", "a", "b", "b", "c", " b ", "zz", None],
    "stage": ["Closed Won", "Closed Lost", "Open", "Closed Won", "Closed Won", "Open",
              "Closed Lost", "Closed Won", "Closed Won"],
    "amount": ["100", "999", "5", "1,000", 20.5, None, "7", "3", "4"],
    "closed": ["2024-01-10", "2024-02-01", "2024-03-01", "2023-06-01", "2024-05-01",
               "2024-01-01", "2024-04-01", "2024-01-01", "2024-01-01"],
    "product": ["Pro", "Pro", "Basic", "Basic", "Pro", "Pro", "Basic", "Pro", "Pro"],
})
SPEC = dict(path="opps.csv", account="acct", stage="stage", won=["Closed Won"],
            lost=["Closed Lost"], amount="amount")


def _spec(**kw) -> OpportunitiesConfig:
    return OpportunitiesConfig(**{**SPEC, **kw})


def test_counts_values_and_rates_per_account():
    before_a, before_o = ACCOUNTS.copy(), OPPS.copy()
    out = crm_accounts(ACCOUNTS, OPPS, _spec(), id_column="id")  # "1,000" reads as 1000
    pd.testing.assert_frame_equal(ACCOUNTS, before_a)  # inputs untouched
    pd.testing.assert_frame_equal(OPPS, before_o)
    got = out.set_index("id")
    assert got.loc["a", ["n_opportunities", "n_closed", "n_won"]].tolist() == [3, 2, 1]
    assert got.loc["a", "won_value"] == 100.0          # the lost 999 does not count
    assert got.loc["a", "win_rate"] == 0.5
    assert got.loc["b", "n_won"] == 2 and got.loc["b", "n_closed"] == 3  # " b " is trimmed
    assert got.loc["b", "won_value"] == pytest.approx(1020.5)
    assert got.loc["c", "n_closed"] == 0 and math.isnan(got.loc["c", "win_rate"])  # nothing closed
    assert got.loc["d", "n_opportunities"] == 0 and math.isnan(got.loc["d", "win_rate"])
    assert out.attrs["n_deals_unmatched"] == 1           # "zz" is not an account; None skipped
    assert list(out["id"]) == list(ACCOUNTS["id"])        # one row per account, in order


def test_date_window_keeps_only_outcomes_after_the_cutoff():
    opps = OPPS.assign(amount=1.0)
    out = crm_accounts(ACCOUNTS, opps, _spec(date="closed", after="2024-01-01",
                                             before="2024-04-02"), id_column="id")
    got = out.set_index("id")
    # b: the 2023 win is before the cut-off, the 2024-05-01 win after 'before'; the loss counts
    assert got.loc["b", ["n_won", "n_closed"]].tolist() == [0, 1]
    assert got.loc["a", "n_opportunities"] == 3
    out = crm_accounts(ACCOUNTS, opps, _spec(date="closed", before="2024-04-01"), id_column="id")
    assert out.set_index("id").loc["b", "n_closed"] == 1  # 'before' is exclusive


def test_per_product_outcomes():
    opps = OPPS.assign(amount=1.0)
    out = crm_accounts(ACCOUNTS, opps, _spec(product="product"), id_column="id")
    got = out.set_index("id")
    assert got.loc["a", "n_won__pro"] == 1 and got.loc["a", "win_rate__pro"] == 0.5
    assert got.loc["b", "n_won__basic"] == 1 and got.loc["b", "n_closed__basic"] == 2
    assert (got["n_won__pro"] + got["n_won__basic"] == got["n_won"]).all()


@pytest.mark.parametrize("kw, match", [
    ({"stage": "deal_stage"}, "deal_stage"),
    ({"amount": "value"}, "value"),
])
def test_missing_columns_are_named(kw, match):
    with pytest.raises(DataError, match=match):
        crm_accounts(ACCOUNTS, OPPS, _spec(**kw), id_column="id")


def test_bad_amount_and_no_match_and_clash_are_data_errors():
    with pytest.raises(DataError, match="won deal"):
        crm_accounts(ACCOUNTS, OPPS.assign(amount="n/a"), _spec(), id_column="id")
    with pytest.raises(DataError, match="no opportunity matches"):
        crm_accounts(ACCOUNTS, OPPS.assign(acct="nobody"), _spec(), id_column="id")
    with pytest.raises(DataError, match="already has column"):
        crm_accounts(ACCOUNTS.assign(win_rate=1.0), OPPS.assign(amount=1.0), _spec(),
                     id_column="id")


@pytest.mark.parametrize("kw, match", [
    ({"won": ["Won"], "lost": ["Won"]}, "both won and lost"),
    ({"after": "2024-01-01"}, "need data.opportunities.date"),
    ({"date": "closed", "after": "last year"}, "YYYY-MM-DD"),
])
def test_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"columns": {"id": "id", "features": {"firmographic": ["employees"]},
                                      "outcomes": [{"column": "won_value"}]},
                          "data": {"path": "accounts.csv", "opportunities": {**SPEC, **kw}}})


def test_load_source_joins_from_config_files(tmp_path):
    ACCOUNTS.to_csv(tmp_path / "accounts.csv", index=False)
    OPPS.to_csv(tmp_path / "opps.csv", index=False)
    cfg = config_from_dict({
        "columns": {"id": "id", "features": {"firmographic": ["employees"]},
                    "outcomes": [{"column": "won_value"}, {"column": "win_rate"}]},
        "data": {"path": "accounts.csv", "opportunities": {**SPEC, "path": "opps.csv"}},
    }, project_root=tmp_path)
    df, source = load_source(cfg)
    assert source.endswith("accounts.csv + opps.csv")
    assert df.set_index("id").loc["b", "won_value"] == pytest.approx(1020.5)  # "1,000" parsed


def test_adapter_options_are_checked():
    with pytest.raises(ConfigError, match="data.options"):
        config_from_dict({**demo_config().model_dump(exclude={"project_root"}),
                          "data": {"path": "x.csv", "options": {"window_days": 3}}})
