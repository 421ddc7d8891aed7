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
