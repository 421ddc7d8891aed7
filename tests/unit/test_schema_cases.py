"""The reported cases of issue 15 (values read one way in discovery, another in scoring).

Each uses the case's own files from ``<workspace>/shared/cases`` and asserts the right values.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _shared import case_dir as _case
from icpml._io import write_table_stream
from icpml.cli import app
from icpml.config import load_config
from icpml.data import iter_accounts, load_source
from icpml.errors import DataError
from icpml.pipeline import discover

_REPO = Path(__file__).resolve().parents[2]



def _discover(folder: Path, config: str, data: str | None = None):
    cfg = load_config(folder / config)
    accounts, source = load_source(cfg, folder / (data or cfg.data.path))
    return discover(cfg, accounts, source=source)


def _score_file(scorer, path: Path, rows: int) -> pd.DataFrame:
    """What ``icpml score --data path`` computes: the file streamed ``rows`` at a time."""
    stream = iter_accounts(path, rows, [scorer.id_column, *scorer.input_columns],
                           text=scorer.text_columns)
    return pd.concat(scorer.score_batches(stream), ignore_index=True)


@pytest.mark.integration  # a full discovery of the case
def test_score_thousands_skew():
    """accounts.csv ("1,234", "$21.72") scores exactly like its plain-number twin."""
    folder = _case("score-thousands-skew")
    res = _discover(folder, "cfg.yaml")
    spec = res.schema.to_dict()["columns"]
    assert spec["employees"]["thousands"] == "," and spec["annual_revenue_musd"]["currency"] is True
    raw = pd.read_csv(folder / "accounts.csv", dtype=str)
    plain = pd.read_csv(folder / "accounts_plain.csv")
    # discovery read "2,247" as 2247 and "$21.72" as 21.72
    np.testing.assert_array_equal(res.accounts["employees"].to_numpy(float), plain["employees"].to_numpy(float))
    np.testing.assert_array_equal(res.accounts["annual_revenue_musd"].to_numpy(float),
                                  plain["annual_revenue_musd"].to_numpy(float))
    assert raw["employees"].str.contains(",").any()
    a = _score_file(res.scorer, folder / "accounts.csv", 300)
    b = _score_file(res.scorer, folder / "accounts_plain.csv", 50_000)
    assert np.abs(a["fit_score"].to_numpy() - b["fit_score"].to_numpy()).max() <= 1e-12
    assert (a["icp_match"] == b["icp_match"]).all() and (a["tier"] == b["tier"]).all()
    assert not a["data_issues"].str.contains("not a number").any()
    # and as discovery itself scored those accounts
    assert np.abs(a["fit_score"].to_numpy() - res.scored["fit_score"].to_numpy()).max() <= 1e-12
    # the exported SQL and pandas filters read "2,247" and "$21.72" as icpml does: they keep
    # the rows `icpml score` marks, in the file as written (a value read one way in scoring
    # and another in the exports is the same kind of skew)
    from test_exports import _icpml_reads, _marks, assert_exports_select

    cs = res.criteria
    as_written = pd.read_csv(folder / "accounts.csv")
    marks = _marks(cs, _icpml_reads(as_written, cs.schema))
    assert marks["icp"] == np.flatnonzero(a["icp_match"].astype(str) == "True").tolist()
    assert marks["icp"] and marks["anti_icp"]
    assert_exports_select(cs, as_written, marks)


@pytest.mark.integration  # a full discovery of the case
def test_yes_no_column_dropped_per_chunk(tmp_path):
    """One "unknown" cell is that cell's problem only, wherever the account sits in the file."""
    folder = _case("yes-no-column-dropped-per-chunk")
    res = _discover(folder, "c.yaml")
    assert res.schema.columns["uses_sso"].kind == "boolean"
    sso = [c for c in res.criteria.icp if c.column == "uses_sso"]
    assert len(sso) == 1 and sso[0].values == ("True",)  # the planted signal; industry may join it
    good = _score_file(res.scorer, folder / "prospects.csv", 50_000)
    bad = _score_file(res.scorer, folder / "prospects_one_unknown.csv", 50_000)
    raw = pd.read_csv(folder / "prospects_one_unknown.csv", dtype=str)
    hit = (raw["uses_sso"] == "unknown").to_numpy()
    assert hit.sum() == 1
    assert (bad["tier"][~hit] == good["tier"][~hit]).all()
    n1 = int((good["tier"] == "Tier 1").sum())
    assert n1 > 0 and (bad["tier"] == "Tier 1").sum() == n1 - int(good["tier"][hit].eq("Tier 1").sum())
    assert bad.loc[hit, "data_issues"].item() == "uses_sso 'unknown' is not yes/no: scored as unknown"
    assert (bad.loc[~hit, "data_issues"] == "").all()
    # the case's 120k file, shrunk: prospects repeated, one "unknown" in the first chunk only
    p = pd.read_csv(folder / "prospects.csv", dtype=str)
    big = pd.concat([p] * 30, ignore_index=True)
    big["account_id"] = [f"P{i:06d}" for i in range(len(big))]
    big.loc[0, "uses_sso"] = "unknown"
    big.to_csv(tmp_path / "big.csv", index=False)
    want = np.tile(good["tier"].to_numpy(), 30)
    for rows in (7, 50, 250, 50_000):
        out = _score_file(res.scorer, tmp_path / "big.csv", rows)
        assert (out["tier"].to_numpy()[1:] == want[1:]).all(), rows
        assert (out["fit_score"].to_numpy()[1:] == np.tile(good["fit_score"].to_numpy(), 30)[1:]).all()


@pytest.mark.integration  # a full discovery of the case
def test_leading_zero_ids(tmp_path):
    """Ids are text: discovery, streamed scoring and both output formats keep "0000900000"."""
    folder = _case("leading-zero-ids")
    res = _discover(folder, "c.yaml")
    want = pd.read_csv(folder / "customers.csv", dtype=str)["customer_no"].tolist()
    assert res.accounts["customer_no"].tolist() == want and want[0].startswith("0000")
    assert res.scored["customer_no"].tolist() == want
    from icpml.report import report_context

    shown = [r["id"] for rows in report_context(res)["samples"].values() for r in rows]
    assert shown and set(shown) <= set(want) and all(i.startswith("0000") for i in shown)
    prospects = pd.read_csv(folder / "prospects.csv", dtype=str)["customer_no"].tolist()
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"scored{suffix}"
        stream = iter_accounts(folder / "prospects.csv", 5,
                               [res.scorer.id_column, *res.scorer.input_columns],
                               text=res.scorer.text_columns)
        write_table_stream(res.scorer.score_batches(stream), out)
        back = (pd.read_csv(out, dtype=str) if suffix == ".csv" else pd.read_parquet(out))
        assert back["customer_no"].tolist() == prospects and prospects[0] == "0000900000"
    # "0000100000" and "100000" are two distinct ids, not a duplicate
    mixed = _discover(folder, "c_mixed.yaml")
    ids = mixed.accounts["customer_no"].tolist()
    assert "0000100000" in ids and "100000" in ids


def test_duplicate_header_is_one_line_exit_3(tmp_path):
    folder = _case("duplicate-header-silent")
    cfg = load_config(folder / "c.yaml")
    with pytest.raises(DataError) as e:
        load_source(cfg, folder / "companies.csv")
    assert str(e.value).endswith("duplicate column name(s) Industry; make the header unique")
    result = CliRunner().invoke(app, ["discover", "-c", str(folder / "c.yaml"), "--data",
                                      str(folder / "companies.csv"), "--no-track", "--no-report"])
    assert result.exit_code == 3
    assert "duplicate column name(s) Industry; make the header unique" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(DataError, match="duplicate column name"):  # and when scoring it
        list(iter_accounts(folder / "companies.csv", 50, ["account_id", "Industry"]))
    # the same kind on a generated file: a repeated label other than Industry, quoted
    p = tmp_path / "x.csv"
    shutil.copy(folder / "companies.csv", p)
    p.write_text('"Region",id,Region\nEU,1,US\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"duplicate column name\(s\) Region; make the header unique"):
        list(iter_accounts(p, 10))


def _expected_outcomes(folder: Path, deals_file: str, after: str) -> pd.DataFrame:
    """Won value and win rate per account, computed with the standard library's ISO parser."""
    deals = pd.read_csv(folder / deals_file, dtype=str)
    cutoff = datetime.fromisoformat(after).replace(tzinfo=UTC)
    rows: dict[str, dict] = {}
    for d in deals.itertuples():
        when = datetime.fromisoformat(d.closedate.replace("Z", "+00:00"))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        r = rows.setdefault(d.account_id, {"won_value": 0.0, "won": 0, "closed": 0})
        if when < cutoff:
            continue
        if d.dealstage in ("closedwon", "closedlost"):
            r["closed"] += 1
        if d.dealstage == "closedwon":
            r["won"] += 1
            r["won_value"] += float(d.amount)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["win_rate"] = np.where(out["closed"] > 0, out["won"] / out["closed"].clip(lower=1), np.nan)
    return out


@pytest.mark.parametrize("config, deals", [("utc_z.yaml", "deals_utc_z.csv"),
                                           ("berlin_offset.yaml", "deals_berlin_offset.csv")])
def test_tz_aware_deal_dates(config, deals, monkeypatch):
    folder = _case("tz-aware-deal-dates")
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(folder))  # the deals path resolves there (read only)
    cfg = load_config(folder / config)
    df, _ = load_source(cfg, folder / "accounts.csv")
    want = _expected_outcomes(folder, deals, cfg.data.opportunities.after)
    got = df.set_index("account_id")
    for acc, row in want.iterrows():
        assert got.loc[acc, "won_value"] == pytest.approx(row["won_value"])
        assert got.loc[acc, "n_won"] == row["won"]
        if np.isnan(row["win_rate"]):
            assert np.isnan(got.loc[acc, "win_rate"])
        else:
            assert got.loc[acc, "win_rate"] == pytest.approx(row["win_rate"])
    res = discover(cfg, df)  # and the run goes through
    assert len(res.scored) == len(df)


def test_tz_kind_generated_offsets_and_bounds():
    """Generated deals: +02:00/+01:00/Z/naive mixed, a bound with an offset; UTC throughout."""
    from icpml.adapters.crm import crm_accounts
    from icpml.config import OpportunitiesConfig

    accounts = pd.DataFrame({"id": ["a", "b", "c"]})
    deals = pd.DataFrame({
        "acc": ["a", "a", "b", "b", "c"],
        "stage": ["won", "won", "won", "lost", "won"],
        "amount": ["100", "1000", "10", "5", "7"],
        "when": ["2024-01-01T00:30:00+01:00",  # 2023-12-31 23:30 UTC: before the cutoff
                 "2024-03-31T02:00:00+02:00", "2024-06-01T00:00:00.000Z", "2024-02-01", "2023-12-31"],
    })
    spec = OpportunitiesConfig(path="x.csv", account="acc", stage="stage", won=["won"], lost=["lost"],
                               amount="amount", date="when", after="2024-01-01", before="2024-12-31")
    out = crm_accounts(accounts, deals, spec, id_column="id").set_index("id")
    assert out["n_won"].tolist() == [1, 1, 0] and out["won_value"].tolist() == [1000.0, 10.0, 0.0]
    assert out.loc["b", "win_rate"] == 0.5 and np.isnan(out.loc["c", "win_rate"])
    euro = deals.assign(amount=["100", "1.000", "10", "5", "7"])  # read as the schema reads numbers
    assert crm_accounts(accounts, euro, spec, id_column="id")["won_value"].tolist() == [1000.0, 10.0, 0.0]
    bad = deals.assign(when=["2024-13-45", *deals["when"][1:]])
    with pytest.raises(DataError, match=r"data\.opportunities\.date"):
        crm_accounts(accounts, bad, spec, id_column="id")
