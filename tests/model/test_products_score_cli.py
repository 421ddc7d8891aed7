"""``icpml score -c`` of a product-line config, as a newcomer's prospect list meets it.

* A list without the id column: its rows are numbered over the whole stream (0 = the first
  data row); each chunk used to restart at 0, so row numbers repeated.
* Under ``--quiet`` the last line names every product's model version (it named none).

Inputs generated here: two product lines, each with its own planted segment.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from _shared import use_project_root
from icpml.cli import app

runner = CliRunner()


def _rows(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    base = pd.DataFrame({"account_id": [f"A{i:04d}" for i in range(n)],
                         "segment": rng.choice(["retail", "bank", "telco", "gov"], n),
                         "size": np.round(np.exp(rng.normal(5, 1, n))).astype(int)})
    parts = []
    for p, good in (("core", base["segment"].eq("bank")), ("addon", base["size"].gt(150))):
        t = base.copy()
        t["product"] = p
        t["arr"] = np.round(np.exp(10 + 1.5 * good + rng.normal(0, 0.4, n)))
        parts.append(t)
    prospects = base.drop(columns=["account_id"]).sample(frac=1, random_state=seed,
                                                         ignore_index=True)
    return pd.concat(parts, ignore_index=True), prospects


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = use_project_root(tmp_path_factory.mktemp("prodcli"), mp)
    mp.chdir(root)
    rows, prospects = _rows(400, 3)
    rows.to_csv(root / "rows.csv", index=False)
    prospects.to_csv(root / "prospects_no_id.csv", index=False)
    cfg = {"name": "pl", "columns": {"id": "account_id", "product": "product",
                                     "features": {"firmographic": ["segment", "size"]},
                                     "outcomes": [{"column": "arr"}]},
           "data": {"path": "rows.csv"}, "models": {"cv_folds": 3},
           "criteria": {"stability_resamples": 0, "n_bootstrap": 100}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = runner.invoke(app, ["discover", "-c", "cfg.yaml", "--no-report"])
    assert res.exit_code == 0, res.output
    yield root, len(prospects)
    mp.undo()


@pytest.mark.parametrize("chunk", [9, 50_000])
def test_rows_without_ids_are_numbered_over_the_stream(project, chunk, monkeypatch):
    import icpml.products as products

    root, n = project
    load = products.load_product_scorers

    def small_chunks(cfg):  # the CLI reads and scores the list `chunk` rows at a time
        ps = load(cfg)
        return dataclasses.replace(ps, scorers={p: dataclasses.replace(s, chunk_size=chunk)
                                                for p, s in ps.scorers.items()})

    monkeypatch.setattr(products, "load_product_scorers", small_chunks)
    res = runner.invoke(app, ["-q", "score", "-c", "cfg.yaml", "--data", "prospects_no_id.csv",
                              "--out", f"scored_{chunk}.csv"])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(root / f"scored_{chunk}.csv", dtype={"account_id": str})
    assert out["account_id"].tolist() == [str(i) for i in range(n)]
    # the quiet run's one line names each product's model version
    for p in ("core", "addon"):
        assert re.search(rf"{p}: models:/pl-fit-{p}@champion \(version 1, run [0-9a-f]{{32}}\)",
                         res.stdout), res.stdout


def test_each_product_warns_once_for_the_whole_stream(project, monkeypatch):
    """Data issues of a chunked product-line scoring: one warning per product, counted over
    every chunk (it warned once per chunk per product, counting that chunk's rows), with ids
    repeated across chunks flagged."""
    import icpml.products as products

    root, n = project
    load = products.load_product_scorers
    monkeypatch.setattr(products, "load_product_scorers", lambda cfg: dataclasses.replace(
        load(cfg), scorers={p: dataclasses.replace(s, chunk_size=9)
                            for p, s in load(cfg).scorers.items()}))
    pros = pd.read_csv(root / "prospects_no_id.csv")
    pros.insert(0, "account_id", [f"P{i}" for i in range(len(pros))])
    pros.loc[[0, 20, 40], "segment"] = "space"      # unseen, in three different chunks
    pros.loc[[30, 45], "account_id"] = "P3"         # repeats, in later chunks
    pros.to_csv(root / "prospects_odd.csv", index=False)
    res = runner.invoke(app, ["score", "-c", "cfg.yaml", "--data", "prospects_odd.csv",
                              "--out", "scored_odd.csv"])
    assert res.exit_code == 0, res.output
    warned = res.stderr.splitlines()
    for p in ("core", "addon"):
        mine = [m for m in warned if f"product {p}:" in m]
        assert len(mine) == 1, warned
        assert "column 'segment': 3 value(s) never seen" in mine[0]
        assert "column 'account_id': 2 row(s) repeat an earlier row's id" in mine[0]
    out = pd.read_csv(root / "scored_odd.csv", dtype={"account_id": str})
    assert out["account_id"].tolist() == pros["account_id"].tolist()
