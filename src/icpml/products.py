"""Cross-product ICP: one ICP per product line, and how the product ICPs overlap.

A company with several product lines rarely has one ICP: the accounts that buy
the analytics add-on are not the ones that buy the core platform. With
``products:`` in the config (product name -> its own outcomes, e.g. the
per-product ``won_value__<product>`` and ``win_rate__<product>`` that the
CRM-export adapter builds), :func:`discover_products` runs the full discovery
once per product, with the same targetable columns, churn column and settings
and only the outcomes swapped, so each product ICP carries its own held-out
evidence (and says "No reliable ICP found" on its own when its data cannot
support one). It then combines them per account:

* ``icp_<product>``: the account meets that product's ICP (and no exclusion);
* ``fit_<product>``: that product's fit score, the probability of its best cohort;
* ``n_product_icps``: how many product ICPs the account meets;
* ``expected_value``: the sum over products of ``fit_<product>`` times the mean
  of the product's first outcome over its best cohort: what the account would
  be worth across the portfolio, in the unit of those outcomes (e.g. won value),
  if each probability held.

The **overlap** table counts, for every pair of products, the accounts that
meet both ICPs and their Jaccard index (both / either): low overlap means the
product lines need separate targeting, high overlap that one ICP serves both.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from icpml.cohorts import BEST
from icpml.config import Config
from icpml.data import load_source
from icpml.errors import ConfigError
from icpml.pipeline import Discovery
from icpml.run import run_discovery

log = logging.getLogger(__name__)

__all__ = ["ProductDiscovery", "discover_products"]


@dataclass
class ProductDiscovery:
    """One discovery per product and their combination.

    Attributes
    ----------
    per_product : dict
        Product name -> :class:`~icpml.pipeline.Discovery`.
    scored : DataFrame
        Per account: id, ``icp_<p>``, ``fit_<p>``, ``n_product_icps``, ``expected_value``.
    overlap : DataFrame
        Per product pair: accounts meeting each ICP, both, and the Jaccard index.
    summary : DataFrame
        Per product: verdict, ICP criteria, lift and interval, fit AUC.
    """

    per_product: dict[str, Discovery]
    scored: pd.DataFrame
    overlap: pd.DataFrame
    summary: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The cross-product section of a report, in Markdown."""
        lines = ["# Cross-product ICP", "", "## One ICP per product", "",
                 "| product | verdict | ICP | lift [95% CI] | fit ROC AUC |",
                 "| --- | --- | --- | --- | ---: |"]
        for r in self.summary.itertuples(index=False):
            ci = (f"{r.lift:.2f} [{r.lift_low:.2f}, {r.lift_high:.2f}]"
                  if pd.notna(r.lift_low) else "n/a")
            lines.append(f"| {r.product} | {'ICP found' if r.icp_found else 'no reliable ICP'} "
                         f"| {_md(r.icp) or '(none)'} | {ci} | {r.fit_roc_auc:.3f} |")
        lines += ["", "## Overlap of the product ICPs", "",
                  "| product A | product B | meet A | meet B | meet both | Jaccard |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in self.overlap.itertuples(index=False):
            jac = f"{r.jaccard:.2f}" if pd.notna(r.jaccard) else "n/a"
            lines.append(f"| {r.product_a} | {r.product_b} | {r.n_a} | {r.n_b} | {r.n_both} "
                         f"| {jac} |")
        counts = self.scored["n_product_icps"].value_counts().sort_index()
        lines += ["", "## Accounts by number of product ICPs met", "",
                  "| product ICPs met | accounts |", "| ---: | ---: |"]
        lines += [f"| {k} | {v} |" for k, v in counts.items()]
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def product_config(cfg: Config, product: str) -> Config:
    """The config of one product: same columns and settings, the product's outcomes."""
    cols = cfg.columns.model_copy(update={"outcomes": cfg.products[product]})
    tracking = cfg.tracking.model_copy(update={
        "experiment": f"{cfg.tracking.experiment}-{product}",
        "fit_model_name": f"{cfg.tracking.fit_model_name}-{product}",
        "churn_model_name": f"{cfg.tracking.churn_model_name}-{product}",
    })
    return cfg.model_copy(update={"name": f"{cfg.name}-{product}", "columns": cols,
                                  "tracking": tracking, "products": {}})


def discover_products(cfg: Config, accounts: pd.DataFrame | None = None, *,
                      track: bool = False) -> ProductDiscovery:
    """Discover one ICP per product in ``cfg.products`` and combine them.

    Parameters
    ----------
    cfg : Config
        Must define ``products``.
    accounts : DataFrame, optional
        Read through the config's data source when omitted. Not modified.
    track : bool
        Log each product's run and register its models (``<name>-<product>``).

    Raises
    ------
    ConfigError
        ``products`` is empty.
    """
    if not cfg.products:
        raise ConfigError("no products in the config: add products: {name: [outcomes]} "
                          "to discover one ICP per product")
    if accounts is None:
        accounts, _ = load_source(cfg)
    per: dict[str, Discovery] = {}
    timings: dict[str, float] = {}
    for product in cfg.products:
        t0 = time.perf_counter()
        per[product] = run_discovery(product_config(cfg, product), accounts, track=track,
                                     report=False).discovery
        timings[product] = round(time.perf_counter() - t0, 3)
        log.info("product=%s seconds=%.2f %s", product, timings[product],
                 per[product].criteria.verdict["message"])

    id_col = cfg.columns.id
    first = next(iter(per.values()))
    scored = pd.DataFrame({id_col: first.scored[id_col].to_numpy()})
    scored["n_product_icps"] = 0
    scored["expected_value"] = 0.0
    rows = []
    for product, res in per.items():
        s = res.scored.set_index(id_col).loc[scored[id_col]]
        match = s["icp_match"].fillna(False).to_numpy(bool)
        scored[f"icp_{product}"] = match
        scored[f"fit_{product}"] = s["fit_score"].to_numpy(float)
        scored["n_product_icps"] += match.astype(int)
        value_col = cfg.products[product][0].column
        best = (res.cohorts == BEST).to_numpy()
        vals = pd.to_numeric(res.accounts[value_col], errors="coerce").to_numpy(float)[best]
        best_value = float(pd.Series(vals).mean()) if best.any() else 0.0
        scored["expected_value"] += scored[f"fit_{product}"].fillna(0.0) * best_value
        ev = res.criteria.icp_evidence
        lo, hi = ev.get("lift_ci") or [None, None]
        rows.append({"product": product, "icp_found": bool(res.criteria.verdict["icp_found"]),
                     "icp": " AND ".join(c.describe() for c in res.criteria.icp),
                     "lift": ev.get("lift"), "lift_low": lo, "lift_high": hi,
                     "fit_roc_auc": res.fit_model.holdout.get("roc_auc"),
                     "best_value": best_value, "value_column": value_col})
    summary = pd.DataFrame(rows)
    names = list(per)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = scored[f"icp_{a}"], scored[f"icp_{b}"]
            either = int((ma | mb).sum())
            pairs.append({"product_a": a, "product_b": b, "n_a": int(ma.sum()),
                          "n_b": int(mb.sum()), "n_both": int((ma & mb).sum()),
                          "jaccard": (ma & mb).sum() / either if either else float("nan")})
    overlap = pd.DataFrame(pairs, columns=["product_a", "product_b", "n_a", "n_b", "n_both",
                                           "jaccard"])
    return ProductDiscovery(per, scored, overlap, summary, timings)
