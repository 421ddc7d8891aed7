"""Procedural criteria benchmark: icpml vs peers on scenarios no one could tune to.

Usage::

    python benchmarks/criteria/procedural.py            # report seeds: 8 families x 5 + 20 null
    python benchmarks/criteria/procedural.py --quick    # report seeds, 1 draw per family + 2 null
    python benchmarks/criteria/procedural.py --dev      # development seeds (same counts)

Every (family, seed) draws its own planted truth (:mod:`generator`). Development seeds
(``--dev``) are 0-999; reporting seeds (the default) start at 1000 and are never used
while developing icpml. For each draw, icpml's ``discover()`` runs once (in the product
family, ``discover_products`` runs once on the (customer, product line) table with
``columns.product``, one ICP per product) (pure: nothing logged or written); pysubgroup, RuleFit and a
depth-3 tree (:mod:`peers`) learn on icpml's labels, split and screened columns, and every
method is measured the same way (README.md, *Procedural benchmark*).

Writes ``results/procedural.{md,json}`` (``procedural_quick.*`` with ``--quick``,
``procedural_dev*.*`` with ``--dev``). Everything but the timings is deterministic
given the seeds.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script or imported from elsewhere
    sys.path.insert(0, str(HERE))

from generator import FAMILIES, SIGNAL_FAMILIES, Spec, draw_spec, sample, spec_summary  # noqa: E402
from metrics import jsonable, membership, ratio, segment_quality  # noqa: E402
from peers import MethodOutput, Segment, run_peer  # noqa: E402

from icpml import discover  # noqa: E402
from icpml.cohorts import BEST, MIDDLE  # noqa: E402
from icpml.data import feature_kinds, validate_accounts  # noqa: E402

PEER_NAMES = ("pysubgroup", "RuleFit", "depth-3 tree")
METHODS = ("icpml", *PEER_NAMES)
TRUTH = "planted truth"
OBSERVED = "planted rule, values as loaded"
DEV_SEED0, REPORT_SEED0 = 0, 1000
PER_FAMILY, NULL_SEEDS = 5, 20
FRESH_N = 4000
QUICK_MAX_N = 4000
MAX_JOBS = 2


# ----------------------------------------------------------------------------- plan
def make_plan(*, dev: bool, quick: bool, per_family: int = PER_FAMILY,
              null_seeds: int = NULL_SEEDS, families: list[str] | None = None
              ) -> list[tuple[str, int]]:
    """(family, seed) pairs. Full: ``per_family`` seeds per signal family + ``null_seeds``
    null seeds, from seed 0 (``dev``) or 1000 (report). Quick: per signal family the first
    seed whose draw has at most 4,000 customers, and 2 null seeds."""
    s0 = DEV_SEED0 if dev else REPORT_SEED0
    fams = [f for f in FAMILIES if not families or f in families]
    plan = []
    for fam in fams:
        if quick:
            count = 2 if fam == "null" else 1
            seeds = []
            for s in range(s0, s0 + 50):
                if len(seeds) < count and _size(fam, s) <= QUICK_MAX_N:
                    seeds.append(s)
        else:
            seeds = list(range(s0, s0 + (null_seeds if fam == "null" else per_family)))
        plan += [(fam, s) for s in seeds]
    return plan


# ----------------------------------------------------------------------------- methods
def prepare_accounts(df: pd.DataFrame, cfg) -> pd.DataFrame:
    """Rows prepared as ``discover()``'s load stage prepares its input (validation, then
    merging spellings that differ only in case or spacing when icpml has it)."""
    out = validate_accounts(df, cfg)
    try:
        from icpml.data import normalize_categories
    except ImportError:  # older icpml
        return out
    cats = [c for c, k in feature_kinds(out, cfg).items() if k == "categorical"]
    return normalize_categories(out, cats)[0]


def _criterion_columns(c) -> set[str]:
    cols = getattr(c, "columns", None)
    return set(cols) if cols else {c.column}


def icpml_output(res, seconds: float) -> MethodOutput:
    """icpml's criteria: ICP segment = ``icp_mask`` (inclusions, no exclusion); anti =
    ``anti_mask``; claims = any criterion."""
    cs = res.criteria
    icp = anti = None
    if cs.icp:
        icp = Segment(" AND ".join(c.describe() for c in cs.icp),
                      frozenset(set().union(*(_criterion_columns(c) for c in cs.icp))),
                      lambda df: np.asarray(cs.icp_mask(df), dtype=bool))
    if cs.anti_icp:
        anti = Segment(" OR ".join(c.describe() for c in cs.anti_icp),
                       frozenset(set().union(*(_criterion_columns(c) for c in cs.anti_icp))),
                       lambda df: np.asarray(cs.anti_mask(df), dtype=bool))
    out = MethodOutput(icp=icp, anti=anti, claims=bool(cs.icp or cs.anti_icp), seconds=seconds,
                       extra={"verdict": (cs.verdict or {}).get("message"),
                              "fit_holdout_roc_auc": res.fit_model.holdout.get("roc_auc"),
                              "screened_out": sorted(getattr(res.screen, "excluded", []) or []),
                              "warnings": [str(w)[:300] for w in res.warnings][:8]})
    # icp_mask already removes the anti-ICP: keep MethodOutput from removing it twice
    out.icp_segment = lambda df: (icp.mask(df) if icp else np.zeros(len(df), dtype=bool))
    return out


def truth_output(plant, observed: bool = False) -> MethodOutput:
    """The planted rules as a method (reference rows): on the clean values the planted
    truth itself; ``observed``: the planted rules applied to the values as loaded (messy:
    blanks never match), the best any rule on these columns can do."""
    icp = Segment("planted ICP", frozenset(),
                  lambda df: plant.icp_mask(df, observed=observed))
    anti = Segment("planted anti-ICP", frozenset(),
                   lambda df: plant.anti_mask(df, observed=observed))
    out = MethodOutput(icp=icp, anti=anti, claims=True)
    out.icp_segment = lambda df: icp.mask(df)
    return out


def evaluate(out: MethodOutput, hold: pd.DataFrame, best_h: np.ndarray,
             truth_h: np.ndarray | None, fresh: pd.DataFrame | None,
             fresh_truth: tuple[np.ndarray, np.ndarray] | None,
             forbidden: dict[str, list[str]]) -> dict:
    """One method on one unit: held-out quality, fresh-row membership, columns used."""
    row: dict = {"claims": bool(out.claims), "error": out.error, "seconds": out.seconds}
    if out.error:
        return row
    try:
        seg = out.icp_segment(hold)
        q = segment_quality(seg, best_h)
        row |= {k: q[k] for k in ("coverage", "best_rate", "lift", "p_value")}
        row["significant"] = bool(seg.any() and q["p_value"] < 0.05)
        if truth_h is not None:  # no ICP segment delivers no lift: ratio 0
            row["lift_ratio"] = (ratio(q["lift"], segment_quality(truth_h, best_h)["lift"])
                                 if seg.any() else 0.0)
        if fresh is not None and fresh_truth is not None:
            for key, pred, true in (("icp", out.icp_segment(fresh), fresh_truth[0]),
                                    ("anti", out.anti_segment(fresh), fresh_truth[1])):
                m = membership(pred, true)
                row |= {f"{key}_{k}": v for k, v in m.items()}
    except Exception as err:  # noqa: BLE001 - a segment that cannot be evaluated is a result
        row["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        return row
    cols: set[str] = set()
    for s in (out.icp, out.anti):
        if s is not None:
            cols |= set(s.columns)
    row["icp_rule"] = out.icp.text if out.icp else None
    row["anti_rule"] = out.anti.text if out.anti else None
    row["columns_used"] = sorted(cols)
    row["leak_used"] = sorted(cols & set(forbidden.get("leak", [])))
    row["id_used"] = sorted(cols & set(forbidden.get("id", [])))
    if "planted" in forbidden:  # named columns that carry no planted effect
        row["unplanted_used"] = sorted(cols - set(forbidden["planted"]))
        row["confounder_used"] = sorted(cols & set(forbidden.get("confounder", [])))
    if out.extra:
        row["extra"] = out.extra
    return row


def run_unit(spec: Spec, key: str, accounts: pd.DataFrame, fresh_raw: pd.DataFrame | None,
             fresh_truth: tuple[np.ndarray, np.ndarray] | None, truth_icp: np.ndarray,
             *, determinism: bool = False, lines=None) -> dict:
    """icpml + peers (+ planted references) on one table (one product line, or all).

    ``lines``: in the product family, ``(discover_products result, seconds, rerun)`` of the
    whole table with ``columns.product``; this unit reads product ``key``'s discovery."""
    cfg = spec.config()
    if lines is not None:
        pd_res, secs, rerun = lines
        if key in pd_res.failed:
            raise RuntimeError(f"product {key}: {pd_res.failed[key]}")
        res = pd_res.per_product[key]
    else:
        t0 = time.perf_counter()
        res = discover(cfg, accounts)
        secs = time.perf_counter() - t0
    out: dict = {"product": key or None, "n": len(accounts)}
    outs = {"icpml": icpml_output(res, secs)}
    fit_rows = ((res.split != "holdout") & (res.cohorts != MIDDLE)).to_numpy()
    kinds = {c: res.kinds[c] for c in res.fit_model.columns}
    train, y = res.accounts[fit_rows], (res.cohorts[fit_rows] == BEST).to_numpy()
    for name in PEER_NAMES:
        outs[name] = run_peer(name, train, y, kinds, spec.seed)
    plant = spec.plants.get(key)
    if plant is not None:
        outs[TRUTH] = truth_output(plant)
        if spec.missing or spec.variants:
            outs[OBSERVED] = truth_output(plant, observed=True)
    ho = (res.split == "holdout").to_numpy()
    hold = res.accounts[ho]
    best_h = (res.cohorts[ho] == BEST).to_numpy()
    # planted truth of the held-out rows, aligned by id (icpml keeps the rows' order, but
    # the id is the contract)
    ids = accounts[spec.id_col].astype("string").to_numpy()
    pos = pd.Series(np.arange(len(ids)), index=ids)
    truth_h = (truth_icp[pos.loc[hold[spec.id_col].astype("string").to_numpy()].to_numpy()]
               if plant is not None else None)
    fresh = None
    if fresh_raw is not None:
        fresh = prepare_accounts(fresh_raw, cfg)
        for col in spec.leaks.values():  # prospects: post-outcome columns are blank
            fresh[col] = fresh[col].mask(pd.Series(True, index=fresh.index))
    names = dict(spec.forbidden)
    if plant is not None:
        names["planted"] = sorted({c.column for c in (*plant.icp, *plant.anti)})
        names["confounder"] = [spec.info["confounder"]["column"]] if "confounder" in spec.info \
            else []
    out["methods"] = {m: evaluate(o, hold, best_h, truth_h, fresh, fresh_truth, names)
                      for m, o in outs.items()}
    if plant is not None and plant.anti:
        out["oracle_anti"] = oracle_anti(plant, res)
    if determinism:
        res2 = (rerun().per_product[key] if lines is not None
                else discover(cfg, accounts))
        out["deterministic"] = res.criteria.to_json() == res2.criteria.to_json()
    return out


#: Oracle detectability of a planted anti condition: significant at this level divided by
#: the number of columns the fit model reads (Bonferroni over the columns a search must
#: look through, even knowing the right cut of each).
ORACLE_ALPHA = 0.05


def oracle_anti(plant, res) -> list[dict]:
    """Per planted anti condition: is it detectable at all on this draw's accounts?

    The oracle knows the condition (no search, no cut to choose) and tests it on every
    account icpml has, against icpml's cohorts: the larger of the one-sided Fisher
    p-values of a higher worst-cohort rate and a lower best-cohort rate inside than
    outside (the two tests icpml's exclusion test makes, without its effect-size gates).
    ``detectable``: that p is below :data:`ORACLE_ALPHA` / (columns the fit model reads).
    Also the condition's accounts and its best and worst lifts."""
    from scipy import stats

    df = res.accounts
    b = (res.cohorts == BEST).to_numpy(bool)
    w = (res.cohorts == "worst").to_numpy(bool)
    n_cols = max(len(res.fit_model.columns), 1)

    def greater(a, an, c, cn):
        if an == 0 or cn == 0:
            return 1.0
        return float(stats.fisher_exact([[a, an - a], [c, cn - c]], alternative="greater").pvalue)

    out = []
    for cond in plant.anti:
        try:
            m = np.asarray(cond.mask(df, observed=True), dtype=bool)
        except Exception:  # noqa: BLE001 - a condition icpml's table cannot express
            m = np.zeros(len(df), dtype=bool)
        k, n = int(m.sum()), len(m)
        p = max(greater(int(w[m].sum()), k, int(w[~m].sum()), n - k),
                greater(int(b[~m].sum()), n - k, int(b[m].sum()), k)) if 0 < k < n else 1.0
        out.append({"condition": cond.describe(), "accounts": k,
                    "best_lift": ratio(b[m].mean() if k else float("nan"), b.mean()),
                    "worst_lift": ratio(w[m].mean() if k else float("nan"), w.mean()),
                    "p_value": p, "detectable": bool(p < ORACLE_ALPHA / n_cols)})
    return out


def product_lines_run(spec: Spec, tables: dict[str, pd.DataFrame]):
    """Product family: the product tables as one table with one row per (customer, product
    line), discovered once with ``columns.product`` (:func:`icpml.products.discover_products`,
    one ICP per product from its own rows). Returns ``(result, seconds per product, rerun)``."""
    from icpml.config import config_from_dict
    from icpml.products import discover_products

    base = spec.config()
    data = base.model_dump(mode="json", exclude={"project_root"})
    data["columns"]["product"] = spec.product_col
    cfg = config_from_dict(data, project_root=base.project_root,
                           source=f"procedural {spec.family} seed {spec.seed}")
    table = pd.concat(list(tables.values()), ignore_index=True)
    t0 = time.perf_counter()
    res = discover_products(cfg, table)
    secs = (time.perf_counter() - t0) / max(len(tables), 1)
    return res, secs, lambda: discover_products(cfg, table)


def run_draw(task: tuple[str, int, bool]) -> dict:
    """One (family, seed): draw, run every unit, and combine units (mean over products)."""
    family, seed, determinism = task
    logging.getLogger("icpml").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    out: dict = {"family": family, "seed": seed, "n": 0}
    try:
        spec = draw_spec(family, seed)
        out |= {"n": spec.n, "spec": spec_summary(spec)}
        data = sample(spec, spec.n, "train")
        fresh = sample(spec, FRESH_N, "fresh") if spec.plants else None
        units = []
        lines = (product_lines_run(spec, data.accounts)
                 if spec.product_col and _has_product_column() else None)
        for i, key in enumerate(data.accounts):
            ft = (fresh.truth_icp[key], fresh.truth_anti[key]) if fresh else None
            units.append(run_unit(spec, key, data.accounts[key],
                                  fresh.accounts[key] if fresh else None, ft,
                                  data.truth_icp[key], determinism=determinism and i == 0,
                                  lines=lines))
        out["units"] = units
        out["methods"] = combine_units(units)
        oracle = [o for u in units for o in u.get("oracle_anti", [])]
        if oracle:
            out["oracle_anti"] = oracle
            out["anti_detectable"] = all(o["detectable"] for o in oracle)
        if determinism:
            out["deterministic"] = units[0].get("deterministic")
    except Exception as err:  # noqa: BLE001 - a failing draw is reported, the run goes on
        out["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


_MEAN_KEYS = ("coverage", "best_rate", "lift", "lift_ratio", "icp_precision", "icp_recall",
              "icp_f1", "anti_precision", "anti_recall", "anti_f1", "seconds")


def combine_units(units: list[dict]) -> dict[str, dict]:
    """Per method over the units of a draw: means of the numbers, any-of the flags."""
    if len(units) == 1:
        return units[0]["methods"]
    out = {}
    for m in units[0]["methods"]:
        rows = [u["methods"][m] for u in units if m in u["methods"]]
        err = next((r["error"] for r in rows if r.get("error")), None)
        ok = [r for r in rows if not r.get("error")]
        row: dict = {"error": err if not ok else None, "units": len(rows)}
        for k in _MEAN_KEYS:
            vals = [r[k] for r in ok if _finite(r.get(k))]
            row[k] = float(np.mean(vals)) if vals else None
        row["claims"] = any(r.get("claims") for r in ok)
        row["significant"] = any(r.get("significant") for r in ok)
        for k in ("leak_used", "id_used", "columns_used", "unplanted_used", "confounder_used"):
            row[k] = sorted({c for r in ok for c in r.get(k, [])})
        row["icp_rule"] = " | ".join(f"{u['product']}: {u['methods'][m].get('icp_rule')}"
                                     for u in units if m in u["methods"])
        out[m] = row
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- aggregate
def _q(vals: list[float], q: float) -> float | None:
    return float(np.percentile(vals, q)) if vals else None


def aggregate(draws: list[dict]) -> dict:
    """family -> method -> median / 10th percentile of the per-draw figures, counts."""
    table: dict = {}
    fams = list(dict.fromkeys(d["family"] for d in draws))
    for fam in [*fams, "all signal families"]:
        these = ([d for d in draws if d["family"] in SIGNAL_FAMILIES]
                 if fam == "all signal families" else [d for d in draws if d["family"] == fam])
        ok = [d for d in these if not d.get("error")]
        table[fam] = {"draws": len(these), "failed": len(these) - len(ok), "methods": {}}
        for m in (*METHODS, TRUTH, OBSERVED):
            rows = [d["methods"][m] for d in ok if m in d["methods"]]
            if not rows:
                continue
            good = [r for r in rows if not r.get("error")]
            agg: dict = {"runs": len(rows), "errors": len(rows) - len(good)}
            for k in ("icp_f1", "anti_f1", "lift_ratio", "lift", "coverage", "seconds"):
                vals = [r[k] for r in good if _finite(r.get(k))]
                agg[f"{k}_median"], agg[f"{k}_p10"] = _q(vals, 50), _q(vals, 10)
                agg[f"{k}_n"] = len(vals)
            agg["claims"] = sum(bool(r.get("claims")) for r in good)
            agg["significant"] = sum(bool(r.get("significant")) for r in good)
            agg["leak_in_criteria"] = sum(bool(r.get("leak_used")) for r in good)
            agg["id_in_criteria"] = sum(bool(r.get("id_used")) for r in good)
            agg["unplanted_in_criteria"] = sum(bool(r.get("unplanted_used")) for r in good)
            agg["confounder_in_criteria"] = sum(bool(r.get("confounder_used")) for r in good)
            table[fam]["methods"][m] = agg
        if fam != "null":
            wins = [_icpml_wins(d) for d in ok]
            wins = [w for w in wins if w is not None]
            table[fam]["icpml_f1_ge_every_peer"] = (sum(wins) / len(wins)) if wins else None
            table[fam]["icpml_f1_ge_every_peer_n"] = len(wins)
    return table


def _icpml_wins(d: dict) -> bool | None:
    me = d["methods"].get("icpml", {})
    if me.get("error") or not _finite(me.get("icp_f1")):
        return None
    peers = [d["methods"][p].get("icp_f1") for p in PEER_NAMES if p in d["methods"]]
    return all(not _finite(f) or me["icp_f1"] >= f - 1e-12 for f in peers)


# ----------------------------------------------------------------------------- markdown
def _f(x, nd: int = 2) -> str:
    return "n/a" if not _finite(x) else f"{x:.{nd}f}"


def _md(text) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    agg = results["aggregate"]
    lines = [f"# Procedural criteria benchmark ({meta['mode']})", "",
             f"Seeds: {meta['seed_set']}. {meta['n_draws']} draws "
             f"({meta['n_signal']} with a planted ICP, {meta['n_null']} null). "
             f"icpml git {meta.get('git')}; {meta['machine']}; wall time "
             f"{meta['total_seconds']:.0f} s with {meta['jobs']} process(es), {meta['date']}. "
             "Generated by `benchmarks/criteria/procedural.py`; definitions in README.md.", "",
             "ICP F1 and anti-ICP F1: row membership against the planted truth on "
             f"{FRESH_N:,} fresh accounts (prospects) from the same generator. Lift ratio: "
             "held-out lift of the method's ICP segment / held-out lift of the planted one. "
             "Each cell: median / 10th percentile over the family's draws.", ""]
    for title, key in (("ICP F1", "icp_f1"), ("Anti-ICP F1", "anti_f1"),
                       ("Lift / planted lift", "lift_ratio")):
        lines += [f"## {title}", "", "| family | draws | " + " | ".join(METHODS)
                  + " | planted (as loaded) |", "| --- | ---: |" + " ---: |" * (len(METHODS) + 1)]
        for fam, t in agg.items():
            if fam == "null":
                continue
            cells = []
            for m in (*METHODS, OBSERVED):
                a = t["methods"].get(m)
                cells.append("" if a is None else
                             f"{_f(a[f'{key}_median'])} / {_f(a[f'{key}_p10'])}")
            lines.append(f"| {fam} | {t['draws'] - t['failed']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## icpml's ICP F1 >= every peer's", "", "| family | share of draws |",
              "| --- | ---: |"]
    for fam, t in agg.items():
        if fam != "null" and t.get("icpml_f1_ge_every_peer") is not None:
            lines.append(f"| {fam} | {t['icpml_f1_ge_every_peer']:.0%} "
                         f"({t['icpml_f1_ge_every_peer_n']}) |")
    lines += ["", "## False claims and leaks", "",
              "Null: draws where the method claims any criterion by its own default "
              "(icpml: any ICP or anti-ICP criterion; pysubgroup: top WRAcc > 0; RuleFit: any "
              "rule kept; tree: any split), and draws whose ICP segment is significant on the "
              "held-out rows (one-sided Fisher p < 0.05). Leak: draws where a post-outcome "
              "column is named by a criterion (ICP or anti). Id: the identifier column.", "",
              "| method | null: claims | null: significant | leak family: leak in criteria "
              "| messy family: id in criteria |", "| --- | ---: | ---: | ---: | ---: |"]
    def count(fam: str, m: str, key: str) -> str:
        a = agg.get(fam, {}).get("methods", {}).get(m)
        return "n/a" if a is None else f"{a[key]} of {a['runs'] - a['errors']}"

    for m in METHODS:
        lines.append(f"| {m} | {count('null', m, 'claims')} | {count('null', m, 'significant')} "
                     f"| {count('leak', m, 'leak_in_criteria')} "
                     f"| {count('messy', m, 'id_in_criteria')} |")
    lines += ["", "## Criteria naming a column without a planted effect", "",
              "Signal draws where the method's ICP or anti-ICP names a column that is in "
              "neither the planted ICP nor the planted anti-ICP (an extra, non-causal "
              "conjunct). The last column counts, in the confounder family, draws naming the "
              "confounder.", "",
              "| method | " + " | ".join(f for f in agg if f not in ("null",))
              + " | confounder named |",
              "| --- |" + " ---: |" * (sum(f != "null" for f in agg) + 1)]
    for m in METHODS:
        cells = [count(f, m, "unplanted_in_criteria") for f in agg if f != "null"]
        lines.append(f"| {m} | " + " | ".join(cells)
                     + f" | {count('confounder', m, 'confounder_in_criteria')} |")
    lines += _oracle_markdown(results["draws"])
    det = results.get("determinism")
    if det is not None:
        lines += ["", f"Same draw run twice gives byte-identical `criteria.to_json()`: "
                  f"{'yes' if det['identical'] else 'NO'} ({det['draw']})."]
    lines += ["", "## Draws", "",
              "| family | seed | customers | planted ICP (planted lift on a pilot) | icpml ICP "
              "| ICP F1: icpml / pysubgroup / RuleFit / tree | anti F1 icpml | icpml s |",
              "| --- | ---: | ---: | --- | --- | --- | ---: | ---: |"]
    for d in results["draws"]:
        if d.get("error"):
            lines.append(f"| {d['family']} | {d['seed']} | {d['n']:,} | | error: "
                         f"{_md(d['error'])} | | | |")
            continue
        sp = d["spec"]
        planted = "; ".join(f"{'' if k == 'all' else k + ': '}{p['icp'] or '-'}"
                            for k, p in sp["plants"].items()) or "(none)"
        lifts = sp.get("planted_lift_pilot") or {}
        lift_txt = ", ".join(_f(v) for v in lifts.values() if v is not None)
        me = d["methods"].get("icpml", {})
        f1s = " / ".join(_f(d["methods"].get(m, {}).get("icp_f1")) for m in METHODS)
        lines.append(f"| {d['family']} | {d['seed']} | {d['n']:,} | {_md(planted)}"
                     f"{f' ({lift_txt})' if lift_txt else ''} "
                     f"| {_md(me.get('icp_rule') or me.get('error') or '(none)')} | {f1s} "
                     f"| {_f(me.get('anti_f1'))}{_oracle_cell(d)} | {_f(me.get('seconds'), 0)} |")
    return "\n".join(lines).rstrip() + "\n"


def _oracle_cell(d: dict) -> str:
    o = d.get("oracle_anti")
    return f" (oracle: {sum(x['detectable'] for x in o)} of {len(o)} detectable)" if o else ""


def _oracle_markdown(draws: list[dict]) -> list[str]:
    """Anti-ICP F1 split by whether the planted anti-ICP is detectable at all (oracle)."""
    fams = [f for f in dict.fromkeys(d["family"] for d in draws)
            if any("anti_detectable" in d for d in draws if d["family"] == f)]
    if not fams:
        return []
    lines = ["", "## Anti-ICP: is the planted exclusion detectable at all? (oracle)", "",
             "A planted anti condition is *oracle-detectable* when, knowing the condition, "
             "its one-sided Fisher tests (worst-cohort rate higher and best-cohort rate lower "
             "inside than outside, on every account of the draw, icpml's cohorts) give "
             f"p < {ORACLE_ALPHA} / (columns the fit model reads). A draw counts as detectable "
             "when all of its anti conditions are. The anti-ICP F1 itself is unchanged; this "
             "splits it by what the data could show.", "",
             "| family | draws detectable | anti F1 icpml: detectable draws | anti F1 icpml: "
             "not detectable | best peer anti F1: detectable draws |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for fam in fams:
        ds = [d for d in draws if d["family"] == fam and not d.get("error")
              and "anti_detectable" in d]
        det = [d for d in ds if d["anti_detectable"]]
        rest = [d for d in ds if not d["anti_detectable"]]

        def med(rows, m="icpml"):
            vals = [r["methods"].get(m, {}).get("anti_f1") for r in rows]
            vals = [v for v in vals if _finite(v)]
            return f"{_f(_q(vals, 50))} / {_f(_q(vals, 10))}" if vals else "n/a"

        peer = max(PEER_NAMES, key=lambda m: _q([v for v in (r["methods"].get(m, {}).get(
            "anti_f1") for r in det) if _finite(v)], 50) or -1)
        lines.append(f"| {fam} | {len(det)} of {len(ds)} | {med(det)} | {med(rest)} "
                     f"| {med(det, peer)} ({peer}) |")
    return lines


# ----------------------------------------------------------------------------- main
def _meta() -> dict:
    try:
        from run import machine_info  # the classic benchmark's machine / version block
        return machine_info()
    except Exception:  # noqa: BLE001
        return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": "?"}


def _init_worker() -> None:
    logging.getLogger("icpml").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", action="store_true",
                    help="development seeds (0-999) instead of the reporting seeds (1000+)")
    ap.add_argument("--quick", action="store_true",
                    help="1 draw (<= 4,000 customers) per family and 2 null draws (~5 min)")
    ap.add_argument("--families", nargs="*", default=None, choices=list(FAMILIES))
    ap.add_argument("--per-family", type=int, default=PER_FAMILY)
    ap.add_argument("--null-seeds", type=int, default=NULL_SEEDS)
    ap.add_argument("--jobs", type=int, default=MAX_JOBS, help="processes (at most 2)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    jobs = max(1, min(MAX_JOBS, args.jobs))
    plan = make_plan(dev=args.dev, quick=args.quick, per_family=args.per_family,
                     null_seeds=args.null_seeds, families=args.families)
    first_signal = next((t for t in plan if t[0] != "null"), None)
    tasks = [(f, s, (f, s) == first_signal) for f, s in plan]
    # largest draws first (2 processes balance better); results are re-ordered by plan
    order = sorted(tasks, key=lambda t: -_size(t[0], t[1]))
    t0 = time.perf_counter()
    results_by: dict[tuple[str, int], dict] = {}
    if jobs == 1:
        _init_worker()
        it = map(run_draw, order)
        pool = None
    else:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per process
        import multiprocessing as mp

        pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker)
        it = pool.map(run_draw, order)
    for d in it:
        results_by[(d["family"], d["seed"])] = d
        me = d.get("methods", {}).get("icpml", {})
        print(f"{d['family']} seed {d['seed']} n={d['n']}: {d['seconds']:.0f}s "
              f"icpml F1 {_f(me.get('icp_f1'))} {d.get('error') or ''}", file=sys.stderr,
              flush=True)
    if pool is not None:
        pool.shutdown()
    draws = [results_by[(f, s)] for f, s in plan]
    agg = aggregate(draws)
    det_draw = next((d for d in draws if "deterministic" in d), None)
    meta = _meta() | {
        "mode": ("dev" if args.dev else "report") + (" quick" if args.quick else ""),
        "seed_set": (f"development (from {DEV_SEED0})" if args.dev
                     else f"reporting (from {REPORT_SEED0})"),
        "plan": [list(t) for t in plan], "jobs": jobs, "fresh_n": FRESH_N,
        "n_draws": len(draws), "n_null": sum(f == "null" for f, _ in plan),
        "n_signal": sum(f != "null" for f, _ in plan),
        "total_seconds": time.perf_counter() - t0,
        "icpml_has_columns_product": _has_product_column(),
    }
    results = {"meta": meta, "aggregate": agg, "draws": draws,
               "determinism": ({"draw": f"{det_draw['family']} seed {det_draw['seed']}",
                                "identical": bool(det_draw["deterministic"])}
                               if det_draw else None)}
    stem = "procedural" + ("_dev" if args.dev else "") + ("_quick" if args.quick else "")
    if args.families or args.per_family != PER_FAMILY or args.null_seeds != NULL_SEEDS:
        stem += "_partial"
    args.out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(results)
    (args.out / f"{stem}.json").write_text(json.dumps(jsonable(results, 6), indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    print(md)
    return 0


@functools.cache
def _size(family: str, seed: int) -> int:
    try:
        return draw_spec(family, seed).n
    except Exception:  # noqa: BLE001 - run_draw reports it
        return 0


def _has_product_column() -> bool:
    from icpml.config import ColumnsConfig

    return "product" in ColumnsConfig.model_fields


if __name__ == "__main__":
    sys.exit(main())
