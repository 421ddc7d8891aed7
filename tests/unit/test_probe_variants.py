"""Variants of the shared failing cases, built the way other users' data differ.

Each test takes one case kind (``shared/cases``) and feeds icpml an input of the same kind
that differs in a way a real export would (another spelling, another column, another
credential shape), asserting the right value computed by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

from icpml.config import config_from_dict
from icpml.data import validate_accounts
from icpml.errors import DataError, redact


def _cfg(features: list[str]) -> object:
    return config_from_dict({
        "columns": {"id": "account_id", "features": {"firmographic": features},
                    "outcomes": [{"column": "arr", "direction": "higher"}]},
    })


# ------------------------------------------------------------- duplicate-header-silent
@pytest.mark.parametrize("twin", ["industry", "Industry ", " INDUSTRY", "INDUSTRY\t"])
def test_header_repeated_up_to_case_or_spacing_is_an_error(twin):
    df = pd.DataFrame({"account_id": ["a", "b"], "Industry": ["SaaS", "Retail"],
                       twin: ["FinTech", "SaaS"], "arr": ["1", "2"]})
    with pytest.raises(DataError) as e:
        validate_accounts(df, _cfg(["Industry"]))
    assert f"column 'Industry' is repeated as {twin!r}" in str(e.value)
    assert "\n" not in str(e.value)
    before = df.copy()
    assert df.equals(before)


def test_unused_near_duplicate_header_is_left_alone():
    # a repeated label the config does not use cannot change the result
    n = 40
    df = pd.DataFrame({"account_id": [f"a{i}" for i in range(n)],
                       "Industry": ["SaaS", "Retail"] * (n // 2), "notes": ["x"] * n,
                       "Notes ": ["z"] * n, "arr": [str(i) for i in range(n)]})
    out = validate_accounts(df, _cfg(["Industry"]))
    assert out["Industry"].tolist() == ["SaaS", "Retail"] * (n // 2)


# ------------------------------------------------------------- secret-redaction-gaps
@pytest.mark.parametrize("text, secret", [
    ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=abcd1234==;EndpointSuffix=x",
     "abcd1234"),
    ("Endpoint=sb://x/;SharedAccessKeyName=Root;SharedAccessKey=Zm9vYmFy=", "Zm9vYmFy"),
    ("CREATE SECRET (TYPE AZURE, CONNECTION_STRING 'AccountName=a;AccountKey=Zq9')", "Zq9"),
    ("cannot reach store with ghp_AbCdEfGhIjKlMnOpQrSt123", "ghp_AbCd"),
    ("glpat-AbCdEfGhIjKlMnOpQr rejected", "glpat-"),
    ("slack xoxb-1234-5678-abcdefghijkl", "xoxb-"),
    ("key sk-proj-abcdefghijklmnopqrstuvwx expired", "sk-proj"),
    ("s3 AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
    ("databricks dapi0123456789abcdef0123", "dapi0123"),
])
def test_other_credential_shapes_are_redacted(text, secret):
    assert secret not in redact(text)
    assert "***" in redact(text)


@pytest.mark.parametrize("text", ["industry sk-1 in {SaaS}", "ghp_short", "AKIA123",
                                  "column 'api_key': 3 non-numeric values"])
def test_ordinary_text_is_not_redacted(text):
    assert redact(text) == text


# ------------------------------------------------------------- tz-aware-deal-dates
def _deals_window(tmp_path, dates: list[str], after: str | None = None):
    from icpml.adapters.crm import crm_accounts
    from icpml.config import OpportunitiesConfig

    acc = pd.DataFrame({"account_id": ["A1", "A2"]})
    opp = pd.DataFrame({"account_id": ["A1"] * len(dates), "stage": ["won"] * len(dates),
                        "amount": ["10"] * len(dates), "closed": dates})
    spec = OpportunitiesConfig(path="x.csv", account="account_id", stage="stage", won=["won"],
                               lost=["lost"], amount="amount", date="closed", after=after)
    return crm_accounts(acc, opp, spec, id_column="account_id")


@pytest.mark.parametrize("dates, after, want", [
    # European day-first export: 13/04 proves day-first, so 02/04 is 2 April, not 4 February
    (["13/04/2024", "02/04/2024", "20/01/2024"], "2024-03-01", 2),
    # US month-first: 04/13 proves it, so 02/04 is 4 February (before the window)
    (["04/13/2024", "02/04/2024", "01/20/2024"], "2024-03-01", 1),
    # dotted German dates are day-first: 01.04.2024 is 1 April
    (["01.04.2024", "12.02.2024 14:30", "05.03.2024"], "2024-03-01", 2),
    # offsets of another zone (Asia/Kolkata, US Pacific), converted to UTC before the bound
    (["2024-03-01T04:00:00+05:30", "2024-02-29T17:00:00-08:00"], "2024-03-01", 1),
    # Unix milliseconds (HubSpot API) and seconds
    (["1712880000000", "1704067200000"], "2024-03-01", 1),
    (["1712880000", "1704067200"], "2024-03-01", 1),
])
def test_deal_dates_in_other_formats_are_read_per_column(tmp_path, dates, after, want):
    out = _deals_window(tmp_path, dates, after)
    assert out.set_index("account_id").loc["A1", "n_won"] == want


def test_day_and_month_first_mixed_in_one_column_is_one_line_error(tmp_path):
    with pytest.raises(DataError, match=r"column 'closed' \(data.opportunities.date\) has 2 "
                                        r"unreadable date\(s\)"):
        _deals_window(tmp_path, ["13/04/2024", "04/13/2024"], None)


def test_date_reader_decides_day_first_per_column():
    from icpml.schema import read_dates

    s = pd.Series(["13/04/2024", "02/04/2024", " ", "N/A", "2024-04-02T00:00:00+02:00"])
    got = read_dates(s)
    assert [str(t.date()) if pd.notna(t) else None for t in got] == [
        "2024-04-13", "2024-04-02", None, None, "2024-04-01"]


# ------------------------------------------------------------- call-duration-becomes-icp
def _leaky_accounts(n: int = 600, seed: int = 11) -> tuple[pd.DataFrame, pd.Series]:
    import numpy as np

    rng = np.random.default_rng(seed)
    industry = rng.choice(["SaaS", "Retail", "FinTech", "Manufacturing"], n, p=[.3, .3, .2, .2])
    arr = np.where(industry == "SaaS", 30000, 10000) * rng.lognormal(0, .5, n)
    q = pd.Series(arr).rank(pct=True).to_numpy()
    df = pd.DataFrame({
        "industry": industry, "employees": rng.lognormal(5, 1, n).round(),
        # post-outcome measures, each about as informative as Bank Marketing's call duration
        "LastContactDays": (100 * np.clip(1 - q + rng.normal(0, .35, n), 0, 2)).round(),
        "TimeOnCall": (300 * np.clip(q + rng.normal(0, .35, n), .05, 2)).round(),
        "CSMNotesCount": rng.poisson(3 + 6 * np.clip(q + rng.normal(0, .35, n), 0, 1.5)),
    })
    best = q >= .75
    worst = q <= .25
    y = pd.Series(best[best | worst], index=df.index[best | worst])
    return df, y


@pytest.mark.parametrize("leak", ["LastContactDays", "TimeOnCall", "CSMNotesCount"])
def test_camelcase_post_outcome_columns_are_set_aside(leak):
    from icpml.features import screen_columns

    df, y = _leaky_accounts()
    cols = ["industry", "employees", leak]
    kinds = {"industry": "categorical", "employees": "numeric", leak: "numeric"}
    screen = screen_columns(df[cols], kinds, y)
    assert list(screen.excluded) == [leak]
    assert "named like a post-sale or contact-outcome measure" in screen.excluded[leak]


@pytest.mark.parametrize("name, flagged", [
    ("DaysToRenewal", True), ("Days To Renewal", True), ("time-on-call", True),
    ("OnboardingStatus", True), ("SupportTickets", True), ("NPS", True),
    ("total_minutes_on_website", False), ("avg_ticket_value", False), ("TechSupport", False),
    ("Contract", False), ("funding_stage", True), ("industry", False),
])
def test_leak_names_in_any_naming_style(name, flagged):
    from icpml.features import _leak_named

    assert _leak_named(name) is flagged


# ------------------------------------------------------------- csv-formula-injection
@pytest.mark.parametrize("dtype", ["str", object])
def test_formula_cells_after_spaces_or_in_full_width_are_neutralised(tmp_path, dtype):
    from icpml._io import write_table

    vals = [" =1+1", "  @SUM(A1)", "\n=cmd", "\uff1dHYPERLINK(\"x\")", "\uff0b1", "+1+1",
            "\t=1", " -12", "+3.5", " plain", "a=b"]
    df = pd.DataFrame({"id": [f"0{i}" for i in range(len(vals))],
                       "v": pd.Series(vals, dtype=dtype)})
    before = df.copy()
    out = tmp_path / "o.csv"
    write_table(df, out)
    back = pd.read_csv(out, dtype=str, keep_default_na=False)["v"].tolist()
    want = ["'" + v for v in vals[:7]] + vals[7:]
    assert back == want
    assert df.equals(before)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_prospect_header_repeated_up_to_case_is_an_error_when_scoring(tmp_path, suffix):
    from icpml.data import iter_accounts

    df = pd.DataFrame({"account_id": ["01", "02"], "Industry": ["SaaS", "Retail"],
                       "industry ": ["FinTech", "SaaS"]})
    p = tmp_path / f"prospects{suffix}"
    df.to_csv(p, index=False) if suffix == ".csv" else df.to_parquet(p, index=False)
    with pytest.raises(DataError, match="column 'Industry' is repeated as 'industry '"):
        list(iter_accounts(p, 10, ["account_id", "Industry"]))
    # a repeated label scoring does not read is left alone
    assert [len(c) for c in iter_accounts(p, 10, ["account_id"])] == [2]


# ------------------------------------------------------------- kill9-orphans (score output)
def test_temp_file_of_a_killed_writer_is_swept_by_the_next_write(tmp_path):
    import os
    import subprocess
    import sys

    from icpml._io import write_table

    out = tmp_path / "scored [1].csv"  # glob characters in the name are literal
    # a writer killed mid-write leaves .<name>.<pid>.<random>.tmp; its pid is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".{out.name}.{dead}.abc123.tmp"
    stale.write_text("half")
    alive = tmp_path / f".{out.name}.{os.getppid()}.def456.tmp"  # a live writer's: kept
    alive.write_text("busy")
    other = tmp_path / ".notes.csv.1.x.tmp"  # another file's: not ours to judge
    other.write_text("x")
    write_table(pd.DataFrame({"id": ["007"]}), out)
    assert pd.read_csv(out, dtype=str)["id"].tolist() == ["007"]
    assert not stale.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name, alive.name, other.name])


@pytest.mark.parametrize("name", ["accessToken", "clientSecret", "dbPassword", "AuthToken",
                                  "privateKey", "sasToken", "AccountKey"])
def test_camelcase_secret_settings_are_redacted(name):
    from icpml.errors import redact_setting

    assert redact_setting(f"data.options.{name}", "Hunter2") == "***"
    assert redact(f'{{"{name}": "Hunter2"}}') == f'{{"{name}": "***"}}'
    assert redact(f"{name}=Hunter2;Server=x") == f"{name}=***;Server=x"


@pytest.mark.parametrize("name", ["monkey", "keynote", "keyfile", "TokenCount"])
def test_words_merely_containing_key_or_token_are_kept(name):
    assert redact(f"{name}=Hunter2") == f"{name}=Hunter2"
