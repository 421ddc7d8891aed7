"""Criteria quality of the fast stability settings against the full ones, on planted scenarios.

Usage::

    python benchmarks/discovery/quality.py            # make_accounts + 2 generator draws, 50,000 rows
    python benchmarks/discovery/quality.py --n 20000  # smaller tables
    python benchmarks/discovery/quality.py --n 100000 --seeds 0 --no-accounts  # one draw at 100k

For each scenario ``discover()`` runs twice in this process on the same table: once with
the settings before the speed work (``full``: :data:`FULL`, e.g. each stability refit
proposes from SHAP values on up to 2,500 of its drawn rows) and once with the current
defaults (``fast``).
It prints, for each: the ICP / anti-ICP criteria, the verdict (``icp_found``,
``tentative``), the stability shares, CPU seconds, and the F1 of the ICP segment
(``icp_mask``: inclusions and no exclusion) against the planted ICP on the held-out rows.
The check: same criteria, same verdict, F1 within 0.02. Writes
``benchmarks/discovery/results/quality.{md,json}`` (``quality_<n>.*`` for another ``--n``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "criteria"))

#: what ``full`` restores (the values before the speed work), module -> name -> value
FULL = {"icpml.stability": {"MAX_REFIT_SHAP_ROWS": 2_500, "MAX_REFIT_ROWS": 5_000},
        "icpml.models": {"MAX_TRAIN_ROWS": None}}


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    tp = float((pred & true).sum())
    denom = float(pred.sum() + true.sum())
    return 2 * tp / denom if denom else 1.0


def scenarios(n: int, seeds: list[int], accounts: bool = True):
    """(name, config, accounts, planted ICP membership of every row)."""
    from icpml import demo_config, make_accounts
    from icpml.synthetic import planted_anti_match, planted_icp_match

    if accounts:
        df = make_accounts(n, seed=0)
        truth = (planted_icp_match(df) & ~planted_anti_match(df)).to_numpy(bool)
        yield "make_accounts", demo_config(), df, truth
    from generator import draw_spec, sample

    for s in seeds:
        spec = replace(draw_spec("conjunctive", s), n=n)
        smp = sample(spec, n, "train")
        yield f"conjunctive seed {s}", spec.config(), smp.accounts[""], smp.truth_icp[""]


def run(cfg, df: pd.DataFrame, truth: np.ndarray) -> dict:
    from icpml import discover

    c0, t0 = time.process_time(), time.perf_counter()
    res = discover(cfg, df)
    cs = res.criteria
    ho = (res.split == "holdout").to_numpy()
    pos = pd.Series(np.arange(len(df)), index=df.index)
    true_h = truth[pos.loc[res.accounts.index[ho]].to_numpy()]
    pred_h = np.asarray(cs.icp_mask(res.accounts[ho]), dtype=bool)
    stab = cs.meta.get("stability") or {}
    return {"icp": sorted(c.describe() for c in cs.icp),
            "anti": sorted(c.describe() for c in cs.anti_icp),
            "icp_found": cs.verdict.get("icp_found"), "tentative": cs.verdict.get("tentative"),
            "shares": stab.get("per_criterion"), "refits": stab.get("n_resamples"),
            "f1": round(_f1(pred_h, true_h), 4),
            "cpu_main_s": round(time.process_time() - c0, 1),
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    ap.add_argument("--no-accounts", action="store_true", help="skip the make_accounts scenario")
    args = ap.parse_args()
    logging.getLogger("icpml").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    import importlib

    mods = {m: importlib.import_module(m) for m in FULL}
    fast = {m: {k: getattr(mods[m], k) for k in names} for m, names in FULL.items()}
    rows = []
    for name, cfg, df, truth in scenarios(args.n, args.seeds, not args.no_accounts):
        out = {"scenario": name, "n": len(df)}
        for label, values in (("full", FULL), ("fast", fast)):
            for m, names in values.items():
                for k, v in names.items():
                    setattr(mods[m], k, v)
            out[label] = run(cfg, df, truth)
            print(f"{name} [{label}]: {out[label]}", flush=True)
        f, q = out["full"], out["fast"]
        out["same_criteria"] = f["icp"] == q["icp"] and f["anti"] == q["anti"]
        out["same_verdict"] = (f["icp_found"], f["tentative"]) == (q["icp_found"], q["tentative"])
        out["f1_diff"] = round(abs(f["f1"] - q["f1"]), 4)
        out["ok"] = out["same_criteria"] and out["same_verdict"] and out["f1_diff"] <= 0.02
        print(f"  same criteria {out['same_criteria']}, same verdict {out['same_verdict']}, "
              f"|F1 diff| {out['f1_diff']}: {'OK' if out['ok'] else 'DIFFERS'}", flush=True)
        rows.append(out)
    res = {"n": args.n, "full": FULL, "fast": fast, "scenarios": rows}
    (HERE / "results").mkdir(exist_ok=True)
    stem = "quality" if args.n == 50_000 else f"quality_{args.n}"
    (HERE / "results" / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    lines = [f"# Fast vs full stability settings, {args.n:,} rows (full: {FULL}, fast: {fast})", "",
             "| scenario | same criteria | same verdict | F1 full | F1 fast | refits full / fast "
             "| main-process CPU s full / fast |", "| --- | --- | --- | ---: | ---: | --- | --- |"]
    for r in rows:
        f, q = r["full"], r["fast"]
        lines.append(f"| {r['scenario']} | {r['same_criteria']} | {r['same_verdict']} | {f['f1']} "
                     f"| {q['f1']} | {f['refits']} / {q['refits']} | {f['cpu_main_s']} / "
                     f"{q['cpu_main_s']} |")
    lines += [""] + [f"- {r['scenario']}: ICP {r['fast']['icp']}, anti {r['fast']['anti']}; shares "
                     f"full {r['full']['shares']}, fast {r['fast']['shares']}" for r in rows]
    (HERE / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
