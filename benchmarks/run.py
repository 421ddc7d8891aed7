"""icpml benchmarks: speed, memory and criteria quality against a planted truth.

Usage::

    python benchmarks/run.py            # full (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # reduced (about 2 minutes)

Writes ``benchmarks/results/latest.md`` and ``latest.json`` and prints the tables.

* **speed**: wall time and peak resident memory of ``discover()`` (no tracking, no
  report) at several table sizes, each in a fresh subprocess so the peak RSS is
  honest; scoring throughput (rows/s) with and without per-account SHAP reasons.
* **criteria**: on synthetic accounts with a planted ICP, how well the ICP and
  anti-ICP reproduce planted membership on 5,000 fresh accounts (precision,
  recall, F1), how often each planted condition is recovered, and a baseline:
  the purest leaf (>= 3% support) of a depth-3 decision tree on the same features.
* **null**: on data whose outcomes ignore every feature, how many runs claim a
  criterion (should be 0).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _discover_child(n: int) -> None:
    """Run in a subprocess: one discover() and print timings + peak RSS as JSON."""
    from icpml import demo_config, discover, make_accounts

    df = make_accounts(n, seed=0)
    t0 = time.perf_counter()
    res = discover(demo_config(), df)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "seconds": wall, "peak_rss_mb": peak, "stages": res.timings}))


def _score_child(n: int, reasons: bool) -> None:
    from icpml import demo_config, discover, make_accounts

    res = discover(demo_config(), make_accounts(2000, seed=0))
    block = make_accounts(min(n, 100_000), seed=5)
    reps = int(np.ceil(n / len(block)))
    df = pd.concat([block] * reps, ignore_index=True).iloc[:n]
    df["account_id"] = [f"P{i}" for i in range(len(df))]
    t0 = time.perf_counter()
    out = res.scorer.score(df, explain=reasons)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the floor: the fit model's predict_proba alone on the same rows, chunk by chunk
    t0 = time.perf_counter()
    for i in range(0, len(df), res.scorer.chunk_size):
        res.fit_model.pipeline.predict_proba(df.iloc[i:i + res.scorer.chunk_size][res.fit_model.columns])
    bare = time.perf_counter() - t0
    print(json.dumps({"n": len(out), "reasons": reasons, "seconds": wall,
                      "rows_per_s": len(out) / wall, "peak_rss_mb": peak,
                      "predict_proba_rows_per_s": len(df) / bare, "overhead": wall / bare}))


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_speed(quick: bool) -> dict:
    sizes = [1000, 3000] if quick else [1000, 3000, 10_000, 30_000]
    discover_rows = [_child(["--child-discover", str(n)]) for n in sizes]
    score_cases = ([(100_000, False), (20_000, True)] if quick
                   else [(100_000, False), (1_000_000, False), (100_000, True)])
    score_rows = [_child(["--child-score", str(n), str(int(r))]) for n, r in score_cases]
    return {"discover": discover_rows, "score": score_rows}


def _f1(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    tp = float((pred & true).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / true.sum() if true.sum() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _tree_baseline(res, fresh: pd.DataFrame) -> np.ndarray:
    """Purest leaf (>= 3% support) of a depth-3 tree on the fit model's features."""
    from sklearn.tree import DecisionTreeClassifier

    pre = res.fit_model.pipeline.named_steps["prep"]
    ends = (res.cohorts != "middle").to_numpy()
    X = pre.transform(res.accounts[res.fit_model.columns][ends])
    y = (res.cohorts[ends] == "best").to_numpy()
    X = np.nan_to_num(X, nan=-1)
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=max(5, int(0.03 * len(y))),
                                  random_state=0).fit(X, y)
    leaves = tree.apply(X)
    purity = pd.Series(y).groupby(leaves).mean()
    best_leaf = purity.idxmax()
    Xf = np.nan_to_num(pre.transform(fresh[res.fit_model.columns]), nan=-1)
    return tree.apply(Xf) == best_leaf


def bench_criteria(quick: bool) -> dict:
    from icpml import demo_config, discover, make_accounts
    from icpml.data import validate_accounts
    from icpml.synthetic import planted_anti_match, planted_icp_match

    cfg = demo_config()
    plan = [(3000, range(3))] if quick else [(3000, range(10)), (1000, range(5)), (300, range(3))]
    rows = []
    for n, seeds in plan:
        for seed in seeds:
            t0 = time.perf_counter()
            res = discover(cfg, make_accounts(n, seed=seed))
            fresh = validate_accounts(make_accounts(5000, seed=seed + 1000), cfg)
            true_icp = (planted_icp_match(fresh) & ~planted_anti_match(fresh)).to_numpy()
            true_anti = planted_anti_match(fresh).to_numpy()
            p, r, f = _f1(res.criteria.icp_mask(fresh).to_numpy(), true_icp)
            ap, ar, af = _f1(res.criteria.anti_mask(fresh).to_numpy(), true_anti)
            _, _, tf = _f1(_tree_baseline(res, fresh), true_icp)
            icp = {c.column: c for c in res.criteria.icp}
            anti = res.criteria.anti_icp
            band = icp.get("employees")
            small = [c for c in anti if c.column == "employees" and c.op == "<"]
            rows.append({
                "n": n, "seed": seed, "seconds": round(time.perf_counter() - t0, 2),
                "icp_precision": p, "icp_recall": r, "icp_f1": f,
                "anti_precision": ap, "anti_recall": ar, "anti_f1": af, "tree_f1": tf,
                "industry": bool("industry" in icp and set(icp["industry"].values) == {"SaaS", "FinTech"}),
                "crm": bool("crm" in icp and icp["crm"].values == ("Salesforce",)),
                "band": bool(band is not None and band.op == "between"
                             and abs(band.low - 150) <= 22.5 and abs(band.high - 600) <= 90),
                "onprem": any(c.column == "requires_onprem" for c in anti),
                "small": bool(small and abs(small[0].high - 50) <= 10),
                "criteria": "; ".join(c.describe() for c in res.criteria.icp + anti),
            })
    return {"runs": rows}


def bench_null(quick: bool) -> dict:
    from icpml import demo_config, discover, make_accounts

    seeds = range(3) if quick else range(20)
    rows = []
    for seed in seeds:
        res = discover(demo_config(), make_accounts(2000, seed=seed, signal=False))
        rows.append({"seed": seed, "claimed": len(res.criteria.icp) + len(res.criteria.anti_icp),
                     "icp_found": bool(res.criteria.verdict["icp_found"])})
    return {"runs": rows}


def to_markdown(results: dict) -> str:
    out = [f"# icpml benchmarks ({results['date']}, {results['machine']})", ""]
    sp = results["speed"]
    out += ["## Speed and memory", "", "| discover() | seconds | peak RSS (MB) | slowest stages |",
            "| --- | ---: | ---: | --- |"]
    for r in sp["discover"]:
        top = sorted(r["stages"].items(), key=lambda kv: -kv[1])[:3]
        out.append(f"| {r['n']:,} accounts | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                   + ", ".join(f"{k} {v:.1f}s" for k, v in top) + " |")
    out += ["", "| scoring (fit + churn + tiers + reasons) | rows/s | seconds | peak RSS (MB) "
            "| predict_proba alone, rows/s | overhead |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in sp["score"]:
        kind = "SHAP reasons (--explain)" if r["reasons"] else "criteria reasons"
        out.append(f"| {r['n']:,} rows, {kind} | {r['rows_per_s']:,.0f} | {r['seconds']:.1f} "
                   f"| {r['peak_rss_mb']:.0f} | {r.get('predict_proba_rows_per_s', 0):,.0f} "
                   f"| {r.get('overhead', float('nan')):.1f}x |")
    runs = pd.DataFrame(results["criteria"]["runs"])
    out += ["", "## Criteria quality vs the planted truth (5,000 fresh accounts per run)", "",
            "| n | runs | ICP F1 (mean, min) | anti-ICP F1 | depth-3 tree F1 | industry | crm | band | on-prem | <50 employees | s/run |",
            "| ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n, g in runs.groupby("n", sort=False):
        out.append(
            f"| {n:,} | {len(g)} | {g['icp_f1'].mean():.2f} ({g['icp_f1'].min():.2f}) | "
            f"{g['anti_f1'].mean():.2f} | {g['tree_f1'].mean():.2f} | "
            + " | ".join(f"{int(g[c].sum())}/{len(g)}" for c in ("industry", "crm", "band", "onprem", "small"))
            + f" | {g['seconds'].mean():.1f} |")
    null = pd.DataFrame(results["null"]["runs"])
    out += ["", "## No-signal data", "",
            f"{int((null['claimed'] > 0).sum())} of {len(null)} runs claimed any criterion; "
            f"{int(null['icp_found'].sum())} claimed an ICP.", ""]
    misses = runs[~(runs["industry"] & runs["crm"] & runs["band"])]
    if len(misses):
        out += ["Runs that missed a planted ICP condition:", ""]
        out += [f"- n={r.n}, seed {r.seed}: {r.criteria}" for r in misses.itertuples()]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced run for CI")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {"date": datetime.now(UTC).strftime("%Y-%m-%d"),
               "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
               "quick": args.quick}
    results["speed"] = bench_speed(args.quick)
    results["criteria"] = bench_criteria(args.quick)
    results["null"] = bench_null(args.quick)
    results["total_seconds"] = time.perf_counter() - t0
    md = to_markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "latest"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (args.out / f"{name}.md").write_text(md)
    print(md)
    print(f"total {results['total_seconds']:.0f}s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-discover":
        _discover_child(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-score":
        _score_child(int(sys.argv[2]), bool(int(sys.argv[3])))
    else:
        main()
