"""Loading and validation: one error listing every problem; inputs never modified."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from icpml.config import demo_config
from icpml.data import load_accounts, validate_accounts
from icpml.errors import DataError
from icpml.synthetic import make_accounts


@pytest.fixture()
def raw():
    return make_accounts(300, seed=3)


def test_csv_and_parquet_round_trip(tmp_path, raw):
    raw.to_csv(tmp_path / "a.csv", index=False)
    raw.to_parquet(tmp_path / "a.parquet", index=False)
    for name in ("a.csv", "a.parquet"):
        df = validate_accounts(load_accounts(tmp_path / name), demo_config())
        assert len(df) == 300 and df["requires_onprem"].dtype == "boolean"


def test_every_problem_in_one_error(raw):
    df = raw.drop(columns=["industry", "nrr"])
    df.loc[5, "account_id"] = df.loc[6, "account_id"]
    df["arr"] = df["arr"].astype(object)
    df.loc[0, "arr"] = "lots"
    df["churned"] = df["churned"].map({True: "maybe", False: "no"})
    with pytest.raises(DataError) as e:
        validate_accounts(df, demo_config(), source="acme.csv")
    msg = str(e.value)
    assert msg.startswith("acme.csv: ")
    for needle in ("'industry'", "'nrr'", "duplicated id", "outcome column 'arr'", "churn column"):
        assert needle in msg
    assert len(e.value.problems) == 4


def test_empty_and_too_small(raw):
    with pytest.raises(DataError, match="empty"):
        validate_accounts(raw.iloc[:0], demo_config())
    with pytest.raises(DataError, match="fewer than 10 per cohort"):
        validate_accounts(raw.iloc[:20], demo_config())


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_accounts(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="neither CSV nor Parquet"):
        load_accounts(tmp_path / "x.xlsx")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_accounts(tmp_path / "e.csv")


def test_input_not_mutated_and_file_unchanged(tmp_path, raw):
    p = tmp_path / "a.csv"
    raw.to_csv(p, index=False)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    df = load_accounts(p)
    before = df.copy(deep=True)
    validate_accounts(df, demo_config())
    pd.testing.assert_frame_equal(df, before)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == digest


def test_near_miss_column_names_are_suggested(raw):
    with pytest.raises(DataError, match="did you mean 'industry' -> 'Industry'"):
        validate_accounts(raw.rename(columns={"industry": "Industry"}), demo_config())


def test_yes_no_churn_and_text_numbers_are_coerced(raw):
    df = raw.copy()
    df["churned"] = df["churned"].map({True: "Yes", False: "No"})
    df["employees"] = df["employees"].map(lambda v: f"{v:,}")
    out = validate_accounts(df, demo_config())
    assert out["churned"].dtype == "boolean" and out["employees"].dtype == float


@pytest.mark.parametrize("text, value", [
    ("$1,234.50", 1234.5), ("€ 12", 12.0), ("1,000,000", 1e6), ("-3,500", -3500.0),
    ("250 USD", 250.0), ("  42 ", 42.0), ("", None), ("   ", None), ("n/a", None), ("NULL", None),
])
def test_outcome_text_read_like_a_spreadsheet(raw, text, value):
    df = raw.copy()
    df["arr"] = df["arr"].astype(str)
    df.loc[0, "arr"] = text
    out = validate_accounts(df, demo_config())
    got = out.loc[0, "arr"]
    assert (pd.isna(got) and value is None) or got == value


@pytest.mark.parametrize("text", ["1,5", "12%", "n/a 12", "1.2.3"])
def test_ambiguous_outcome_text_is_an_error_naming_it(raw, text):
    df = raw.copy()
    df["arr"] = df["arr"].astype(str)
    df.loc[0, "arr"] = text
    with pytest.raises(DataError, match=r"outcome column 'arr' has non-numeric values \(e\.g\. '"):
        validate_accounts(df, demo_config())


def test_yes_no_outcome_is_numeric(raw):
    df = raw.copy()
    df["nps"] = df["churned"].map({True: "No", False: "Yes"})
    out = validate_accounts(df, demo_config())
    assert set(out["nps"].unique()) == {0.0, 1.0}


def test_infinite_outcome_is_named_not_called_constant(raw):
    """Half the outcome infinite and the rest one number: the error is the infinities (the
    constant finite part is not a second problem to fix); all-finite constants still are."""
    df = raw.copy()
    df["arr"] = [float("inf") if i % 2 else 5.0 for i in range(len(df))]
    with pytest.raises(DataError) as err:
        validate_accounts(df, demo_config())
    msg = str(err.value)
    assert f"outcome column 'arr' has {len(df) // 2} infinite value(s)" in msg
    assert "same value" not in msg
    df["arr"] = 5.0
    with pytest.raises(DataError, match=r"outcome column 'arr' has the same value \(5"):
        validate_accounts(df, demo_config())


@pytest.mark.parametrize("values, bad", [
    (["Yes", "No", "unknown", "No", "?"], ["'unknown'", "'?'"]),
    ([0, 1, 2, 1, 0], ["2"]),
    ([" TRUE", "false", "churned", "false", "true"], ["'churned'"]),
])
def test_churn_error_names_only_the_unreadable_values(raw, values, bad):
    """The churn refusal lists the values it cannot read, not valid ones like 'No' or 'Yes'."""
    df = raw.copy()
    df["churned"] = (values * (len(df) // len(values) + 1))[:len(df)]
    with pytest.raises(DataError) as e:
        validate_accounts(df, demo_config())
    (msg,) = [p for p in e.value.problems if "churn column" in p]
    assert f"{len(bad)} other value(s)" in msg
    for b in bad:
        assert b in msg
    for good in ("'Yes'", "'No'", "'false'", "'true'", "'0'", "'1'", " 0,", " 1,"):
        assert good not in msg.split("found", 1)[1]


def test_query_without_duckdb_is_a_usage_error(monkeypatch):
    """--query in an install without DuckDB: exit 2 with the pip command, not 'bad data' (3)."""
    import builtins

    from icpml.data import _duckdb
    from icpml.errors import ConfigError, ExitCode

    real = builtins.__import__

    def no_duckdb(name, *args, **kwargs):
        if name == "duckdb":
            raise ImportError("No module named 'duckdb'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_duckdb)
    with pytest.raises(ConfigError, match="pip install duckdb") as e:
        _duckdb()
    assert e.value.exit_code == ExitCode.CONFIG
