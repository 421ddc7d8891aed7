"""Cross-product ICP: one ICP per product line, and how the product ICPs overlap.

A company with several product lines rarely has one ICP: the accounts that buy
the analytics add-on are not the ones that buy the core platform. Product lines
come in one of two shapes, and :func:`discover_products` takes either:

* **one row per customer and product** (``columns.product`` names the product-line
  column): each product's ICP is discovered from that product's rows only, so the value
  score, the best / worst cohorts and every piece of evidence are computed within the
  product. A customer id repeats across products; an (id, product) pair may not.
* **one row per customer, an outcome set per product** (``products:`` in the config,
  product name -> its own outcomes, e.g. the per-product ``won_value__<product>`` and
  ``win_rate__<product>`` that the CRM-export adapter builds): every product's ICP is
  discovered on all rows with only the outcomes swapped.

Either way :func:`~icpml.pipeline.discover` runs once per product with the same
targetable columns, churn column and settings, so each product ICP carries its own
held-out evidence, and a product whose data cannot support an ICP says so on its own
("No reliable ICP for product X") and claims nothing. Every account (one row per
account; no product column needed) is then scored against every product:

* ``icp_<product>``: the account meets that product's ICP (and none of its exclusions);
* ``fit_<product>``: that product's fit score, the probability of its best cohort
  (missing for a product whose discovery could not run);
* ``tier_<product>``: Tier 1 / Tier 2 / Tier 3 / Excluded against that product's criteria
  (see :mod:`icpml.scoring`; missing for a product whose discovery could not run);
* ``n_product_icps``: how many product ICPs the account meets;
* ``best_product``: the product whose ICP the account fits best: the best tier among
  Tier 1 and Tier 2, then the higher fit score; missing when the account is Tier 1 or 2
  for no product;
* ``expected_value``: the sum over products of ``fit_<product>`` times the mean of the
  product's first outcome over its best cohort: what the account would be worth across
  the portfolio, in the unit of those outcomes (e.g. won value), if each probability held.

With ``track=True`` each product's models are registered as ``<name>-fit-<product>``;
:func:`load_product_scorers` loads every product's ``@champion`` back, so ``icpml score -c
<config>`` scores a prospect table against every product with the same columns and values
as :meth:`ProductDiscovery.score`.

The **overlap** table counts, for every pair of products, the accounts that
meet both ICPs and their Jaccard index (both / either): low overlap means the
product lines need separate targeting, high overlap that one ICP serves both.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from icpml._io import staged_folder, write_table
from icpml.cohorts import BEST
from icpml.config import Config, model_slug
from icpml.data import load_source, product_lines, validate_accounts
from icpml.errors import ConfigError, DataError
from icpml.pipeline import Discovery
from icpml.run import run_discovery
from icpml.scoring import SCORE_DECIMALS, Scorer

log = logging.getLogger(__name__)

__all__ = ["ProductDiscovery", "ProductScorers", "discover_products", "load_product_scorers",
           "product_config", "write_folder"]

#: run tags a product's discovery leaves for scoring from the store (see :func:`load_product_scorers`)
TAG_PRODUCT, TAG_PRODUCTS, TAG_BEST_VALUE = ("icpml.product", "icpml.products",
                                             "icpml.product_best_value")

#: the tiers that make a product a candidate for ``best_product``, best first
_BEST_TIERS = ("Tier 1", "Tier 2")


@dataclass
class ProductDiscovery:
    """One discovery per product and their combination.

    Parameters
    ----------
    per_product : dict
        Product name -> :class:`~icpml.pipeline.Discovery`, for every product whose
        discovery ran (a product listed in ``failed`` has none).
    scored : DataFrame
        One row per account: id, ``n_product_icps``, ``expected_value``, then per product
        ``icp_<p>``, ``fit_<p>``, ``tier_<p>``, and ``best_product`` (see the module).
    overlap : DataFrame
        Per product pair: accounts meeting each ICP, both, and the Jaccard index.
    summary : DataFrame
        Per product: verdict, ICP criteria, lift and interval, fit AUC, rows used.
    timings : dict of str to float
        Product -> wall-clock seconds its discovery took (failed ones included).
    failed : dict
        Product -> why no ICP could be discovered from its rows (e.g. too few rows for a
        best and a worst cohort). Such a product claims nothing: ``icp_<p>`` is False and
        its fit and tier are missing.
    product_column : str, optional
        ``columns.product`` when the table had one row per customer and product.
    id_column : str, default "account_id"
        The account id column (``columns.id``) of :attr:`scored` and :meth:`score`.
    best_values : dict of str to float
        Product -> mean first outcome of its best cohort (0.0 when none is finite),
        the weight of its fit in ``expected_value``.
    """

    per_product: dict[str, Discovery]
    scored: pd.DataFrame
    overlap: pd.DataFrame
    summary: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    product_column: str | None = None
    id_column: str = "account_id"
    best_values: dict[str, float] = field(default_factory=dict)

    @property
    def products(self) -> list[str]:
        """Every product, in discovery order (those in ``failed`` included)."""
        return list(self.summary["product"])

    @property
    def scorers(self) -> dict[str, Scorer]:
        """Product -> its :class:`~icpml.scoring.Scorer` (models, criteria and the schema
        learned at that product's discovery)."""
        return {p: res.scorer for p, res in self.per_product.items()}

    def score(self, accounts: pd.DataFrame) -> pd.DataFrame:
        """Score every account against every product.

        Parameters
        ----------
        accounts : DataFrame
            One row per account (customers or prospects): the id and the feature columns;
            no product or outcome column is needed. Not modified.

        Returns
        -------
        DataFrame
            One row per input row, in input order, with the columns of :attr:`scored`.
        """
        return _score_all(self.products, self.scorers, accounts, self.id_column, self.best_values)

    def exports(self) -> dict[str, dict]:
        """The criteria of every product whose discovery ran, as JSON, SQL and pandas.

        Each criteria.json carries the column schema learned at that product's discovery.

        Returns
        -------
        dict of str to dict
            Product -> ``{"json": str, "sql": {"icp", "anti_icp"}, "pandas": {"icp",
            "anti_icp"}}`` (:meth:`~icpml.criteria.CriteriaSet.to_json`, ``to_sql`` and
            ``to_pandas``). When the criteria cannot be written as pandas expressions the
            ``pandas`` entry is ``{"icp": None, "anti_icp": None, "note": <why>}``.
            Products in :attr:`failed` have no entry.
        """
        out = {}
        for p, res in self.per_product.items():
            cs = res.criteria
            try:
                pandas = cs.to_pandas()
            except ConfigError as err:
                pandas = {"icp": None, "anti_icp": None, "note": str(err)}
            out[p] = {"json": cs.to_json(), "sql": cs.to_sql(), "pandas": pandas}
        return out

    def to_html(self, links: bool = False) -> str:
        """The cross-product report as one self-contained HTML page.

        Parameters
        ----------
        links : bool, default False
            Link each product section to ``<product>/report.html``.

        Returns
        -------
        str
            :meth:`to_markdown` rendered as HTML (user text escaped, no raw HTML passed
            through), with inline CSS.
        """
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(
            self.to_markdown(links))
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<title>Cross-product ICP</title>\n<style>\n" + _CSS + "</style>\n</head>\n"
                "<body>\n" + body + "</body>\n</html>\n")

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the cross-product report folder, all or nothing.

        ``products.md`` (:meth:`to_markdown`) and ``products.html`` (:meth:`to_html`), one
        section per product and the overlap, ``products_scored.csv``, ``overlap.csv``,
        ``summary.csv`` (fit scores to 4 decimals, expected value to 2) and per product with a
        discovery ``<product>/report.html`` and ``criteria.md`` (that product's report, as
        :mod:`icpml.report` renders one discovery's), ``criteria.json``, ``criteria.sql`` and
        ``criteria_pandas.txt``. The folder is built beside ``folder`` and renamed into
        place, replacing an older one.

        Parameters
        ----------
        folder : str or path-like
            The report folder.

        Returns
        -------
        Path
            ``folder``.
        """
        from icpml._io import staged_folder

        dest = Path(folder)
        with staged_folder(dest) as tmp:
            fits = {c: SCORE_DECIMALS for c in self.scored.columns if c.startswith("fit_")}
            write_table(self.scored.round({**fits, "expected_value": 2}),
                        tmp / "products_scored.csv")
            write_table(self.overlap, tmp / "overlap.csv")
            write_table(self.summary, tmp / "summary.csv")
            (tmp / "products.md").write_text(self.to_markdown(links=True), encoding="utf-8")
            (tmp / "products.html").write_text(self.to_html(links=True), encoding="utf-8")
            from icpml import report

            for p, ex in self.exports().items():
                sub = tmp / model_slug(p)
                sub.mkdir()
                res = self.per_product[p]
                (sub / "report.html").write_text(report.render_html(res, None, dest / sub.name),
                                                 encoding="utf-8")
                (sub / "criteria.md").write_text(report.render_markdown(res, dest / sub.name),
                                                 encoding="utf-8")
                (sub / "criteria.json").write_text(ex["json"], encoding="utf-8")
                (sub / "criteria.sql").write_text(
                    f"-- ICP of product {p}\n{ex['sql']['icp']}\n\n"
                    f"-- anti-ICP of product {p}\n{ex['sql']['anti_icp']}\n", encoding="utf-8")
                (sub / "criteria_pandas.txt").write_text(
                    f"# ICP of product {p} (DataFrame.query)\n{ex['pandas']['icp']}\n\n"
                    f"# anti-ICP of product {p}\n{ex['pandas']['anti_icp']}\n", encoding="utf-8")
        return dest

    def to_markdown(self, links: bool = False) -> str:
        """The cross-product report in Markdown.

        Parameters
        ----------
        links : bool, default False
            Link each product section to ``<product>/report.html`` (as :meth:`write` lays
            the folder out).

        Returns
        -------
        str
            The summary, one section per product (that product's own report page, as
            ``criteria.md`` of a single discovery shows it: verdict, ICP and anti-ICP
            criteria with held-out evidence, tiers), the overlap table and the accounts by
            number of product ICPs met; ends with a newline.
        """
        lines = ["# Cross-product ICP", ""]
        if self.product_column:
            lines += [f"One ICP per value of `{self.product_column}`, each discovered from that "
                      "product's rows only.", ""]
        lines += ["## One ICP per product", "",
                  "| product | rows | verdict | ICP | lift [95% CI] | fit ROC AUC |",
                  "| --- | ---: | --- | --- | --- | ---: |"]
        for r in self.summary.itertuples(index=False):
            ci = (f"{r.lift:.2f} [{r.lift_low:.2f}, {r.lift_high:.2f}]"
                  if pd.notna(r.lift_low) else "n/a")
            auc = f"{r.fit_roc_auc:.3f}" if pd.notna(r.fit_roc_auc) else "n/a"
            lines.append(f"| {_md(r.product)} | {r.n_rows} | "
                         f"{'ICP found' if r.icp_found else 'no reliable ICP'} "
                         f"| {_md(r.icp) or '(none)'} | {ci} | {auc} |")
        for p in self.products:
            lines += ["", f"## Product {_md(p)}", ""]
            if p in self.failed:
                lines.append(f"No reliable ICP for product {_md(p)}: {_md(self.failed[p])}")
                continue
            lines += _product_section(p, self.per_product[p],
                                      f"{model_slug(p)}/report.html" if links else None)
        lines += ["", "## Overlap of the product ICPs", "",
                  "| product A | product B | meet A | meet B | meet both | Jaccard |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in self.overlap.itertuples(index=False):
            jac = f"{r.jaccard:.2f}" if pd.notna(r.jaccard) else "n/a"
            lines.append(f"| {_md(r.product_a)} | {_md(r.product_b)} | {r.n_a} | {r.n_b} "
                         f"| {r.n_both} | {jac} |")
        counts = self.scored["n_product_icps"].value_counts().sort_index()
        lines += ["", "## Accounts by number of product ICPs met", "",
                  "| product ICPs met | accounts |", "| ---: | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in counts.items()]
        best = self.scored["best_product"].fillna("(none)").value_counts()
        lines += ["", "## Accounts by best product", "", "| best product | accounts |",
                  "| --- | ---: |"]
        lines += [f"| {_md(k)} | {v} |" for k, v in best.items()]
        return "\n".join(lines) + "\n"


def write_folder(folder: str | os.PathLike[str], files: dict[str, str]) -> Path:
    """Write text files under ``folder``, none half-written.

    Every file is written in a temporary folder beside ``folder`` first; a new ``folder``
    is then renamed into place whole, and into an existing one each file is moved with an
    atomic rename (other files there are left alone).

    Parameters
    ----------
    folder : str or path-like
        The destination folder (created with its parents when absent).
    files : dict of str to str
        Path relative to ``folder`` -> text (written as UTF-8).

    Returns
    -------
    Path
        ``folder``.
    """
    dest = Path(folder)
    with staged_folder(dest, merge=True) as tmp:
        for rel, text in files.items():
            f = tmp / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text, encoding="utf-8")
    return dest


_CSS = """  body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
         color: #1a1a1a; max-width: 1100px; margin: 0 auto; padding: 24px 32px; line-height: 1.45; }
  h2 { border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 1.8em; }
  table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 0.93em; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
  th { background: #f4f6f8; }
"""


def _md(text: object) -> str:
    return str(text).replace("|", "\\|")


def _product_section(product: str, res: Discovery, link: str | None = None) -> list[str]:
    """Markdown lines of one product: the product's own one-page report
    (:func:`icpml.report.render_markdown`: verdict, ICP and anti-ICP with held-out evidence,
    tiers, next steps, warnings) with its headings one level down, under the product's."""
    from icpml import report

    text = report.render_markdown(res, Path(link).parent if link else None)
    body = text.split("\n", 1)[1] if text.startswith("# ") else text  # the title is ours
    lines = [("#" + ln) if ln.startswith("#") else ln for ln in body.strip("\n").splitlines()]
    if not res.criteria.verdict.get("icp_found"):
        lines = [_md(_no_icp(product, res.criteria.verdict.get("message", ""))), "", *lines]
    if link:
        lines = [f"Full report with figures: [{link}]({link})", "", *lines]
    return lines


def _no_icp(product: str, message: str) -> str:
    """The verdict of a product without an ICP, naming the product."""
    return f"No reliable ICP for product {product}: " + message.removeprefix("No reliable ICP found: ")


def _num(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x)


def product_config(cfg: Config, product: str) -> Config:
    """The config of one product's discovery: same columns and settings, and

    * with ``columns.product``: no product column (the rows are that product's already);
    * with ``products:``: the product's outcomes.

    Run names and registered models get the product as a suffix (``<name>-<product>``).

    Parameters
    ----------
    cfg : Config
        The multi-product config (``columns.product`` or ``products:`` set); not modified.
    product : str
        The product line; with ``products:`` it must be one of its keys.

    Returns
    -------
    Config
        A copy of ``cfg`` with ``name``, ``tracking.experiment``,
        ``tracking.fit_model_name`` and ``tracking.churn_model_name`` suffixed
        ``-<product slug>``, the columns above, and ``products`` emptied.

    Raises
    ------
    KeyError
        Without ``columns.product``, ``product`` is not a key of ``cfg.products``.
    """
    update = ({"product": None} if cfg.columns.product
              else {"outcomes": cfg.products[product]})
    cols = cfg.columns.model_copy(update=update)
    slug = model_slug(product)
    tracking = cfg.tracking.model_copy(update={
        "experiment": f"{cfg.tracking.experiment}-{slug}",
        "fit_model_name": f"{cfg.tracking.fit_model_name}-{slug}",
        "churn_model_name": f"{cfg.tracking.churn_model_name}-{slug}",
    })
    return cfg.model_copy(update={"name": f"{cfg.name}-{slug}", "columns": cols,
                                  "tracking": tracking, "products": {}})


def discover_products(cfg: Config, accounts: pd.DataFrame | None = None, *,
                      track: bool = False) -> ProductDiscovery:
    """Discover one ICP per product line and score every account against every product.

    Parameters
    ----------
    cfg : Config
        Must set ``columns.product`` (one row per customer and product) or define
        ``products`` (an outcome set per product).
    accounts : DataFrame, optional
        Read through the config's data source when omitted. Not modified.
    track : bool
        Log each product's run and register its models (``<name>-<product>``).

    Returns
    -------
    ProductDiscovery
        ``scored`` has one row per distinct account. With ``columns.product`` an account's
        features are read from its first row (they describe the customer, not the product).

    Raises
    ------
    ConfigError
        Neither ``columns.product`` nor ``products`` is set.
    DataError
        With ``columns.product``: the column is missing or blank somewhere, has fewer than
        2 or more than 50 product lines, or an (id, product) pair repeats. A product with
        too few rows is not an error: it is listed in ``failed``.
    """
    if not cfg.products and not cfg.columns.product:
        raise ConfigError("no products in the config: set columns.product (one row per customer "
                          "and product) or add products: {name: [outcomes]} to discover one ICP "
                          "per product")
    source = "accounts"
    if accounts is None:
        accounts, source = load_source(cfg)
    id_col = cfg.columns.id
    if cfg.columns.product:
        validate_accounts(accounts, cfg, source=source)  # one-line DataError on a bad table
        lines = product_lines(accounts[cfg.columns.product])
        names = sorted(lines.dropna().unique(), key=str)
        tables = {p: accounts[(lines == p).fillna(False).to_numpy(bool)] for p in names}
        everyone = accounts.drop_duplicates(subset=[id_col], keep="first")
    else:
        names = list(cfg.products)
        tables = dict.fromkeys(names, accounts)
        everyone = accounts

    per: dict[str, Discovery] = {}
    run_ids: dict[str, str | None] = {}
    failed: dict[str, str] = {}
    timings: dict[str, float] = {}
    for product in names:
        t0 = time.perf_counter()
        try:
            run = run_discovery(product_config(cfg, product), tables[product], track=track,
                                report=False, source=f"{source} [{product}]")
            per[product], run_ids[product] = run.discovery, run.run_id
            msg = per[product].criteria.verdict["message"]
        except DataError as err:  # too little data for this product: it claims nothing
            failed[product] = "; ".join(err.problems)
            msg = _no_icp(product, failed[product])
        timings[product] = round(time.perf_counter() - t0, 3)
        log.info("product=%s seconds=%.2f %s", product, timings[product], msg)

    best_values = {}
    value_cols = {}
    for product, res in per.items():
        value_col = res.config.columns.outcomes[0].column
        best = (res.cohorts == BEST).to_numpy()
        vals = pd.to_numeric(res.accounts[value_col], errors="coerce").to_numpy(float)[best]
        best_values[product] = float(np.nanmean(vals)) if best.any() and np.isfinite(vals).any() \
            else 0.0
        value_cols[product] = value_col

    if track:  # what scoring from the store needs: the product names and best-cohort values
        from icpml.tracking import tag_run

        for product in per:
            if run_ids.get(product):
                tag_run(run_ids[product], {TAG_PRODUCT: product, TAG_PRODUCTS: json.dumps(names),
                                     TAG_BEST_VALUE: repr(best_values[product])})

    out = ProductDiscovery(per, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), timings, failed,
                           cfg.columns.product, id_col, best_values)
    out.summary = _summary(names, per, failed, tables, best_values, value_cols)
    out.scored = out.score(everyone)
    out.overlap = _overlap(names, out.scored)
    return out


def _score_all(names: list[str], scorers: dict[str, Scorer], accounts: pd.DataFrame,
               id_col: str, best_values: dict[str, float]) -> pd.DataFrame:
    """Score ``accounts`` with every product's scorer and combine (see the module)."""
    per = {p: s.score(accounts) for p, s in scorers.items()}
    ids = (next(iter(per.values()))[id_col].to_numpy() if per
           else accounts[id_col].astype("string").to_numpy())
    return _combine(names, per, ids, id_col, best_values)


@dataclass
class ProductScorers:
    """Every product's champion scorer, loaded from the tracking store.

    What ``icpml score -c <config>`` uses for a product-line config: scoring gives the
    same columns and values as :meth:`ProductDiscovery.score` of the discovery that
    registered the models.

    Parameters
    ----------
    products : list of str
        Every product of the discovery, in its order (those in ``missing`` included).
    scorers : dict
        Product -> the :class:`~icpml.scoring.Scorer` of its ``@champion`` fit model.
    refs : dict
        Product -> the :class:`~icpml.tracking.ModelRef` it was loaded from.
    best_values : dict
        Product -> mean first outcome of its best cohort (for ``expected_value``).
    missing : dict
        Product -> why no model could be used (no model, no ``@champion``); such a
        product claims nothing: ``icp_<p>`` False, fit and tier missing.
    id_column : str
        The account id column.
    """

    products: list[str]
    scorers: dict[str, Scorer]
    refs: dict[str, object]
    best_values: dict[str, float]
    missing: dict[str, str]
    id_column: str

    @property
    def input_columns(self) -> list[str]:
        """Every column some product's model reads, first seen first."""
        return list(dict.fromkeys(c for s in self.scorers.values() for c in s.input_columns))

    def score(self, accounts: pd.DataFrame) -> pd.DataFrame:
        """Score every account against every product's champion.

        Parameters
        ----------
        accounts : DataFrame
            One row per account: the id and the feature columns. Not modified.

        Returns
        -------
        DataFrame
            One row per input row, in input order: id, ``n_product_icps``,
            ``expected_value``, per product ``icp_<p>`` / ``fit_<p>`` / ``tier_<p>``, and
            ``best_product`` (as :meth:`ProductDiscovery.score`).
        """
        return _score_all(self.products, self.scorers, accounts, self.id_column,
                          self.best_values)

    def score_batches(self, batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """:meth:`score` over a stream of tables, one session per product for the stream.

        Each product's data issues are logged once, as one warning, when the stream ends
        (not once per batch), ids repeated anywhere in the stream are flagged, and a table
        without ids is numbered over the whole stream.

        Parameters
        ----------
        batches : iterable of pandas.DataFrame
            Raw account tables, read lazily. Not modified.

        Yields
        ------
        pandas.DataFrame
            The combined scores of each chunk of at most the smallest
            :attr:`~icpml.scoring.Scorer.chunk_size` rows, columns as :meth:`score`.
        """
        from contextlib import ExitStack

        from icpml.scoring import ScoreStream

        size = min((s.chunk_size for s in self.scorers.values()), default=50_000)
        with ExitStack() as stack:
            streams = {p: ScoreStream(stack.enter_context(s.session()), label=f"product {p}")
                       for p, s in self.scorers.items()}
            rows = 0
            for batch in batches:
                for i in range(0, max(len(batch), 1), size):
                    part = batch.iloc[i:i + size]
                    per = {p: st.score(part) for p, st in streams.items()}
                    if per:  # the scorers' ids: as read, or numbered over the stream
                        ids = next(iter(per.values()))[self.id_column].to_numpy()
                    elif self.id_column in part.columns:
                        ids = part[self.id_column].astype("string").to_numpy()
                    else:
                        ids = pd.array(range(rows, rows + len(part)), dtype="Int64").astype("string")
                    rows += len(part)
                    yield _combine(self.products, per, ids, self.id_column, self.best_values)
            for st in streams.values():
                st.finish()


def load_product_scorers(cfg: Config) -> ProductScorers:
    """Load the ``@champion`` fit model of every product of a product-line config.

    The models are those :func:`discover_products` registered with ``track=True``
    (``<tracking.fit_model_name>-<product>``); the product names, the full product list
    (products that got no model included) and each product's best-cohort value are read
    from the tags of each champion's run.

    Parameters
    ----------
    cfg : Config
        With ``columns.product`` or ``products``; names the tracking store.

    Returns
    -------
    ProductScorers

    Raises
    ------
    ConfigError
        The config has no product lines.
    TrackingError
        No store, or no product has a model with a ``@champion``.
    """
    from mlflow import MlflowClient

    from icpml import tracking
    from icpml.errors import TrackingError

    if not cfg.products and not cfg.columns.product:
        raise ConfigError("no products in the config: set columns.product or products: to "
                          "score every product line")
    base = cfg.tracking.fit_model_name
    if cfg.products:
        models = {p: f"{base}-{model_slug(p)}" for p in cfg.products}
    else:
        prefix = f"{base}-"
        models = {m[len(prefix):]: m for m in tracking.fit_models(cfg) if m.startswith(prefix)}
    client = MlflowClient()
    scorers, refs, best_values, missing = {}, {}, {}, {}
    listed: list[str] = list(cfg.products)
    for label, name in models.items():
        try:
            ref = tracking.resolve_model(f"models:/{name}@champion", cfg)
        except TrackingError as err:
            missing[label] = str(err)
            continue
        tags = client.get_run(ref.run_id).data.tags if ref.run_id else {}
        product = tags.get(TAG_PRODUCT, label)
        if not cfg.products:
            listed += [p for p in json.loads(tags.get(TAG_PRODUCTS, "[]")) if p not in listed]
        scorers[product] = tracking.load_scorer(ref, cfg)
        refs[product] = ref
        best_values[product] = float(tags.get(TAG_BEST_VALUE, 0.0))
        missing.pop(product, None)
    names = listed if cfg.products else sorted(set(listed) | set(scorers), key=str)
    # a product the discovery listed but whose model is absent or lost its champion
    slugs = {model_slug(p): p for p in names}
    missing = {slugs.get(k, k): v for k, v in missing.items()}
    for p in names:
        if p not in scorers and p not in missing:
            missing[p] = f"no model {base}-{model_slug(p)} (its discovery found no ICP)"
    names += [p for p in missing if p not in names]
    if not scorers:
        where = tracking.redact(tracking.tracking_uri(cfg))
        raise TrackingError(f"no product model of config '{cfg.name}' has a @champion in '{where}' "
                            f"(looked for {base}-<product>); run `icpml discover -c <config>` "
                            "first, or promote a version")
    return ProductScorers(names, scorers, refs, best_values, missing, cfg.columns.id)


def _combine(names: list[str], per: dict[str, pd.DataFrame], ids: np.ndarray, id_col: str,
             best_values: dict[str, float]) -> pd.DataFrame:
    """Per-product scored tables (each row-aligned with ``ids``) -> the combined table."""
    n = len(ids)
    scored = pd.DataFrame({id_col: pd.array(ids, dtype="string")})
    scored["n_product_icps"] = 0
    scored["expected_value"] = 0.0
    rank = np.full(n, np.inf)
    best = np.full(n, None, dtype=object)
    for product in names:
        s = per.get(product)
        if s is None:  # discovery could not run: no claim, no score
            match = np.zeros(n, dtype=bool)
            fit = np.full(n, np.nan)
            tier = pd.array([pd.NA] * n, dtype="string")
        else:
            match = s["icp_match"].fillna(False).to_numpy(bool)
            fit = s["fit_score"].to_numpy(float)
            tier = pd.array(np.asarray(s["tier"].astype(str)), dtype="string")
        scored[f"icp_{product}"] = match
        scored[f"fit_{product}"] = fit
        scored[f"tier_{product}"] = tier
        scored["n_product_icps"] += match.astype(int)
        scored["expected_value"] += np.nan_to_num(fit) * best_values.get(product, 0.0)
        # best product: the best tier among Tier 1 / Tier 2, then the highest fit score
        t = np.asarray(tier.fillna(""), dtype=object)
        r = np.select([t == _BEST_TIERS[0], t == _BEST_TIERS[1]], [0.0, 1.0], np.inf) \
            - np.nan_to_num(fit) / 2
        better = r < rank
        rank = np.where(better, r, rank)
        best = np.where(better, product, best)
    scored["best_product"] = pd.array(best, dtype="string")
    return scored


def _summary(names: list[str], per: dict[str, Discovery], failed: dict[str, str],
             tables: dict[str, pd.DataFrame], best_values: dict[str, float],
             value_cols: dict[str, str]) -> pd.DataFrame:
    rows = []
    for product in names:
        res = per.get(product)
        if res is None:
            rows.append({"product": product, "n_rows": len(tables[product]), "icp_found": False,
                         "verdict": _no_icp(product, failed[product]),
                         "icp": "", "lift": None, "lift_low": None, "lift_high": None,
                         "fit_roc_auc": None, "best_value": None, "value_column": None})
            continue
        ev = res.criteria.icp_evidence
        lo, hi = (ev.get("lift_ci") or [None, None])[:2]
        found = bool(res.criteria.verdict["icp_found"])
        msg = res.criteria.verdict.get("message", "")
        rows.append({"product": product, "n_rows": len(res.accounts), "icp_found": found,
                     "verdict": msg if found else _no_icp(product, msg),
                     "icp": " AND ".join(c.describe() for c in res.criteria.icp),
                     "lift": ev.get("lift"), "lift_low": lo, "lift_high": hi,
                     "fit_roc_auc": res.fit_model.holdout.get("roc_auc"),
                     "best_value": best_values[product], "value_column": value_cols[product]})
    return pd.DataFrame(rows)


def _overlap(names: list[str], scored: pd.DataFrame) -> pd.DataFrame:
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = scored[f"icp_{a}"], scored[f"icp_{b}"]
            either = int((ma | mb).sum())
            pairs.append({"product_a": a, "product_b": b, "n_a": int(ma.sum()),
                          "n_b": int(mb.sum()), "n_both": int((ma & mb).sum()),
                          "jaccard": (ma & mb).sum() / either if either else float("nan")})
    return pd.DataFrame(pairs, columns=["product_a", "product_b", "n_a", "n_b", "n_both",
                                        "jaccard"])
