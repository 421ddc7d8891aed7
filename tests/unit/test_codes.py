"""Numeric codes, zero-padded digit codes and compatibility spellings: one reading everywhere.

* The operator table: every operator, and the code sets (``channel = 2``,
  ``risk_class in {1, 4}``), selects the same rows as the mask in SQL (DuckDB and SQLite,
  typed and text tables) and in pandas, and reads as the words say.
* A numeric column of 2-10 integers is a code in the schema learned at discovery; a
  prospect's ``2``, ``2.0`` and ``"2"`` meet ``channel = 2``.
* Digit codes ('02', '007'): the CSV read the way a user reads it (``pd.read_csv``
  defaults, DuckDB's sniffer typing the column INT) and the exported filter select the
  rows icpml's own reading selects.
* Full-width spellings ('Ｓａｌｅｓｆｏｒｃｅ') are one category with 'Salesforce' in
  the schema, the mask and every export.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from test_exports import _marks, assert_exports_select

from icpml._vocab import MISSING
from icpml.config import config_from_dict
from icpml.criteria import CriteriaSet, Criterion
from icpml.criteria.rule import OPERATORS
from icpml.schema import Schema, coerce, learn_schema, numeric_codes

duckdb = pytest.importorskip("duckdb")


def _cfg(features: list[str], categorical: list[str] = ()):
    return config_from_dict({"columns": {"id": "id", "features": {"firmographic": features},
                                         "categorical": list(categorical),
                                         "outcomes": [{"column": "arr"}]}})


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    risk = rng.integers(1, 6, n).astype(float)
    risk[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "id": [f"a{i}" for i in range(n)],
        "risk_class": risk,
        "employees": np.round(np.exp(rng.normal(5, 1, n))),
        "industry": rng.choice(["SaaS", "saas ", "FinTech", "Media", None], n),
        "onprem": rng.choice(["yes", "no", None], n),
        "arr": rng.normal(100, 10, n).round(1),
    })


# ----------------------------------------------------------------------------- operator table
_EVERY = [
    Criterion("icp", "risk_class", "in", values=(1, 4)),
    Criterion("icp", "risk_class", "==", values=(3,)),
    Criterion("icp", "risk_class", "not_in", values=(2, 5)),
    Criterion("icp", "risk_class", "in", values=(1, MISSING)),
    Criterion("icp", "employees", "between", low=100, high=400),
    Criterion("icp", "employees", ">=", low=150),
    Criterion("icp", "employees", ">", low=150),
    Criterion("icp", "employees", "<=", high=90),
    Criterion("icp", "employees", "<", high=90),
    Criterion("icp", "risk_class", "is_missing"),
    Criterion("icp", "industry", "in", values=("SaaS", "Media")),
    Criterion("icp", "industry", "==", values=("FinTech",)),
    Criterion("icp", "industry", "not_in", values=("SaaS",)),
    Criterion("icp", "industry", "is_missing"),
    Criterion("icp", "onprem", "==", values=("True",)),
]


def test_every_operator_is_in_the_round_trip():
    assert {c.op for c in _EVERY} == set(OPERATORS)


@pytest.mark.parametrize("crit", _EVERY, ids=lambda c: c.describe())
def test_operator_mask_sql_pandas_agree(crit):
    raw = _table()
    schema = learn_schema(raw, _cfg(["risk_class", "employees", "industry", "onprem"]))
    assert schema.columns["risk_class"].codes == (1, 2, 3, 4, 5)
    cs = CriteriaSet(icp=[crit], schema=schema.to_dict())
    X, _ = coerce(raw, schema)
    marks = _marks(cs, X)
    assert 0 < len(marks["icp"]) < len(raw)
    assert_exports_select(cs, raw, marks)
    # the JSON round trip gives the same criterion, the same rows
    back = CriteriaSet.from_dict(json.loads(cs.to_json()))
    assert back.icp == cs.icp and _marks(back, X) == marks


def test_code_sets_read_as_values_in_words_sql_pandas_json():
    one = Criterion("icp", "channel", "==", values=(2.0,))
    pair = Criterion("icp", "risk_class", "in", values=(4, np.int64(1)))
    assert one.describe() == "channel = 2" and one.values == (2,)
    assert pair.describe() == "risk_class in {1, 4}" and pair.values == (1, 4)
    assert pair.to_sql(dialect="duckdb").endswith("IN (1, 4)")
    # the cell read as a number first (a text column of '1', 'N/A' cells), then the set
    assert pair.to_pandas().startswith("`risk_class`.astype(\"string\")")
    assert pair.to_pandas().endswith('.astype("float").isin([1, 4])')
    assert pair.to_pandas(code=True).startswith('df["risk_class"].astype("string")')
    assert pair.to_pandas(code=True).endswith('.isin([1, 4])')
    d = pair.to_dict()
    assert d["values"] == [1, 4] and all(type(v) is int for v in d["values"])
    assert d["text"] == "risk_class in {1, 4}"
    assert Criterion.from_dict(json.loads(json.dumps(d))) == pair
    assert pair.reason(4.0) == "risk_class 4 is in {1, 4}"
    assert pair.reason("2") == "risk_class 2 is not in {1, 4}"
    assert one.reason(2) == "channel is 2"
    assert Criterion("anti_icp", "risk_class", "not_in", values=(1, 4)).describe() == "risk_class not in {1, 4}"


def test_a_one_value_band_reads_as_the_value():
    assert Criterion("icp", "channel", "between", low=2, high=2).describe() == "channel = 2"


def test_a_prospects_2_2point0_and_text_2_meet_channel_2():
    train = pd.DataFrame({"id": range(40), "channel": [1, 2] * 20, "arr": range(40)})
    schema = learn_schema(train, _cfg(["channel"]))
    assert schema.to_dict()["columns"]["channel"]["codes"] == [1, 2]
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))).columns["channel"].codes == (1, 2)
    cs = CriteriaSet(icp=[Criterion("icp", "channel", "==", values=(2,))], schema=schema.to_dict())
    for cells in ([2, 1, 2], [2.0, 1.0, 2.0], ["2", "1", " 2 "], ["2.0", "1", "2"]):
        X, issues = coerce(pd.DataFrame({"channel": cells}), schema)
        assert not issues
        assert cs.icp_mask(X).tolist() == [True, False, True], cells


@pytest.mark.parametrize(("values", "codes"), [
    ([1, 2] * 10, (1, 2)),
    ([3, 1, 5, 2, 4] * 6, (1, 2, 3, 4, 5)),
    (list(range(1, 11)) * 5, tuple(range(1, 11))),
    (list(range(1, 12)) * 5, ()),  # 11 distinct values: a measure
    ([1.5, 2.5] * 10, ()),  # not integers
    ([1, 2, 3, 4], ()),  # too few cells per value
    ([7] * 20, ()),  # one value
])
def test_when_a_numeric_column_is_a_code(values, codes):
    assert numeric_codes(np.array(values, dtype=float)) == codes


def test_a_yes_no_0_1_column_stays_boolean_and_a_measure_has_no_codes():
    rng = np.random.default_rng(1)
    raw = pd.DataFrame({"id": range(200), "flag": rng.integers(0, 2, 200),
                        "employees": rng.integers(1, 5000, 200), "arr": rng.normal(size=200)})
    schema = learn_schema(raw, _cfg(["flag", "employees"]))
    assert schema.columns["flag"].kind == "boolean"
    assert schema.columns["employees"].codes == ()
    assert "codes" not in schema.to_dict()["columns"]["employees"]


def test_code_candidates_name_non_adjacent_values():
    from icpml.criteria.propose import _numeric_candidates

    rng = np.random.default_rng(3)
    x = pd.Series(rng.integers(1, 6, 1000).astype(float))
    s = pd.Series(np.where(x.isin([1, 4]), 0.4, -0.2) + rng.normal(0, 0.02, 1000))
    cands = _numeric_candidates("risk_class", x, s, 1, "numeric", "fit_model", 20)
    assert cands[0].describe() == "risk_class in {1, 4}"
    assert all(c.op == "in" for c in cands)
    anti = _numeric_candidates("risk_class", x, s, -1, "numeric", "fit_model", 20)
    assert {c.describe() for c in anti} >= {"risk_class = 2", "risk_class in {2, 3, 5}"}


def test_stability_matches_code_sets_by_overlap():
    from icpml.stability import criteria_match

    x = pd.DataFrame({"risk_class": np.arange(100) % 5 + 1.0})
    final = Criterion("icp", "risk_class", "in", values=(1, 4))
    other = Criterion("icp", "risk_class", "in", values=(1.0, 4.0, 5.0))
    assert criteria_match(final, other, final.mask(x).to_numpy(), other.mask(x).to_numpy())
    third = Criterion("icp", "risk_class", "in", values=(2,))
    assert not criteria_match(final, third, final.mask(x).to_numpy(), third.mask(x).to_numpy())


def test_a_hypothesis_code_set_stays_numeric():
    from icpml.hypothesis import load_hypothesis

    cs = load_hypothesis({"icp": [{"column": "risk_class", "op": "in", "values": [4, 1]}]})
    (c,) = cs.icp
    assert c.values == (1, 4) and c.describe() == "risk_class in {1, 4}"
    x = pd.DataFrame({"risk_class": [1.0, 2.0, 4.0, np.nan]})
    assert c.mask(x).tolist() == [True, False, True, False]


def test_a_hypothesis_code_written_as_text_reads_as_the_number():
    from icpml.hypothesis import load_hypothesis

    schema = {"version": 1, "columns": {"risk_class": {"kind": "numeric", "codes": [1, 2, 4]}}}
    cs = load_hypothesis({"icp": [{"column": "risk_class", "op": "in", "values": ["4", "1"]}]})
    cs.schema = schema
    x = pd.DataFrame({"risk_class": [1.0, 2.0, 4.0, np.nan]})
    assert cs.icp_mask(x).tolist() == [True, False, True, False]
    assert cs.to_sql()["icp"].endswith("IN (1, 4)")
    assert x.query(cs.to_pandas()["icp"], engine="python").index.tolist() == [0, 2]


def test_fit_set_keeps_a_code_set_numeric():
    from icpml.criteria.bands import fit_set

    rng = np.random.default_rng(5)
    n = 3000
    x = pd.DataFrame({"risk_class": rng.integers(1, 6, n).astype(float)})
    best = (rng.random(n) < np.where(x["risk_class"].isin([2, 5]), 0.7, 0.1))
    c = fit_set(Criterion("icp", "risk_class", "in", values=(2,)), x, best, np.ones(n, bool), 50)
    assert c.values == (2, 5) and c.describe() == "risk_class in {2, 5}"


# ----------------------------------------------------------------------------- digit codes
def _digit_table(seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Zero-padded region codes of random widths (text, as a CRM exports them)."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 5))
    codes = sorted({str(int(v)).zfill(width) for v in rng.choice(np.arange(0, 60), 8, replace=False)})
    n = 80
    region = rng.choice(codes, n).astype(object)
    region[rng.random(n) < 0.1] = None
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "region": region,
                         "arr": rng.normal(50, 5, n).round(2)}), codes


@pytest.mark.parametrize("seed", range(4))
def test_digit_codes_export_selects_what_icpml_selects(seed, tmp_path):
    raw, codes = _digit_table(seed)
    schema = learn_schema(raw, _cfg(["region"]))
    assert schema.columns["region"].kind == "categorical"
    rng = np.random.default_rng(100 + seed)
    chosen = tuple(sorted(rng.choice(codes, 3, replace=False)))
    cs = CriteriaSet(icp=[Criterion("icp", "region", "in", values=chosen)],
                     anti_icp=[Criterion("anti_icp", "region", "==", values=(codes[-1],))]
                     if codes[-1] not in chosen else [], schema=schema.to_dict())
    path = tmp_path / "prospects.csv"
    raw.to_csv(path, index=False)
    # icpml's reading (the scorer reads these columns as text: Schema.text_columns)
    assert "region" in schema.text_columns()
    text = pd.read_csv(path, dtype={"region": "string"}, keep_default_na=False, na_values=[""])
    X, _ = coerce(text, schema)
    want = _marks(cs, X)
    assert want["icp"], chosen
    # the user's reading: pandas defaults turn '007' into 7 (or 7.0 beside blanks)
    df = pd.read_csv(path)
    assert pd.api.types.is_numeric_dtype(df["region"])
    for side in ("icp", "anti_icp"):
        got = df.query(cs.to_pandas()[side], engine="python").index.tolist()
        assert got == want[side], (side, cs.to_pandas()[side])
        assert np.flatnonzero(eval(cs.to_pandas(code=True)[side])).tolist() == want[side]
        # DuckDB as it sniffs the file (text) and with the column typed BIGINT (a warehouse
        # table); SQLite with an INTEGER column
        where = cs.to_sql()[side]
        for types in ("", ", types={'region': 'BIGINT'}"):
            con = duckdb.connect()
            con.execute("CREATE TABLE t AS SELECT row_number() OVER () - 1 AS i, * "
                        f"FROM read_csv('{path}'{types})")
            got = sorted(r[0] for r in con.execute(f"SELECT i FROM t WHERE {where}").fetchall())
            assert got == want[side], (types, where)
        con = sqlite3.connect(":memory:")
        con.execute('CREATE TABLE t (i INTEGER, region INTEGER)')
        con.executemany("INSERT INTO t VALUES (?, ?)",
                        [(i, None if pd.isna(v) else int(v)) for i, v in enumerate(df["region"])])
        got = sorted(r[0] for r in con.execute(f"SELECT i FROM t WHERE {cs.to_sql('sqlite')[side]}"))
        assert got == want[side]
    # and icpml itself reads a typed 7 as '007'
    X2, issues = coerce(df, schema)
    assert not [i for i in issues if i.kind == "unseen"]
    assert _marks(cs, X2) == want


def test_colliding_digit_codes_are_compared_as_written():
    raw = pd.DataFrame({"id": range(30), "zone": ["02", "2", "10"] * 10, "arr": range(30)})
    schema = learn_schema(raw, _cfg(["zone"]))
    cs = CriteriaSet(icp=[Criterion("icp", "zone", "in", values=("02",))], schema=schema.to_dict())
    X, _ = coerce(raw, schema)
    assert _marks(cs, X)["icp"] == list(range(0, 30, 3))
    assert_exports_select(cs, raw, _marks(cs, X))


# ----------------------------------------------------------------------------- NFKC
def test_full_width_spelling_is_one_category_everywhere():
    rng = np.random.default_rng(7)
    n = 120
    crm = rng.choice(["Salesforce", "Ｓａｌｅｓｆｏｒｃｅ", "HubSpot", "ＨｕｂＳｐｏｔ", "Pipedrive"], n)
    raw = pd.DataFrame({"id": range(n), "crm": crm, "arr": rng.normal(size=n)})
    schema = learn_schema(raw, _cfg(["crm"]))
    spec = schema.columns["crm"]
    assert set(spec.categories) == {"Salesforce", "HubSpot", "Pipedrive"}
    assert any("width" in w for w in schema.warnings)
    X, _ = coerce(raw, schema)
    assert set(X["crm"][raw["crm"] == "Ｓａｌｅｓｆｏｒｃｅ"]) == {"Salesforce"}
    cs = CriteriaSet(icp=[Criterion("icp", "crm", "in", values=("Salesforce",))],
                     anti_icp=[Criterion("anti_icp", "crm", "==", values=("Pipedrive",))],
                     schema=schema.to_dict())
    marks = _marks(cs, X)
    assert marks["icp"] == np.flatnonzero(np.isin(crm, ["Salesforce", "Ｓａｌｅｓｆｏｒｃｅ"])).tolist()
    assert_exports_select(cs, raw, marks)
    # prospects with a full-width spelling discovery never saw (lower case), and a no-break space
    pros = pd.DataFrame({"crm": ["ｓａｌｅｓｆｏｒｃｅ", "SALESFORCE", "Ｓａｌｅｓｆｏｒｃｅ ", "Ｐｉｐｅｄｒｉｖｅ",
                                 "HubSpot"]})
    Xp, _ = coerce(pros, schema)
    mp = _marks(cs, Xp)
    assert mp == {"icp": [0, 1, 2], "anti_icp": [3]}
    for side in ("icp", "anti_icp"):
        assert pros.query(cs.to_pandas()[side], engine="python").index.tolist() == mp[side]
        got = sorted(r[0] for r in duckdb.sql(
            f"SELECT i FROM (SELECT row_number() OVER () - 1 AS i, * FROM pros) WHERE {cs.to_sql()[side]}"
        ).fetchall())
        assert got == mp[side], cs.to_sql()[side]


def test_sqlite_matches_full_width_spellings_in_each_case():
    """SQLite's LOWER folds ASCII only: full-width upper- and title-case spellings of a
    value were scored as the category but missed by the exported SQL."""
    import sqlite3

    cs = CriteriaSet(icp=[Criterion("icp", "industry", "in", values=("SaaS",))])
    spellings = ["SaaS", "ｓａａｓ", "ＳＡＡＳ", "ＳａａＳ", "Ｓａａｓ", " saas ", "Retail", "ＲＥＴＡＩＬ"]
    pros = pd.DataFrame({"industry": spellings})
    want = [0, 1, 2, 3, 4, 5]
    assert np.flatnonzero(cs.icp[0].mask(pros).to_numpy(bool)).tolist() == want
    con = sqlite3.connect(":memory:")
    pros.reset_index().rename(columns={"index": "i"}).to_sql("pros", con, index=False)
    for sql in (cs.to_sql()["icp"], cs.to_sql("sqlite")["icp"]):
        got = [r[0] for r in con.execute(f"SELECT i FROM pros WHERE {sql} ORDER BY i")]
        assert got == want, sql


def test_spelling_key_folds_compatibility_forms():
    from icpml.data import spelling_key

    assert spelling_key("Ｓａｌｅｓｆｏｒｃｅ") == spelling_key(" salesforce ") == "salesforce"
    assert spelling_key("Ｓａａｓ\u3000Ｃｌｏｕｄ") == "saas cloud"
