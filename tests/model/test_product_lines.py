"""Product lines as a first-class shape (``columns.product``): one row per customer and
product line, a different planted ICP per product, drawn per seed.

Each seed draws 2-4 product lines; each product's ICP is a category set on its own column,
with or without a revenue floor, and each product's outcomes follow its own ICP. A customer
owns each product with probability 0.85 (so ids repeat across products, never within one).
Checked: every product's ICP is recovered (ICP F1 >= 0.8 on fresh accounts), the scoring of
fresh accounts (one row per account, no product column) gives per-product tiers that are
exactly the criteria masks, and a product with too few rows says "No reliable ICP for
product X" and claims nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from icpml.config import config_from_dict
from icpml.errors import ConfigError, DataError, ExitCode
from icpml.pipeline import discover
from icpml.products import discover_products
from icpml.scoring import assign_tiers

CATS = {"segment": 6, "stack": 6, "channel": 6, "region": 4}
PRODUCTS = ("core", "analytics", "payments", "security")


@dataclass
class Plant:
    sets: dict[str, set[str]]
    floor: float | None

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        m = np.ones(len(df), dtype=bool)
        for c, vals in self.sets.items():
            m &= df[c].isin(vals).to_numpy(bool)
        if self.floor is not None:
            m &= (df["revenue_musd"] >= self.floor).to_numpy(bool)
        return m


def _features(rng: np.random.Generator, n: int, prefix: str) -> pd.DataFrame:
    df = pd.DataFrame({"account_id": pd.array([f"{prefix}{i:05d}" for i in range(n)],
                                              dtype="string")})
    for c, k in CATS.items():
        df[c] = pd.array(rng.choice([f"{c[:2].upper()}{i}" for i in range(k)], n),
                         dtype="string")
    df["revenue_musd"] = np.round(np.exp(rng.normal(np.log(40), 1.0, n)), 1)
    df["intent"] = np.round(rng.uniform(0, 100, n), 1)
    return df


def _plants(seed: int, n_products: int) -> dict[str, Plant]:
    """A different ICP per product: each on its own category column (a random set of 2),
    every other product with a revenue floor near the median."""
    rng = np.random.default_rng(500 + seed)
    cols = [str(c) for c in rng.permutation(list(CATS)[:3])]
    plants = {}
    for i, p in enumerate(PRODUCTS[:n_products]):
        col = cols[i % len(cols)]
        names = [f"{col[:2].upper()}{j}" for j in range(CATS[col])]
        chosen = {str(v) for v in rng.choice(names, 2, replace=False)}
        floor = (float(np.round(40 * np.exp(rng.uniform(-0.5, 0.3)))) if (i + seed) % 2
                 else None)
        plants[p] = Plant({col: chosen}, floor)
    return plants


def draw(seed: int, n: int = 2000, tiny: str | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per (customer, product line) with each product's own planted ICP; ``tiny``
    adds a product line owned by 30 customers only."""
    rng = np.random.default_rng(seed)
    plants = _plants(seed, 2 + seed % 3)
    base = _features(rng, n, "C")
    parts = []
    for p, plant in [*plants.items(), *([(tiny, None)] if tiny else [])]:
        own = rng.random(n) < 0.85 if plant is not None else np.arange(n) < 30
        v = (2.0 * plant.mask(base) if plant is not None else 0) + rng.standard_normal(n)
        t = base.copy()
        t.insert(1, "product", pd.array([p] * n, dtype="string"))
        t["arr"] = np.round(np.exp(10 + 0.5 * v + rng.normal(0, 0.2, n)))
        t["nrr"] = np.round(1.0 + 0.1 * v + rng.normal(0, 0.05, n), 3)
        parts.append(t[own])
    # rows in customer order, products interleaved (as a CRM export would list them)
    df = pd.concat(parts, ignore_index=True).sort_values(["account_id", "product"],
                                                          ignore_index=True)
    return df, plants


def config(**columns):
    return config_from_dict({
        "name": "lines",
        "columns": {"id": "account_id", "product": "product",
                    "features": {"firmographic": ["segment", "region", "revenue_musd"],
                                 "technographic": ["stack", "channel"], "intent": ["intent"]},
                    "outcomes": [{"column": "arr"}, {"column": "nrr"}], **columns},
        "models": {"cv_folds": 3},
        "criteria": {"stability_resamples": 0, "n_bootstrap": 200},
    })


def _f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int((pred & truth).sum())
    return 2 * tp / (int(pred.sum()) + int(truth.sum())) if pred.any() or truth.any() else 1.0


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda s: f"seed{s}")
def drawn(request):
    seed = request.param
    df, plants = draw(seed, tiny="legacy" if seed == 0 else None)
    before = df.copy()
    res = discover_products(config(), df)
    assert df.equals(before)  # the input is never modified
    fresh = _features(np.random.default_rng(1000 + seed), 3000, "F")
    return seed, df, plants, res, fresh


def test_each_product_icp_recovered(drawn):
    seed, df, plants, res, fresh = drawn
    assert len(plants) == 2 + seed % 3
    scored = res.score(fresh)
    s = res.summary.set_index("product")
    for p, plant in plants.items():
        assert s.loc[p, "icp_found"], (p, s.loc[p, "verdict"])
        # the product's ICP came from its own rows only
        assert s.loc[p, "n_rows"] == int((df["product"] == p).sum())
        f1 = _f1(scored[f"icp_{p}"].to_numpy(bool), plant.mask(fresh))
        assert f1 >= 0.8, (p, plant, s.loc[p, "icp"], f1)


def test_tiers_are_the_criteria_masks(drawn):
    _, df, plants, res, fresh = drawn
    scored = res.score(fresh)
    assert len(scored) == len(fresh)
    assert scored["account_id"].tolist() == fresh["account_id"].tolist()
    for p in plants:
        cs = res.per_product[p].criteria
        assert (scored[f"icp_{p}"].to_numpy(bool) == cs.icp_mask(fresh).to_numpy(bool)).all()
        tiers = assign_tiers(cs, fresh).astype(str).to_numpy()
        assert (scored[f"tier_{p}"].astype(str).to_numpy() == tiers).all()
        assert (scored[f"tier_{p}"].eq("Excluded").to_numpy(bool)
                == cs.anti_mask(fresh).to_numpy(bool)).all()
    icps = np.column_stack([scored[f"icp_{p}"].to_numpy(bool) for p in plants])
    assert (scored["n_product_icps"].to_numpy() == icps.sum(axis=1)).all()
    # best product: an account meeting exactly one product ICP has that product as best
    one = icps.sum(axis=1) == 1
    names = np.array(list(plants))
    assert (scored["best_product"].to_numpy(object)[one] == names[icps[one].argmax(axis=1)]).all()
    # discovery's own table: one row per distinct customer
    assert len(res.scored) == df["account_id"].nunique() and res.scored["account_id"].is_unique


def test_small_product_claims_nothing(drawn):
    seed, _, plants, res, fresh = drawn
    if seed != 0:
        pytest.skip("the tiny product line is drawn with seed 0")
    assert "legacy" in res.failed and "legacy" not in res.per_product
    row = res.summary.set_index("product").loc["legacy"]
    assert not row["icp_found"] and row["verdict"].startswith("No reliable ICP for product legacy")
    scored = res.score(fresh)
    assert not scored["icp_legacy"].any()
    assert scored["fit_legacy"].isna().all() and scored["tier_legacy"].isna().all()
    md = res.to_markdown()
    assert "No reliable ICP for product legacy" in md
    for p in plants:
        assert f"## Product {p}" in md
    assert "## Overlap of the product ICPs" in md


def test_exports_per_product_carry_the_schema(drawn, tmp_path):
    _, _, plants, res, fresh = drawn
    folder = res.write(tmp_path / "out")
    assert (folder / "products.md").is_file() and (folder / "products_scored.csv").is_file()
    # the report: one section per product (that product's own report page) and the overlap
    html = (folder / "products.html").read_text()
    md = (folder / "products.md").read_text()
    for p in plants:
        assert f"<h2>Product {p}</h2>" in html and f"## Product {p}" in md
        assert f"[{p}/report.html]({p}/report.html)" in md
        assert (folder / p / "report.html").is_file() and (folder / p / "criteria.md").is_file()
        own = (folder / p / "criteria.md").read_text()
        assert "## ICP: invest in accounts" in own
    assert md.count("### ICP: invest in accounts") == sum(
        bool(res.per_product[p].criteria.icp) for p in plants)
    assert "<h2>Overlap of the product ICPs</h2>" in html and "<script" not in html
    import duckdb

    for p in plants:
        cs = res.per_product[p].criteria
        assert cs.schema and set(cs.schema["columns"]) == set(cs.columns)
        text = (folder / p / "criteria.json").read_text()
        assert '"schema"' in text
        sql = res.exports()[p]["sql"]["icp"]
        con = duckdb.connect()
        con.register("t", fresh)
        got = con.execute(f"SELECT ({sql}) AS m FROM t").df()["m"].fillna(False).to_numpy(bool)
        assert (got == cs.icp_mask(fresh).to_numpy(bool)).all()
        query = res.exports()[p]["pandas"]["icp"]
        assert (fresh.eval(query).to_numpy(bool) == cs.icp_mask(fresh).to_numpy(bool)).all()


# ----------------------------------------------------------------------------- hostile
def _rows() -> pd.DataFrame:
    df, _ = draw(3, n=200)
    return df


def _one_line(err: Exception, *words: str) -> None:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text
    for w in words:
        assert w in text, (w, text)


def test_repeated_id_product_pair_is_refused():
    df = _rows()
    bad = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    with pytest.raises(DataError) as err:
        discover_products(config(), bad)
    _one_line(err.value, "'account_id'", "(id, product)", str(df.iloc[5]["account_id"]),
              "one row per customer and product")


def test_product_column_with_one_value_is_refused():
    df = _rows()
    one = df[df["product"] == "core"]
    with pytest.raises(DataError) as err:
        discover_products(config(), one)
    _one_line(err.value, "product column 'product'", "only 'core'", "at least 2")


def test_product_column_missing_or_blank_is_refused():
    df = _rows()
    with pytest.raises(DataError) as err:
        discover_products(config(), df.drop(columns="product"))
    _one_line(err.value, "'product'", "missing column")
    blank = df.copy()
    blank.loc[3, "product"] = "  "
    with pytest.raises(DataError) as err:
        discover_products(config(), blank)
    _one_line(err.value, "product column 'product'", "1 empty value")


def test_product_column_roles_are_checked():
    with pytest.raises(ConfigError, match="'account_id' is given two roles"):
        config(product="account_id")
    with pytest.raises(ConfigError, match="'segment' is given two roles"):
        config(product="segment")
    with pytest.raises(ConfigError, match="'arr' is given two roles"):
        config(product="arr")
    with pytest.raises(ConfigError, match="keep one"):
        config_from_dict({**config().model_dump(exclude={"project_root"}),
                          "products": {"x": [{"column": "nrr"}]}})
    # discover() is one ICP; with columns.product it points to the per-product discovery
    with pytest.raises(ConfigError, match="icpml products"):
        discover(config(), _rows())


def test_too_many_product_values_is_refused():
    df = _rows()
    many = df.assign(product=df["account_id"])  # an id column named as the product
    many["product"] = many["product"].astype("string") + "-x"
    with pytest.raises(DataError) as err:
        discover_products(config(), many)
    _one_line(err.value, "product column 'product'", "identifier")


def test_cli_error_is_one_line(tmp_path):
    df = _rows()
    bad = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    (tmp_path / ".icpml").write_text("")
    bad.to_csv(tmp_path / "rows.csv", index=False)
    cfg = config().model_dump(mode="json", exclude={"project_root"})
    cfg["data"] = {"path": "rows.csv"}
    import yaml

    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    for cmd in ("discover", "products"):
        out = subprocess.run([sys.executable, "-m", "icpml", cmd, "-c", "cfg.yaml", "--no-track"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "ICPML_PROJECT_ROOT": str(tmp_path)})
        assert out.returncode == ExitCode.DATA, out.stderr
        err = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr
        assert "(id, product)" in err[0]
    # scoring every product needs their models: with no store, one line and a non-zero exit
    out = subprocess.run([sys.executable, "-m", "icpml", "score", "-c", "cfg.yaml", "--data",
                          "rows.csv", "--out", "s.csv"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300,
                         env={**os.environ, "ICPML_PROJECT_ROOT": str(tmp_path)})
    err = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode != 0 and len(err) == 1 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "s.csv").exists()


def test_product_spellings_are_one_line():
    from icpml.data import product_lines, validate_accounts

    raw = pd.Series(["Core", "core ", " CORE", "Core", "Analytics", None, "  "], dtype="string")
    got = product_lines(raw)
    assert got.tolist()[:5] == ["Core", "Core", "Core", "Core", "Analytics"]
    assert got.isna().tolist()[5:] == [True, True]
    assert raw.tolist()[1] == "core "  # not modified
    df = _rows()
    first = df[df["product"] == "core"].iloc[[0]].assign(product="CORE ")
    with pytest.raises(DataError) as err:
        validate_accounts(pd.concat([df, first], ignore_index=True), config())
    _one_line(err.value, "(id, product)", "one row per customer and product")


# ------------------------------------------------------------------ score from the store
def _icpml(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icpml", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ICPML_PROJECT_ROOT": str(tmp_path)})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A project whose store holds a tracked product-line discovery (2 products with a model,
    ``legacy`` without one), and prospects to score."""
    import yaml

    from icpml.config import load_config
    from icpml.data import load_accounts

    tmp = tmp_path_factory.mktemp("store")
    df, plants = draw(0, n=300, tiny="legacy")
    (tmp / ".icpml").write_text("")
    df.to_csv(tmp / "rows.csv", index=False)
    prospects = _features(np.random.default_rng(77), 300, "P")
    prospects.to_csv(tmp / "prospects.csv", index=False)
    cfg = config().model_dump(mode="json", exclude={"project_root"})
    cfg["data"] = {"path": "rows.csv"}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ICPML_PROJECT_ROOT", str(tmp))
        res = discover_products(load_config(tmp / "cfg.yaml"),
                                load_accounts(tmp / "rows.csv", text=True), track=True)
    assert "legacy" in res.failed and set(plants) <= set(res.per_product)
    return tmp, plants, res, prospects


def test_cli_scores_every_product_as_discovery_does(store):
    """discover (tracked) -> ``icpml score -c cfg.yaml``: one row per account against every
    product's @champion, the same columns and values as ProductDiscovery.score; a product
    without a model is named in a warning and claims nothing."""
    from icpml.data import load_accounts
    from icpml.scoring import SCORE_DECIMALS

    tmp_path, plants, res, prospects = store
    out = _icpml(tmp_path, "score", "-c", "cfg.yaml", "--data", "prospects.csv",
                 "--out", "scored.csv")
    assert out.returncode == 0, out.stderr
    for p in plants:  # which model version each product used
        assert f"INFO model: models:/lines-fit-{p}@champion (version 1" in out.stderr, out.stderr
    warn = [ln for ln in out.stderr.splitlines() if ln.startswith("WARNING")]
    assert len(warn) == 1 and "product legacy" in warn[0], out.stderr
    got = pd.read_csv(tmp_path / "scored.csv", dtype={"account_id": str})
    want = res.score(load_accounts(tmp_path / "prospects.csv", text=True))
    assert list(got.columns) == list(want.columns)
    assert got["account_id"].tolist() == prospects["account_id"].tolist()
    for c in want.columns:
        if c.startswith("fit_") or c == "expected_value":
            w = want[c].to_numpy(float).round(SCORE_DECIMALS if c != "expected_value" else 2)
            assert np.allclose(got[c].to_numpy(float), w, atol=1e-9, equal_nan=True), c
        else:
            assert (got[c].astype("string").fillna("<NA>").to_numpy()
                    == want[c].astype("string").fillna("<NA>").to_numpy()).all(), c
    for p in plants:  # the tiers are the product's criteria on the prospects
        tiers = assign_tiers(res.per_product[p].criteria, prospects).astype(str).to_numpy()
        assert (got[f"tier_{p}"].astype(str).to_numpy() == tiers).all(), p
    assert not got["icp_legacy"].any() and got["tier_legacy"].isna().all()


def test_cli_model_still_scores_one_product(store):
    tmp_path, plants, res, prospects = store
    one = next(iter(plants))
    out = _icpml(tmp_path, "score", "-c", "cfg.yaml", "--data", "prospects.csv", "--out",
                 "one.csv", "--model", f"models:/lines-fit-{one}@champion")
    assert out.returncode == 0, out.stderr
    single = pd.read_csv(tmp_path / "one.csv", dtype={"account_id": str})
    want = res.score(prospects)[f"tier_{one}"].astype(str).to_numpy()
    assert (single["tier"].astype(str).to_numpy() == want).all()


def test_cli_exports_every_product(store):
    """``icpml export -c cfg.yaml --out DIR``: per product the champion's SQL, which selects
    exactly that product's ICP rows of the raw prospects table."""
    import duckdb

    tmp_path, plants, res, prospects = store
    out = _icpml(tmp_path, "export", "-c", "cfg.yaml", "-f", "sql", "--out", "exp")
    assert out.returncode == 0, out.stderr
    assert "product legacy" in out.stderr  # no model: said, not exported
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == sorted(plants)
    raw = pd.read_csv(tmp_path / "prospects.csv")
    con = duckdb.connect()
    con.register("t", raw)
    for p in plants:
        text = (tmp_path / "exp" / p / "criteria.sql").read_text()
        icp = text.split("-- ICP:")[1].split("WHERE ", 1)[1].split("\n\n")[0]
        got = con.execute(f"SELECT ({icp}) AS m FROM t").df()["m"].fillna(False).to_numpy(bool)
        want = res.per_product[p].criteria.icp_mask(prospects).to_numpy(bool)
        assert (got == want).all(), p
    # stdout: one JSON document, product -> its criteria.json (with its schema)
    out = _icpml(tmp_path, "export", "-c", "cfg.yaml", "-f", "json")
    assert out.returncode == 0, out.stderr
    import json

    doc = json.loads(out.stdout)
    assert sorted(doc) == sorted(plants) and all("schema" in d for d in doc.values())


def test_product_without_champion_is_named_and_claims_nothing(store, monkeypatch):
    """A product whose model lost its @champion: scoring goes on with the others, the
    product is listed as missing (its columns empty), in the discovery's product order."""
    from mlflow import MlflowClient

    from icpml.config import load_config
    from icpml.products import load_product_scorers

    tmp_path, plants, res, prospects = store
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(tmp_path))
    cfg = load_config(tmp_path / "cfg.yaml")
    first, *rest = sorted(plants)
    ps = load_product_scorers(cfg)  # configures the store
    client = MlflowClient()
    version = client.get_model_version_by_alias(f"lines-fit-{first}", "champion").version
    client.delete_registered_model_alias(f"lines-fit-{first}", "champion")
    try:
        ps = load_product_scorers(cfg)
    finally:
        client.set_registered_model_alias(f"lines-fit-{first}", "champion", version)
    assert ps.products == res.products
    assert set(ps.missing) == {first, "legacy"} and set(ps.scorers) == set(rest)
    assert "@champion" in ps.missing[first]
    got = ps.score(prospects)
    want = res.score(prospects)
    assert not got[f"icp_{first}"].any() and got[f"tier_{first}"].isna().all()
    for p in rest:
        assert (got[f"tier_{p}"].astype(str) == want[f"tier_{p}"].astype(str)).all()
