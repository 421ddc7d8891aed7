"""The data contract (icpml.schema): one reading of every value, learned once, applied everywhere."""

from __future__ import annotations

import dataclasses
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icpml.config import NUMBER_FORMAT_NAMES, config_from_dict
from icpml.data import iter_accounts, load_accounts, validate_accounts
from icpml.errors import ConfigError, DataError
from icpml.schema import NUMBER_FORMATS, Schema, coerce, issue_table, learn_schema
from icpml.synthetic import make_accounts


def _cfg(features, *, categorical=(), number_format=None, outcomes=("arr",)):
    d = {"columns": {"id": "id", "features": {"firmographic": list(features)},
                     "categorical": list(categorical),
                     "outcomes": [{"column": c} for c in outcomes]}}
    if number_format is not None:
        d["data"] = {"number_format": number_format}
    return config_from_dict(d)


def _text(d: dict) -> pd.DataFrame:
    return pd.DataFrame(d, dtype="str")


def test_to_dict_is_exactly_the_contract_and_round_trips():
    df = _text({"id": ["a", "b", "c", "d"], "emp": ["1,234", "117", "2,247", None],
                "rev": ["$21.72", "$3.10", "$1,000.00", "$5"], "sso": ["yes", "No", " YES", None],
                "ind": ["SaaS", "saas", "FinTech", " SaaS "], "arr": ["1", "2", "3", "4"]})
    schema = learn_schema(df, _cfg(["emp", "rev", "sso", "ind"]))
    d = schema.to_dict()
    assert d == {"version": 1, "columns": {
        "emp": {"kind": "numeric", "thousands": ",", "decimal": ".", "currency": False, "percent": False,
                "integer": True},
        "rev": {"kind": "numeric", "thousands": ",", "decimal": ".", "currency": True, "percent": False},
        "sso": {"kind": "boolean", "true": ["1", "1.0", "t", "true", "y", "yes"],
                "false": ["0", "0.0", "f", "false", "n", "no"]},
        "ind": {"kind": "categorical", "categories": ["FinTech", "SaaS"], "fold": "spelling_key"},
        "arr": {"kind": "numeric", "thousands": None, "decimal": ".", "currency": False, "percent": False,
                "integer": True},
    }}
    assert Schema.from_dict(json.loads(json.dumps(d))) == schema
    assert Schema.from_dict({}) == Schema() and Schema.from_dict(None).columns == {}
    X, issues = coerce(df, schema)
    assert X["emp"].tolist()[:3] == [1234.0, 117.0, 2247.0] and X["rev"].tolist() == [21.72, 3.1, 1000.0, 5.0]
    assert X["sso"].tolist()[:3] == [True, False, True] and X["ind"].tolist() == ["SaaS", "SaaS", "FinTech", "SaaS"]
    assert issues == []


def test_config_formats_are_the_schema_formats():
    assert set(NUMBER_FORMAT_NAMES) == set(NUMBER_FORMATS)
    with pytest.raises(ConfigError, match="data.number_format.employees"):
        _cfg(["employees"], number_format={"employees": "1.234.5"})
    with pytest.raises(ConfigError, match="data.number_format names 'emplyees'"):
        _cfg(["employees"], number_format={"emplyees": "1.234,5"})
    assert _cfg(["employees"], number_format={"*": "1 234,5"}).data.number_format == {"*": "1 234,5"}


@pytest.mark.parametrize("values, want", [
    (["1,234.5", "12.25", "-3,500", "(1,200)"], [1234.5, 12.25, -3500.0, -1200.0]),   # English
    (["-$1,234.50", "$12.25", "− 3", "USD 7"], [-1234.5, 12.25, -3.0, 7.0]),           # money
    (["1.234,5", "12,25", "1.234.567", "7"], [1234.5, 12.25, 1234567.0, 7.0]),          # German
    (["1 234,5", "12,25", "€ 3,5", "8"], [1234.5, 12.25, 3.5, 8.0]),                    # French
    (["1'234.5", "12.25", "250 USD", "9"], [1234.5, 12.25, 250.0, 9.0]),                # Swiss
    (["4.061", "1.234.567", "117", "12.500"], [4061.0, 1234567.0, 117.0, 12500.0]),      # '.' groups
])
def test_number_formats_are_detected_from_the_whole_column(values, want):
    df = _text({"id": list("abcd"), "x": values, "arr": ["1", "2", "3", "4"]})
    schema = learn_schema(df, _cfg(["x"]))
    X, issues = coerce(df, schema)
    assert X["x"].tolist() == want and issues == [] and schema.warnings == []


def test_an_ambiguous_column_says_so_in_one_line_and_a_declared_format_is_silent():
    df = _text({"id": list("abcd"), "employees": ["4.061", "12.500", "117", "1.000"],
                "arr": ["1", "2", "3", "4"]})
    schema = learn_schema(df, _cfg(["employees"]))
    (w,) = schema.warnings
    assert "\n" not in w and "'employees'" in w and "data.number_format" in w
    assert coerce(df, schema)[0]["employees"].tolist() == [4061.0, 12500.0, 117.0, 1000.0]
    for key in ("employees", "*"):
        declared = learn_schema(df, _cfg(["employees"], number_format={key: "1234.5"}))
        assert declared.warnings == []
        assert coerce(df, declared)[0]["employees"].tolist() == [4.061, 12.5, 117.0, 1.0]
    # the file's other columns decide: a German file reads its '.' as grouping, an English one not
    de = df.assign(rev=["1,5", "2,25", "3", "4"])
    en = df.assign(rev=["1.5", "2.25", "3", "4"])
    assert coerce(de, learn_schema(de, _cfg(["employees", "rev"])))[0]["employees"].iloc[0] == 4061.0
    s_en = learn_schema(en, _cfg(["employees", "rev"]))
    assert coerce(en, s_en)[0]["employees"].iloc[0] == 4.061 and len(s_en.warnings) == 1
    # a German file's integer-only column reads later "4.061" as 4061 too
    ints = de.assign(employees=["117", "12", "900", "4"])
    s_de = learn_schema(ints, _cfg(["employees", "rev"]))
    assert s_de.warnings == [] and s_de.columns["employees"].decimal == ","
    assert coerce(_text({"employees": ["4.061"]}), s_de)[0]["employees"].iloc[0] == 4061.0


def test_one_unreadable_yes_no_cell_is_that_cell_only():
    df = _text({"id": list("abcde"), "sso": ["yes", "no", "yes", "no", "yes"], "arr": list("12345")})
    schema = learn_schema(df, _cfg(["sso"]))
    prospects = _text({"id": list("vwxyz"), "sso": ["yes", "unknown", "No", " YES ", None]})
    X, issues = coerce(prospects, schema)
    assert X["sso"].tolist()[:4] == [True, None, False, True] or X["sso"].isna().tolist() == [
        False, True, False, False, True]
    assert X["sso"].isna().tolist() == [False, True, False, False, True]
    table = issue_table(issues)
    assert table.to_dict("records") == [{"column": "sso", "row": 1, "value": "unknown",
                                         "issue": "not yes/no"}]


def test_numbers_cells_and_typed_input_read_alike():
    df = _text({"id": list("abcd"), "emp": ["1,234", "lots", "", "inf"], "arr": list("1234")})
    schema = Schema.from_dict({"columns": {"emp": {"kind": "numeric", "thousands": ",", "decimal": "."}}})
    X, issues = coerce(df, schema)
    assert X["emp"].isna().tolist() == [False, True, True, True] and X["emp"].iloc[0] == 1234.0
    assert {(i.kind, tuple(i.values)) for i in issues} == {("not a number", ("lots",)), ("infinite", ("inf",))}
    typed = pd.DataFrame({"emp": [1234, 5]})
    assert coerce(typed, schema)[0]["emp"].tolist() == [1234.0, 5.0]
    mixed = pd.DataFrame({"emp": pd.Series([1234.0, "2,000", None], dtype=object)})
    assert coerce(mixed, schema)[0]["emp"].tolist()[:2] == [1234.0, 2000.0]


def test_coerce_is_idempotent_and_never_mutates():
    raw = make_accounts(200, seed=5)
    cfg = config_from_dict({"columns": {"id": "account_id", "features": {
        "firmographic": ["industry", "employees", "annual_revenue_musd"],
        "procurement": ["requires_onprem"]}, "outcomes": [{"column": "arr"}]}})
    before = raw.copy(deep=True)
    schema = learn_schema(raw, cfg)
    once, _ = coerce(raw, schema)
    twice, issues = coerce(once, schema)
    pd.testing.assert_frame_equal(once, twice)
    pd.testing.assert_frame_equal(raw, before)
    assert issues == []


def test_ids_are_text_exactly_as_written(tmp_path):
    p = tmp_path / "a.csv"
    rows = ["0000100000", "100000", "0000100002", "007"]
    pd.DataFrame({"id": rows, "emp": [1, 2, 3, 4]}).to_csv(p, index=False)
    assert load_accounts(p, text=True)["id"].tolist() == rows
    (chunk,) = list(iter_accounts(p, 10, text=["id"]))
    assert chunk["id"].tolist() == rows and chunk["emp"].tolist() == [1, 2, 3, 4]


def test_duplicate_csv_headers_are_an_error_before_pandas_renames_them(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("id,Industry,Industry,arr\n1,a,b,3\n", encoding="utf-8")
    msg = f"{p}: duplicate column name(s) Industry; make the header unique"
    for read in (lambda: load_accounts(p), lambda: load_accounts(p, text=True),
                 lambda: list(iter_accounts(p, 10)), lambda: list(iter_accounts(p, 10, ["id"]))):
        with pytest.raises(DataError) as e:
            read()
        assert str(e.value) == msg
    ok = tmp_path / "b.csv.gz"  # a genuine "Industry.1", compressed: no error
    pd.DataFrame({"Industry": ["a"], "Industry.1": ["b"]}).to_csv(ok, index=False)
    assert list(load_accounts(ok).columns) == ["Industry", "Industry.1"]
    latin = tmp_path / "c.csv"
    latin.write_bytes("id,Région,Région\n1,a,b\n".encode())
    with pytest.raises(DataError, match="duplicate column name"):
        load_accounts(latin)


def test_validation_reads_with_the_schema_and_reports_the_cells():
    df = _text({"id": [f"a{i}" for i in range(60)], "emp": ["1,234"] * 59 + ["lots"],
                "arr": [str(i) for i in range(60)]})
    with pytest.raises(DataError, match=r"feature column 'emp' mixes numbers and text \(e\.g\. 'lots'\)"):
        validate_accounts(df, _cfg(["emp"]))
    ok = validate_accounts(df.assign(emp=["4.061"] * 30 + ["1.234.567"] * 30), _cfg(["emp"]))
    assert ok["emp"].iloc[0] == 4061.0 and ok["id"].dtype == "string"


# ----------------------------------------------------------------------------- property
def _fmt_number(v: float, style: str, money: bool) -> str:
    text = f"{v:,.2f}" if style != "plain" else repr(v)
    if style == "eu":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return f"${text}" if money else text


@st.composite
def _messy(draw):
    n = draw(st.integers(4, 30))
    style = draw(st.sampled_from(["en", "eu", "plain"]))
    money = draw(st.booleans())
    nums = draw(st.lists(st.one_of(st.none(), st.just("n/a"), st.just("--"),
                                   st.floats(-1e7, 1e7, allow_nan=False).map(lambda v: round(v, 2))),
                         min_size=n, max_size=n))
    cells = [v if v is None or isinstance(v, str) else _fmt_number(v, style, money) for v in nums]
    bools = draw(st.lists(st.sampled_from(["yes", "No", " TRUE", "f", "1", "0", None, "unknown"]),
                          min_size=n, max_size=n))
    cats = draw(st.lists(st.sampled_from(["SaaS", "saas", " SaaS ", "FinTech", "fintech", None, "  ",
                                          "Retail"]), min_size=n, max_size=n))
    codes = draw(st.lists(st.sampled_from(["01", "1", "007", "1.50", "TRUE", None]), min_size=n, max_size=n))
    return pd.DataFrame({"id": [f"{i:05d}" for i in range(n)], "num": cells, "flag": bools,
                         "ind": cats, "code": codes, "arr": [str(i) for i in range(n)]})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messy(), st.integers(1, 7))
def test_scoring_reads_every_cell_as_discovery_whatever_the_chunks(frame, rows):
    """Discovery (whole file as text) and scoring (streamed chunks, reader-typed plain numbers)
    read every cell identically, and report the same cells."""
    cfg = _cfg(["num", "flag", "ind", "code"], categorical=["code"])
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.csv"
        frame.to_csv(p, index=False)
        raw = load_accounts(p, text=True)
        schema = learn_schema(raw, cfg)
        schema = Schema.from_dict(json.loads(json.dumps(schema.to_dict())))  # as stored
        whole, issues = coerce(raw, schema)
        parts, cells = [], []
        for chunk in iter_accounts(p, rows, text=["id", *schema.text_columns()]):
            X, iss = coerce(chunk, schema)
            parts.append(X)
            cells += [c for i in iss for c in i.cells()]
    streamed = pd.concat(parts)
    for c in ("num", "flag", "ind", "code"):
        pd.testing.assert_series_equal(whole[c], streamed[c], check_dtype=c != "num")
    assert streamed["id"].tolist() == frame["id"].tolist()
    assert sorted(map(str, cells)) == sorted(str(c) for i in issues for c in i.cells())


# ----------------------------------------------------------------------------- the scorer
def test_a_scorer_reads_spreadsheet_numbers_as_discovery_did(small_discovery, tmp_path):
    """Train/serve skew, on generated data: "1,234" and "$21.72" score as 1234 and 21.72."""
    scorer = small_discovery.scorer
    plain = make_accounts(300, seed=44)
    sheet = plain.astype({"employees": object, "annual_revenue_musd": object})
    sheet["employees"] = [f"{v:,}" for v in plain["employees"]]
    sheet["annual_revenue_musd"] = [None if pd.isna(v) else f"${v:,.2f}" for v in plain["annual_revenue_musd"]]
    plain = plain.assign(annual_revenue_musd=plain["annual_revenue_musd"].round(2))
    outs = []
    for name, table in (("plain.csv", plain), ("sheet.csv", sheet)):
        table.to_csv(tmp_path / name, index=False)
        for rows in (37, 1000):
            stream = iter_accounts(tmp_path / name, rows, [scorer.id_column, *scorer.input_columns],
                                   text=scorer.text_columns)
            outs.append(pd.concat(scorer.score_batches(stream), ignore_index=True))
    for out in outs[1:]:
        assert np.abs(out["fit_score"] - outs[0]["fit_score"]).max() < 1e-12
        assert (out["icp_match"] == outs[0]["icp_match"]).all() and (out["tier"] == outs[0]["tier"]).all()
        assert (out["data_issues"] == "").all()


def test_the_schema_travels_with_the_scorer_and_old_scorers_still_score(small_discovery):
    scorer = small_discovery.scorer
    assert scorer.schema is small_discovery.schema and small_discovery.schema is not None
    assert set(scorer.input_columns) <= set(scorer.schema.columns)
    back = pickle.loads(pickle.dumps(scorer))
    assert back.schema == scorer.schema
    state = {k: v for k, v in scorer.__getstate__().items() if k != "schema"}  # pickled before schemas
    old = object.__new__(type(scorer))
    old.__dict__.update(state)
    assert old.schema is None
    prospects = make_accounts(80, seed=9)
    a, b = scorer.score(prospects), old.score(prospects)
    pd.testing.assert_frame_equal(a, b)
    sheet = prospects.astype({"employees": object})
    sheet["employees"] = [f"{v:,}" for v in prospects["employees"]]
    pd.testing.assert_series_equal(old.score(sheet)["fit_score"], a["fit_score"])
    assert dataclasses.replace(scorer, schema=None).text_columns[0] == scorer.id_column


def test_null_words_are_missing_in_numbers_and_flags_but_values_in_categories(tmp_path):
    """A CRM export's "NA" region (North America) and "None" ERP are categories, read the same
    way at discovery and at scoring; "N/A" / "null" in a number or yes/no column are missing,
    without a data issue (pandas' default would have read all of them as missing)."""
    src = tmp_path / "a.csv"
    pd.DataFrame({"id": ["001", "002", "003", "004"], "region": ["NA", "EMEA", "NA", "APAC"],
                  "erp": ["None", "SAP", "Oracle", "None"], "employees": ["1,200", "N/A", "35", "null"],
                  "sso": ["Yes", "n/a", "No", "yes"]}).to_csv(src, index=False)
    cfg = _cfg(["region", "erp", "employees", "sso"])
    raw = load_accounts(src, text=True)
    schema = learn_schema(raw, cfg)
    kinds = {c: schema.columns[c].kind for c in ("region", "erp", "employees", "sso")}
    assert kinds == {"region": "categorical", "erp": "categorical", "employees": "numeric",
                     "sso": "boolean"}
    typed, issues = coerce(raw, schema)
    assert typed["region"].tolist() == ["NA", "EMEA", "NA", "APAC"]
    assert typed["erp"].tolist() == ["None", "SAP", "Oracle", "None"]
    assert typed["employees"].tolist()[0] == 1200 and typed["employees"].isna().tolist() == [False, True, False, True]
    assert typed["sso"].isna().tolist() == [False, True, False, False]
    assert issue_table(issues).empty
    streamed = next(iter_accounts(src, 2, text=["id"]))  # scoring's read: the same values
    assert streamed["region"].tolist() == ["NA", "EMEA"] and streamed["erp"].tolist() == ["None", "SAP"]


@pytest.mark.parametrize("cell", ["1.234", "12.500", "-3.000"])
def test_a_thousands_dot_in_a_column_of_whole_numbers_is_flagged_not_silently_read(cell):
    """Discovery saw whole numbers (no grouping); a prospect's "1.234" may be 1234 (a European
    file) or 1.234: it is read as the schema says and flagged, the other cells are not."""
    train = _text({"id": list("abcd"), "employees": ["120", "1500", "80", "42"], "arr": list("1234")})
    schema = learn_schema(train, _cfg(["employees"]))
    assert schema.columns["employees"].integer and schema.columns["employees"].thousands is None
    prospects = _text({"id": ["p", "q", "r"], "employees": [cell, "75", "2.5"]})
    X, issues = coerce(prospects, schema, columns=["employees"])
    assert X["employees"].tolist()[1:] == [75.0, 2.5]
    (issue,) = issues
    assert (issue.column, issue.kind, issue.rows.tolist()) == ("employees", "ambiguous number",
                                                                [True, False, False])
    # a column with decimals at discovery, or a declared grouping: nothing to flag
    dec = learn_schema(_text({"id": list("ab"), "employees": ["1.5", "2"], "arr": ["1", "2"]}),
                       _cfg(["employees"]))
    assert not dec.columns["employees"].integer
    assert coerce(prospects, dec, columns=["employees"])[1] == []
    # two dots cannot be a decimal: that cell is unreadable, not ambiguous
    many = coerce(_text({"id": ["p"], "employees": ["1.234.567"]}), schema, columns=["employees"])[1]
    assert [i.kind for i in many] == ["not a number"]


def test_the_scoring_warning_and_row_words_name_an_ambiguous_number():
    from icpml.scoring import DataIssue, _IssueTally

    issue = DataIssue("employees", "ambiguous number", np.array([True, False]),
                      pd.Series(["1.234"], index=[0]))
    tally = _IssueTally()
    tally.add([issue], 2)
    msg = tally.message()
    assert msg.startswith("column 'employees': 1 value(s) (e.g. '1.234') read with '.' as the decimal point")
    assert "1234" in msg and "employees '1.234' read with '.'" in issue.words("1.234")
