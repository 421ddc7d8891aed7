"""One data contract, end to end (issue 15): on messy CSV exports, discovery's own scoring,
the streamed scorer (any chunking, any row order), the SQL export in DuckDB and SQLite, and the
pandas export select the same ICP and anti-ICP rows, row for row.

The discovery learns its schema from a messy training file (thousands separators, currency,
yes/no spellings, case/space variants, blanks); prospect files are drawn with other seeds and
other mess, so nothing here is tuned to one table.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from icpml import demo_config
from icpml.criteria import CriteriaSet
from icpml.data import iter_accounts, load_source
from icpml.pipeline import discover
from icpml.synthetic import make_accounts

duckdb = pytest.importorskip("duckdb")

OUTCOMES = ["arr", "nrr", "nps", "churned", "product_usage_pct", "support_tickets_per_month"]


def _mess(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A CRM export's habits: '1,234' and '$12.50', Yes/no/TRUE/0, case and space variants,
    blank cells. Returns text cells (object dtype), as a spreadsheet export holds them."""
    out = df.astype(object).copy()
    n = len(df)

    def pick(p):
        return rng.random(n) < p

    emp = df["employees"]
    out["employees"] = [f"{int(v):,}" if (pd.notna(v) and w) else ("" if pd.isna(v) else str(int(v)))
                        for v, w in zip(emp, pick(0.5), strict=True)]
    rev = df["annual_revenue_musd"]
    out["annual_revenue_musd"] = ["" if pd.isna(v) else f"${v:,.2f}" if w else f"{v:.2f}"
                                  for v, w in zip(rev, pick(0.6), strict=True)]
    flags = {True: ["Yes", "yes", "TRUE", "1", " Y"], False: ["No", "no", "false", "0", "N "]}
    out["requires_onprem"] = [rng.choice(flags[bool(v)]) for v in df["requires_onprem"]]
    for col in ("industry", "crm", "region", "cloud_provider"):
        variants = []
        for v in df[col]:
            r = rng.random()
            if pd.isna(v):
                variants.append("")
                continue
            v = str(v)
            variants.append(v.lower() if r < 0.2 else f" {v.upper()} " if r < 0.3
                            else f"{v}  " if r < 0.4 else v)
        out[col] = variants
    for col in ("employees", "industry", "crm", "requires_onprem"):
        blank = pick(0.04)
        out.loc[blank, col] = ""
    # null words: missing in number and yes/no columns, a value ("NA": North America) in categories
    out.loc[pick(0.03), "employees"] = "N/A"
    out.loc[pick(0.03), "requires_onprem"] = "null"
    out.loc[pick(0.05), "region"] = "NA"
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    mp = pytest.MonkeyPatch()
    mp.setenv("ICPML_PROJECT_ROOT", str(root))
    cfg = demo_config()
    path = cfg.resolve(cfg.data.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _mess(make_accounts(2000, seed=0), np.random.default_rng(0)).to_csv(path, index=False)
    accounts, source = load_source(cfg)
    res = discover(cfg, accounts, source=source)
    yield root, res
    mp.undo()


def _rows(mask) -> list[int]:
    return [i for i, v in enumerate(np.asarray(mask, dtype=bool).tolist()) if v]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_every_reader_selects_the_same_rows(trained, tmp_path, seed):
    root, res = trained
    cs = res.criteria
    assert cs.icp and cs.anti_icp, "the demo's planted ICP is found on messy data"
    assert cs.schema["columns"], "criteria.json carries the schema of its columns"
    rng = np.random.default_rng(seed)
    prospects = _mess(make_accounts(700, seed=seed), rng).drop(columns=OUTCOMES)
    src = tmp_path / "prospects.csv"
    prospects.to_csv(src, index=False)
    scorer = res.scorer
    needed = [scorer.id_column, *scorer.label_columns, *scorer.input_columns]

    def streamed(path, rows):
        parts = scorer.score_batches(iter_accounts(path, rows, needed, text=scorer.text_columns))
        return pd.concat(list(parts), ignore_index=True)

    whole = streamed(src, 50_000)
    want = {"icp": _rows(whole["icp_match"]), "anti_icp": _rows(whole["anti_icp_match"])}
    assert want["icp"] and want["anti_icp"]

    # any chunking, any row order: the same tier for every account
    chunked = streamed(src, 37)
    pd.testing.assert_series_equal(whole["tier"], chunked["tier"])
    shuffled = tmp_path / "shuffled.csv"
    prospects.sample(frac=1, random_state=seed).to_csv(shuffled, index=False)
    by_id = streamed(shuffled, 101).set_index(scorer.id_column)["tier"]
    pd.testing.assert_series_equal(whole.set_index(scorer.id_column)["tier"], by_id.loc[whole[scorer.id_column]])

    # the exports of criteria.json as written (a round trip through JSON)
    exported = CriteriaSet.from_dict(json.loads(cs.to_json()))
    raw = pd.read_csv(src)  # what a data scientist's pandas reads
    text = pd.read_csv(src, dtype=str, keep_default_na=False).replace("", None)
    for side in ("icp", "anti_icp"):
        for dialect in (None, "duckdb"):
            where = exported.to_sql(dialect)[side]
            con = duckdb.connect()
            got = [r[0] for r in con.execute(
                f"SELECT _row_ - 1 FROM (SELECT *, row_number() OVER () AS _row_ "
                f"FROM read_csv('{src}', all_varchar = true)) WHERE {where} ORDER BY 1").fetchall()]
            con.close()
            assert got == want[side], f"{side}: DuckDB ({dialect or 'portable'}) {where}"
        for dialect in (None, "sqlite"):
            where = exported.to_sql(dialect)[side]
            con = sqlite3.connect(":memory:")
            text.assign(_row_=range(len(text))).to_sql("t", con, index=False)
            got = [r[0] for r in con.execute(f"SELECT _row_ FROM t WHERE {where} ORDER BY 1")]
            con.close()
            assert got == want[side], f"{side}: SQLite ({dialect or 'portable'}) {where}"
        expr = exported.to_pandas()[side]
        assert _rows(raw.eval(expr, engine="python")) == want[side], f"{side}: pandas {expr}"
        code = exported.to_pandas(code=True)[side]
        assert _rows(eval(code, {"df": raw})) == want[side], f"{side}: pandas code"  # noqa: S307
