"""Criteria benchmark: icpml's ICP / anti-ICP criteria against peer rule learners.

Usage::

    python benchmarks/criteria/run.py            # full: 3 seeds, 20 null seeds, 30k accounts
    python benchmarks/criteria/run.py --quick    # reduced: 1 seed, 3 null seeds, 10k accounts

Writes ``benchmarks/criteria/results/latest.{md,json}`` (``quick.*`` with ``--quick``).
For each scenario of :mod:`scenarios` and seed, icpml's ``discover()`` runs once; its
cohorts (best / middle / worst) and its split (train / selection / holdout) are then
shared by every method: the peers of :mod:`peers` learn best vs worst on the
non-held-out rows, from the columns icpml's screen kept, and every method is measured
on the same held-out rows (:mod:`metrics`) and on 5,000 fresh accounts from the same
generator (membership F1 against the planted truth). The public datasets of
``configs/`` are run the same way, without a planted truth. See README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from metrics import anti_quality, jsonable, membership, nanmean, ratio, segment_quality
from peers import PEERS, MethodOutput, Segment, run_peer
from scenarios import (
    FORBIDDEN_COLUMNS,
    PROJECT,
    SCENARIOS,
    WITH_SIGNAL,
    ScenarioData,
)

from icpml import discover
from icpml.cohorts import BEST, MIDDLE, WORST
from icpml.config import load_config
from icpml.data import feature_kinds, normalize_categories, validate_accounts
from icpml.synthetic import planted_anti_match, planted_icp_match

# (run as a script: this folder is sys.path[0], so metrics / peers / scenarios import directly)
HERE = Path(__file__).resolve().parent

TRUTH = "planted truth"
OBSERVED = "planted rule, values as loaded"
TIERS = "icpml Tier 1-2"
METHODS = ("icpml", *PEERS)
REAL_DATASETS = ("olist", "olist_mql", "telco", "maven")
#: scenarios whose ICP / anti membership F1 the targets judge
F1_SCOPE = ("clean", "messy", "interaction")
FRESH_SEED_OFFSET = 1000


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    """Seeds and sizes of one benchmark run."""

    quick: bool
    seeds: dict[str, tuple[int, ...]]
    sizes: dict[str, int]
    fresh_n: int = 5000
    real: tuple[str, ...] = REAL_DATASETS


def make_plan(quick: bool) -> Plan:
    """Full: 3 seeds per scenario, 20 null seeds, 30,000 large; quick: 1, 3, 10,000."""
    three = (0,) if quick else (0, 1, 2)
    seeds = {"clean": three, "messy": three, "small": three, "interaction": three,
             "large": (0,), "null": tuple(range(3 if quick else 20))}
    sizes = {"clean": 3000, "messy": 3000, "small": 300, "interaction": 3000,
             "large": 10_000 if quick else 30_000, "null": 3000}
    return Plan(quick=quick, seeds=seeds, sizes=sizes)


# ----------------------------------------------------------------------------- methods
@dataclass
class Shared:
    """What every method of one run shares: icpml's cohorts and split, and the rows."""

    accounts: pd.DataFrame
    kinds: dict[str, str]
    train: pd.DataFrame
    y_train: np.ndarray
    holdout: pd.DataFrame
    best_h: np.ndarray
    worst_h: np.ndarray
    icpml_extra: dict = field(default_factory=dict)


def _mask_of(fn: Callable[[pd.DataFrame], pd.Series]) -> Callable[[pd.DataFrame], np.ndarray]:
    """A mask function returning a numpy bool array."""
    return lambda df: np.asarray(fn(df), dtype=bool)


def icpml_output(res, seconds: float) -> MethodOutput:
    """icpml's criteria as a :class:`MethodOutput` (ICP = every inclusion, no exclusion)."""
    cs = res.criteria
    icp = anti = None
    if cs.icp:
        icp = Segment(" AND ".join(c.describe() for c in cs.icp),
                      frozenset(c.column for c in cs.icp), _mask_of(cs.icp_mask))
    if cs.anti_icp:
        anti = Segment(" OR ".join(c.describe() for c in cs.anti_icp),
                       frozenset(c.column for c in cs.anti_icp), _mask_of(cs.anti_mask))
    stab = cs.meta.get("stability") or {}
    return MethodOutput(icp=icp, anti=anti, claims=len(cs.icp) + len(cs.anti_icp) > 0,
                        seconds=seconds,
                        extra={"verdict": cs.verdict.get("message"),
                               "stability_set_jaccard": stab.get("set_jaccard"),
                               "stability_per_criterion": stab.get("per_criterion"),
                               "screened_out": sorted(res.screen.excluded),
                               "warnings": list(res.warnings),
                               "timings": res.timings})


def tiers_output(res) -> MethodOutput:
    """icpml's Tier 1 or Tier 2 (misses at most one ICP criterion, no exclusion): the broader
    segment icpml offers for secondary targeting. A reference row for WRAcc, not a target."""
    from icpml.scoring import assign_tiers

    cs = res.criteria
    if not cs.icp:
        return MethodOutput(icp=None, anti=None, claims=False)
    icp = Segment("Tier 1 or Tier 2", frozenset(c.column for c in cs.icp),
                  lambda df: assign_tiers(cs, df).isin(["Tier 1", "Tier 2"]).to_numpy(bool))
    anti = (Segment(" OR ".join(c.describe() for c in cs.anti_icp),
                    frozenset(c.column for c in cs.anti_icp), _mask_of(cs.anti_mask))
            if cs.anti_icp else None)
    return MethodOutput(icp=icp, anti=anti, claims=True)


def truth_output(d: ScenarioData) -> MethodOutput:
    """The planted truth as a method (no rule learning; reference row)."""
    return MethodOutput(icp=Segment("planted ICP", frozenset(), _mask_of(d.truth_icp)),
                        anti=Segment("planted anti-ICP", frozenset(), _mask_of(d.truth_anti)),
                        claims=True)


def observed_rule_output() -> MethodOutput:
    """The planted rules on the messy values as icpml loads them (:func:`prepare_accounts`,
    spellings merged): the best any rule on these columns can do with icpml's loader."""

    def icp(df: pd.DataFrame) -> np.ndarray:
        return (planted_icp_match(df) & ~planted_anti_match(df)).to_numpy(bool)

    return MethodOutput(
        icp=Segment("planted ICP on observed values", frozenset(), icp),
        anti=Segment("planted anti-ICP on observed values", frozenset(),
                     lambda df: planted_anti_match(df).to_numpy(bool)),
        claims=True)


def shared_rows(res) -> Shared:
    """Peers' training rows (non-held-out best + worst) and the held-out rows, from icpml."""
    kinds = {c: res.kinds[c] for c in res.fit_model.columns}
    fit_rows = ((res.split != "holdout") & (res.cohorts != MIDDLE)).to_numpy()
    ho = (res.split == "holdout").to_numpy()
    return Shared(
        accounts=res.accounts, kinds=kinds,
        train=res.accounts[fit_rows], y_train=(res.cohorts[fit_rows] == BEST).to_numpy(),
        holdout=res.accounts[ho], best_h=(res.cohorts[ho] == BEST).to_numpy(),
        worst_h=(res.cohorts[ho] == WORST).to_numpy(),
    )


def prepare_accounts(df: pd.DataFrame, cfg) -> pd.DataFrame:
    """Fresh accounts prepared exactly as ``discover()``'s load stage prepares its input:
    ``validate_accounts``, then ``normalize_categories`` (merging spellings that differ only
    in case or spacing). Every method is evaluated on these."""
    out = validate_accounts(df, cfg)
    cats = [c for c, k in feature_kinds(out, cfg).items() if k == "categorical"]
    return normalize_categories(out, cats)[0]


def timed_discover(cfg, accounts):
    """``discover()`` without tracking or report, and its wall time."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = discover(cfg, accounts)
    return res, time.perf_counter() - t0


def run_methods(res, seconds: float, seed: int) -> tuple[Shared, dict[str, MethodOutput]]:
    """icpml's output plus every peer trained on icpml's labels and split."""
    sh = shared_rows(res)
    outs = {"icpml": icpml_output(res, seconds), TIERS: tiers_output(res)}
    for name in PEERS:
        outs[name] = run_peer(name, sh.train, sh.y_train, sh.kinds, seed)
    return sh, outs


# ----------------------------------------------------------------------------- metrics
def evaluate(out: MethodOutput, sh: Shared, fresh: pd.DataFrame | None,
             fresh_truth: tuple[np.ndarray, np.ndarray] | None,
             forbidden: tuple[str, ...] = ()) -> dict:
    """Every metric of one method on one run (errors give a row with ``error`` only)."""
    row: dict = {"seconds": out.seconds, "claims": out.claims, "error": out.error}
    if out.error:
        return row
    try:
        seg = out.icp_segment(sh.holdout)
        row.update(segment_quality(seg, sh.best_h))
        row.update(anti_quality(out.anti_segment(sh.holdout), sh.best_h, sh.worst_h))
        row["significant"] = bool(seg.any() and row["p_value"] < 0.05)
        if fresh is not None and fresh_truth is not None:
            icp_m = membership(out.icp_segment(fresh), fresh_truth[0])
            anti_m = membership(out.anti_segment(fresh), fresh_truth[1])
            row.update({f"icp_{k}": v for k, v in icp_m.items()})
            row.update({f"anti_{k}": v for k, v in anti_m.items()})
    except Exception as err:  # noqa: BLE001 - a segment that cannot be evaluated is a result
        row["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        return row
    cols = set()
    for s in (out.icp, out.anti):
        if s is not None:
            cols |= s.columns
    row["icp_rule"] = out.icp.text if out.icp else None
    row["anti_rule"] = out.anti.text if out.anti else None
    row["columns_used"] = sorted(cols)
    row["forbidden_used"] = sorted(cols & set(forbidden))
    row["extra"] = out.extra
    return row


def add_truth_ratios(methods: dict[str, dict]) -> None:
    """lift / truth lift and WRAcc / truth WRAcc for every method of one run."""
    truth = methods.get(TRUTH, {})
    for row in methods.values():
        if row.get("error"):
            continue
        row["lift_vs_truth"] = ratio(row.get("lift"), truth.get("lift"))
        row["wracc_vs_truth"] = ratio(row.get("wracc"), truth.get("wracc"))


# ----------------------------------------------------------------------------- runs
def _error_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:160]


def run_synthetic(name: str, seed: int, plan: Plan, *, check_determinism: bool) -> dict:
    """One (scenario, seed): icpml, peers and references, evaluated."""
    fn = SCENARIOS[name]
    d = fn(seed, plan.sizes[name])
    out = {"scenario": name, "seed": seed, "n": len(d.accounts), "methods": {}}
    try:
        res, secs = timed_discover(d.config, d.accounts)
    except Exception as err:  # noqa: BLE001
        out["error"] = f"icpml: {_error_line(err)}"
        return out
    sh, outs = run_methods(res, secs, seed)
    if name in WITH_SIGNAL:
        outs[TRUTH] = truth_output(d)
        if name == "messy":
            outs[OBSERVED] = observed_rule_output()
    fresh = truth = None
    if name in WITH_SIGNAL:
        f = fn(seed + FRESH_SEED_OFFSET, plan.fresh_n)
        fresh = prepare_accounts(f.accounts, f.config)
        truth = (f.truth_icp(fresh).to_numpy(bool), f.truth_anti(fresh).to_numpy(bool))
    forbidden = FORBIDDEN_COLUMNS.get(name, ())
    out["methods"] = {m: evaluate(o, sh, fresh, truth, forbidden) for m, o in outs.items()}
    add_truth_ratios(out["methods"])
    if check_determinism:
        res2, _ = timed_discover(d.config, d.accounts)
        out["deterministic"] = res.criteria.to_json() == res2.criteria.to_json()
    return out


def run_real(name: str, seed: int = 0) -> dict:
    """One public dataset: icpml (data read by discover) and peers; no planted truth."""
    out = {"dataset": name, "methods": {}}
    try:
        cfg = load_config(PROJECT / "configs" / f"{name}.yaml")
        res, secs = timed_discover(cfg, None)
    except Exception as err:  # noqa: BLE001
        out["error"] = f"icpml: {_error_line(err)}"
        return out
    out["n"] = len(res.accounts)
    out["cohorts"] = {k: int(v) for k, v in res.cohorts.value_counts().items()}
    sh, outs = run_methods(res, secs, seed)
    out["methods"] = {m: evaluate(o, sh, None, None) for m, o in outs.items()}
    return out


# ----------------------------------------------------------------------------- aggregate
_NUMERIC = ("coverage", "best_rate", "lift", "wracc", "lift_vs_truth", "wracc_vs_truth",
            "icp_precision", "icp_recall", "icp_f1", "anti_precision", "anti_recall", "anti_f1",
            "anti_coverage", "wrongly_excluded", "anti_worst_lift", "seconds")


def aggregate(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """scenario -> method -> seed means (errors: the first one; null: counts)."""
    table: dict[str, dict[str, dict]] = {}
    for scen in dict.fromkeys(r["scenario"] for r in runs):
        these = [r for r in runs if r["scenario"] == scen]
        names = list(dict.fromkeys(m for r in these for m in r["methods"]))
        table[scen] = {}
        for m in names:
            rows = [r["methods"][m] for r in these if m in r["methods"]]
            ok = [x for x in rows if not x.get("error")]
            agg = {"runs": len(rows), "ok": len(ok),
                   "error": next((x["error"] for x in rows if x.get("error")), None)}
            agg |= {k: nanmean([x.get(k) for x in ok]) for k in _NUMERIC}
            agg["claims"] = sum(bool(x.get("claims")) for x in ok)
            agg["significant"] = sum(bool(x.get("significant")) for x in ok)
            agg["forbidden_used"] = sorted({c for x in ok for c in x.get("forbidden_used", [])})
            table[scen][m] = agg
        failed = [r["error"] for r in these if r.get("error")]
        if failed:
            table[scen]["icpml"] = {"runs": len(these), "ok": 0, "error": failed[0]}
    return table


def _ge(a: float, b: float) -> bool:
    return math.isfinite(a) and (not math.isfinite(b) or a >= b - 1e-12)


def targets(agg: dict, runs: list[dict]) -> list[dict]:
    """The issue's targets for icpml, each with its value and pass / fail."""
    out = []

    def add(target: str, scope: str, value: str, ok: bool) -> None:
        out.append({"target": target, "scope": scope, "value": value, "pass": bool(ok)})

    for scen in WITH_SIGNAL:
        if scen not in agg or "icpml" not in agg[scen]:
            continue
        t = agg[scen]
        me = t["icpml"].get("wracc", float("nan"))
        peers = {p: t[p].get("wracc", float("nan")) for p in PEERS if p in t}
        beaten = [p for p, w in peers.items() if not _ge(me, w)]
        add("ICP WRAcc >= every peer's", scen,
            f"{me:.3f} vs best peer {max(peers.values(), default=float('nan')):.3f}"
            + (f" (beaten by {', '.join(beaten)})" if beaten else ""), not beaten)
        truth = t.get(TRUTH, {}).get("wracc", float("nan"))
        truth_beaten = [p for p, w in peers.items() if not _ge(truth, w)]
        out[-1]["planted_truth_beaten_by"] = truth_beaten
        add("ICP WRAcc >= 0.9 x truth WRAcc", scen, f"{me:.3f} vs 0.9 x {truth:.3f}",
            _ge(me, 0.9 * truth))
    for scen in F1_SCOPE:
        if scen in agg and "icpml" in agg[scen]:
            f1 = agg[scen]["icpml"].get("icp_f1", float("nan"))
            add("ICP F1 >= 0.85", scen, f"{f1:.2f}", _ge(f1, 0.85))
    for scen in F1_SCOPE:
        if scen in agg and "icpml" in agg[scen]:
            f1 = agg[scen]["icpml"].get("anti_f1", float("nan"))
            add("anti-ICP F1 >= 0.8", scen, f"{f1:.2f}", _ge(f1, 0.8))
    for scen in WITH_SIGNAL:
        if scen in agg and "icpml" in agg[scen]:
            w = agg[scen]["icpml"].get("wrongly_excluded", float("nan"))
            add("best wrongly excluded <= 2%", scen, f"{w:.1%}",
                math.isfinite(w) and w <= 0.02)
    if "null" in agg and "icpml" in agg["null"]:
        a = agg["null"]["icpml"]
        add(f"null: 0 of {a['runs']} runs claim a criterion", "null",
            f"{a.get('claims', '?')} of {a['runs']}", a.get("ok") == a["runs"] and a["claims"] == 0)
    stab = [r["methods"]["icpml"].get("extra", {}).get("stability_set_jaccard")
            for r in runs if r["scenario"] == "clean" and "icpml" in r["methods"]]
    s = nanmean(stab)
    add("stability (set Jaccard) >= 0.8", "clean", f"{s:.2f}", _ge(s, 0.8))
    det = [r["deterministic"] for r in runs if "deterministic" in r]
    add("criteria.json byte-identical on a rerun", "clean seed 0",
        "identical" if det and all(det) else "differs", bool(det) and all(det))
    used = agg.get("messy", {}).get("icpml", {}).get("forbidden_used", [])
    if "messy" in agg:
        add("no id / leak column in criteria", "messy", ", ".join(used) or "none used", not used)
    return out


# ----------------------------------------------------------------------------- markdown
def _f(x, nd: int = 3, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.1%}" if pct else f"{x:.{nd}f}"


def _method_order(methods) -> list[str]:
    order = ["icpml", TIERS, *PEERS, TRUTH, OBSERVED]
    return [m for m in order if m in methods] + [m for m in methods if m not in order]


def synthetic_table(agg: dict) -> list[str]:
    head = ("| scenario | method | runs | coverage | best rate | lift | WRAcc | lift / truth "
            "| WRAcc / truth | ICP F1 | anti F1 | best wrongly excluded | seconds |")
    lines = [head, "| --- | --- | ---: " + "| ---: " * 10 + "|"]
    for scen, methods in agg.items():
        if scen == "null":
            continue
        for m in _method_order(methods):
            a = methods[m]
            if a.get("error") and not a.get("ok"):
                lines.append(f"| {scen} | {m} | {a['runs']} | error: {a['error']} |"
                             + " |" * 9)
                continue
            lines.append(
                f"| {scen} | {m} | {a['ok']} | {_f(a['coverage'])} | {_f(a['best_rate'], 2)} "
                f"| {_f(a['lift'], 2)} | {_f(a['wracc'])} | {_f(a['lift_vs_truth'], 2)} "
                f"| {_f(a['wracc_vs_truth'], 2)} | {_f(a['icp_f1'], 2)} | {_f(a['anti_f1'], 2)} "
                f"| {_f(a['wrongly_excluded'], pct=True)} | {_f(a['seconds'], 1)} |")
    return lines


def null_table(agg: dict) -> list[str]:
    if "null" not in agg:
        return []
    lines = ["| method | runs claiming any criterion (own threshold) "
             "| ICP segment significant on held-out (Fisher p < 0.05) | seconds |",
             "| --- | ---: | ---: | ---: |"]
    for m in _method_order(agg["null"]):
        a = agg["null"][m]
        if a.get("error") and not a.get("ok"):
            lines.append(f"| {m} | error: {a['error']} | | |")
            continue
        lines.append(f"| {m} | {a['claims']} of {a['ok']} | {a['significant']} of {a['ok']} "
                     f"| {_f(a['seconds'], 1)} |")
    return lines


def real_table(real: list[dict]) -> list[str]:
    lines = ["| dataset | accounts | method | coverage | best rate | lift | WRAcc "
             "| significant | anti coverage | best wrongly excluded | seconds |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: |"]
    for r in real:
        if r.get("error"):
            lines.append(f"| {r['dataset']} | | icpml | error: {r['error']} |" + " |" * 7)
            continue
        for m in _method_order(r["methods"]):
            a = r["methods"][m]
            if a.get("error"):
                lines.append(f"| {r['dataset']} | {r['n']:,} | {m} | error: {a['error']} |"
                             + " |" * 7)
                continue
            lines.append(
                f"| {r['dataset']} | {r['n']:,} | {m} | {_f(a['coverage'])} "
                f"| {_f(a['best_rate'], 2)} | {_f(a['lift'], 2)} | {_f(a['wracc'])} "
                f"| {'yes' if a.get('significant') else 'no'} | {_f(a['anti_coverage'])} "
                f"| {_f(a['wrongly_excluded'], pct=True)} | {_f(a['seconds'], 1)} |")
    return lines


def rules_section(runs: list[dict], real: list[dict]) -> list[str]:
    """What each method proposed on the first seed of every scenario and on each dataset."""
    lines = []
    firsts = {}
    for r in runs:
        firsts.setdefault(r["scenario"], r)
    items = [(f"{k} (seed {r['seed']})", r) for k, r in firsts.items()]
    items += [(f"real: {r['dataset']}", r) for r in real]
    for title, r in items:
        if r.get("error"):
            lines += [f"**{title}**: error: {r['error']}", ""]
            continue
        lines.append(f"**{title}**")
        lines.append("")
        for m in _method_order(r["methods"]):
            a = r["methods"][m]
            if m in (TRUTH, OBSERVED):
                continue
            if a.get("error"):
                lines.append(f"- {m}: error: {a['error']}")
                continue
            lines.append(f"- {m}: ICP `{a.get('icp_rule') or 'none'}`; "
                         f"anti `{a.get('anti_rule') or 'none'}`")
        lines.append("")
    return lines


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    mode = "quick" if meta["quick"] else "full"
    lines = [f"# Criteria benchmark ({mode}, {meta['date']})", "",
             f"{meta['machine']}; icpml {meta['versions'].get('icpml')} (git "
             f"{meta.get('git', '?')}), pysubgroup {meta['versions'].get('pysubgroup')}, "
             f"imodels {meta['versions'].get('imodels')}; total {meta['total_seconds']:.0f} s. "
             "Generated by `benchmarks/criteria/run.py`; see README.md for the definitions.", "",
             "## icpml targets", "", "| target | scope | icpml | pass |", "| --- | --- | --- | :---: |"]
    lines += [f"| {t['target']} | {t['scope']} | {t['value']} | {'PASS' if t['pass'] else 'FAIL'} |"
              for t in results["targets"]]
    wr = [t for t in results["targets"] if t["target"] == "ICP WRAcc >= every peer's"]
    truth_low = [t["scope"] for t in wr if t.get("planted_truth_beaten_by")]
    if truth_low:
        lines += ["", f"The planted truth itself has a lower held-out WRAcc than at least one "
                  f"peer in {len(truth_low)} of {len(wr)} scenarios ({', '.join(truth_low)}): "
                  "WRAcc rewards broad segments, the planted ICP is narrow and pure "
                  "(see README.md, *Reading WRAcc*)."]
    lines += ["", "## Synthetic scenarios", "",
              "Coverage, best rate, lift and WRAcc on the held-out accounts (the ICP segment = "
              "ICP and not anti-ICP); F1 on 5,000 fresh accounts against the planted truth; "
              "seed means. Seconds: icpml = the whole `discover()` (models, SHAP, criteria, "
              "stability); a peer = encoding + fitting its ICP and anti-ICP models.", ""]
    lines += synthetic_table(results["aggregate"])
    lines += ["", "## No-signal data (null)", ""] + null_table(results["aggregate"])
    lines += ["", "## Public datasets (held-out accounts, no planted truth)", ""]
    lines += real_table(results["real"])
    lines += ["", "## icpml extras", ""]
    for r in results["runs"]:
        x = r.get("methods", {}).get("icpml", {}).get("extra", {})
        if r["scenario"] in WITH_SIGNAL and x:
            lines.append(f"- {r['scenario']} seed {r['seed']}: stability (set Jaccard) "
                         f"{_f(x.get('stability_set_jaccard'), 2)}; screened out: "
                         f"{', '.join(x.get('screened_out') or []) or 'none'}")
    used = {m: a.get("forbidden_used") for m, a in results["aggregate"].get("messy", {}).items()
            if a.get("forbidden_used")}
    if "messy" in results["aggregate"]:
        lines += ["", "Identifier / leak columns named by a criterion (messy): "
                  + ("; ".join(f"{m}: {', '.join(c)}" for m, c in used.items()) or "none") + "."]
    lines += ["", "## Rules found", ""] + rules_section(results["runs"], results["real"])
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- meta + main
def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """Machine, date, package versions and the icpml commit."""
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=PROJECT,
                               text=True, capture_output=True, check=True).stdout.strip()
        git += " + uncommitted changes in src/" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        git = None
    pkgs = ("icpml", "numpy", "pandas", "scikit-learn", "scipy", "shap", "pysubgroup", "imodels")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, {platform.system()}",
        "platform": platform.platform(),
        "versions": {p: _version(p) for p in pkgs},
        "git": git,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="reduced run: 1 seed, 3 null seeds, 10,000-account large scenario")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--only", nargs="*", default=None,
                    help="run only these scenarios / datasets (e.g. clean telco)")
    args = ap.parse_args(argv)
    logging.getLogger("icpml").setLevel(logging.ERROR)  # warnings are kept in the results
    plan = make_plan(args.quick)
    wanted = set(args.only) if args.only else None
    t0 = time.perf_counter()
    runs, real = [], []
    for name, seeds in plan.seeds.items():
        if wanted and name not in wanted:
            continue
        for seed in seeds:
            t1 = time.perf_counter()
            runs.append(run_synthetic(name, seed, plan,
                                      check_determinism=(name == "clean" and seed == seeds[0])))
            print(f"{name} seed {seed}: {time.perf_counter() - t1:.0f}s", file=sys.stderr)
    for name in plan.real:
        if wanted and name not in wanted:
            continue
        t1 = time.perf_counter()
        real.append(run_real(name))
        print(f"{name}: {time.perf_counter() - t1:.0f}s", file=sys.stderr)
    meta = machine_info() | {"quick": plan.quick, "plan": {"seeds": plan.seeds,
                                                            "sizes": plan.sizes,
                                                            "fresh_n": plan.fresh_n}}
    agg = aggregate(runs)
    meta["total_seconds"] = time.perf_counter() - t0
    results = {"meta": meta, "targets": targets(agg, runs), "aggregate": agg, "runs": runs,
               "real": real}
    md = to_markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    # a partial run (--only) never overwrites the full or quick results
    stem = "partial" if wanted else ("quick" if plan.quick else "latest")
    (args.out / f"{stem}.json").write_text(json.dumps(jsonable(results), indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
