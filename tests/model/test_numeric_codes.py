"""Numeric codes end to end: a planted non-adjacent code set is found as a value set.

Each seed draws a risk class of 5-7 integer codes and plants the ICP on two non-adjacent
codes (``risk_class in {1, 4}``), beside noise columns (an industry, a size, a 1/2
channel). Discovery must name the set itself, not a range (``risk_class <= 1``), in words,
SQL (numbers), pandas and JSON, and the shared Wholesale case must read ``Channel = 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _shared import case_dir
from icpml import discover
from icpml.config import config_from_dict, load_config


def _planted_code_set(n: int, seed: int) -> tuple[pd.DataFrame, set[int], object]:
    rng = np.random.default_rng([seed, 1414])
    k = int(rng.integers(5, 8))  # the set is at most 40% of accounts (half would read as an exclusion)
    while True:
        a, b = sorted(int(v) for v in rng.choice(np.arange(1, k + 1), 2, replace=False))
        if b - a >= 2:
            break
    risk = rng.integers(1, k + 1, n)
    icp = np.isin(risk, [a, b])
    value = 1.6 * icp + rng.normal(0, 0.7, n)
    df = pd.DataFrame({
        "cid": [f"C{i:05d}" for i in range(n)],
        "risk_class": risk,
        "industry": rng.choice(["Agri", "Bank", "Chem", "Food"], n),
        "employees": np.round(np.exp(rng.normal(5, 1, n))),
        "channel": rng.integers(1, 3, n),
        "revenue": np.round(np.exp(10 + 0.5 * value + rng.normal(0, 0.3, n)), -1),
        "churned": rng.random(n) < 1 / (1 + np.exp(1.0 + 0.9 * value)),
    })
    cfg = config_from_dict({
        "columns": {"id": "cid", "features": {"firmographic": ["risk_class", "industry", "employees",
                                                               "channel"]},
                    "outcomes": [{"column": "revenue"}], "churn": "churned"},
        "criteria": {"stability_resamples": 0}})
    return df, {a, b}, cfg


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_non_adjacent_code_set_is_found_as_a_set(seed):
    df, chosen, cfg = _planted_code_set(2500, seed)
    res = discover(cfg, df)
    cs = res.criteria
    assert cs.schema["columns"]["risk_class"]["codes"] == sorted(set(df["risk_class"]))
    assert cs.verdict["icp_found"], cs.verdict
    (risk,) = [c for c in cs.icp if c.column == "risk_class"]
    a, b = sorted(chosen)
    assert risk.op == "in" and risk.values == (a, b), risk.describe()
    assert risk.describe() == f"risk_class in {{{a}, {b}}}"
    d = json.loads(cs.to_json())
    (entry,) = [e for e in d["icp"]["criteria"] if e["column"] == "risk_class"]
    assert entry["values"] == [a, b] and entry["sql"].endswith(f"IN ({a}, {b})")
    assert entry["pandas"].lstrip("(").startswith("`risk_class`.") and entry["pandas"].endswith(f".isin([{a}, {b}])")
    truth = df["risk_class"].isin(chosen)
    pred = cs.icp_mask(df)
    f1 = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    assert f1 >= 0.8
    # a prospect's 2.0 or "2" reads as the code 2
    pros = df.head(300).assign(risk_class=lambda x: x["risk_class"].astype(str) + ".0")
    assert cs.icp_mask(pros).tolist() == pred.head(300).tolist()


def test_case_numeric_code_reads_channel_equals_2():
    folder = case_dir("numeric-code-no-icp")
    cfg = load_config(folder / "numeric.yaml")
    cfg = cfg.model_copy(update={"criteria": cfg.criteria.model_copy(update={"stability_resamples": 0})})
    data = pd.read_csv(folder / "clients.csv")
    cs = discover(cfg, data).criteria
    (channel,) = [c for c in cs.icp if c.column == "Channel"]
    assert channel.describe() == "Channel = 2" and channel.values == (2,)
    d = channel.to_dict(cs.schema)
    assert d["values"] == [2] and d["sql"].endswith("IN (2)") and d["pandas"].endswith(".isin([2])")
    assert data.query(d["pandas"], engine="python").index.tolist() == data.index[data["Channel"] == 2].tolist()


# ----------------------------------------------------------------------------- the CLI chain
_INDUSTRY_CODES = {"SaaS": "03", "FinTech": "007", "E-commerce": "01", "Healthcare": "02",
                   "Manufacturing": "04", "Retail": "05", "Education": "06", "Logistics": "08",
                   "Media": "09"}


def _coded_accounts(n: int, seed: int) -> pd.DataFrame:
    """The demo accounts with industry as zero-padded digit codes and a third of the
    Salesforce CRMs spelled full-width ('Ｓａｌｅｓｆｏｒｃｅ')."""
    from icpml.synthetic import make_accounts

    df = make_accounts(n=n, seed=seed)
    rng = np.random.default_rng(seed)
    df["industry"] = df["industry"].map(_INDUSTRY_CODES)
    wide = (df["crm"] == "Salesforce") & (rng.random(n) < 0.35)
    df["crm"] = df["crm"].where(~wide, "Ｓａｌｅｓｆｏｒｃｅ")
    return df


def test_cli_exports_select_the_rows_icpml_score_marks(tmp_path):
    """discover -> score -> export on digit codes and full-width spellings: the pandas
    filter on the prospects as ``pd.read_csv`` reads them (industry as integers) and the
    SQL in DuckDB select exactly the rows ``icpml score`` marks icp_match."""
    import os
    import subprocess
    import sys

    from _shared import project_env

    root = tmp_path / "proj"
    root.mkdir()
    (root / ".icpml").touch()
    _coded_accounts(2000, 0).to_csv(root / "accounts.csv", index=False)
    _coded_accounts(600, 1).drop(columns=["arr", "nrr", "nps", "churned", "product_usage_pct",
                                          "support_tickets_per_month"]).to_csv(root / "prospects.csv",
                                                                               index=False)
    demo = Path(__file__).resolve().parents[2] / "src" / "icpml" / "configs" / "demo.yaml"
    text = demo.read_text().replace("path: data/demo/accounts.csv", "path: accounts.csv")
    (root / "cfg.yaml").write_text(text + "models: {max_iter: 30, cv_folds: 2, min_samples_leaf: 5}\n"
                                   "criteria: {stability_resamples: 0}\n")

    def run(*args):
        env = project_env(root) | {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        r = subprocess.run([sys.executable, "-m", "icpml", *args], cwd=root, capture_output=True,
                           text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    run("discover", "-c", "cfg.yaml")
    crit = next((root / "reports").glob("*/criteria.json"))
    doc = json.loads(crit.read_text())
    assert doc["schema"]["columns"]["industry"]["kind"] == "categorical"
    assert "Ｓａｌｅｓｆｏｒｃｅ" not in doc["schema"]["columns"]["crm"]["categories"]
    texts = [c["text"] for c in doc["icp"]["criteria"]]
    assert any(t.startswith("industry in {") and "007" in t for t in texts), texts
    run("score", "--data", "prospects.csv", "--out", "scored.csv", "-c", "cfg.yaml")
    scored = pd.read_csv(root / "scored.csv", dtype={"account_id": str}, keep_default_na=False)
    icp_ids = set(scored.loc[scored["icp_match"].astype(str) == "True", "account_id"])
    assert len(icp_ids) > 20
    user = pd.read_csv(root / "prospects.csv")  # pandas defaults: industry read as integers
    assert pd.api.types.is_integer_dtype(user["industry"])
    got = set(user.query(doc["icp"]["pandas"], engine="python")["account_id"].astype(str))
    assert got == icp_ids
    duckdb = pytest.importorskip("duckdb")
    got = {str(r[0]) for r in duckdb.sql(
        f"SELECT account_id FROM read_csv('{root / 'prospects.csv'}', types={{'industry': 'BIGINT'}}) "
        f"WHERE {doc['icp']['sql']}").fetchall()}
    assert got == icp_ids
