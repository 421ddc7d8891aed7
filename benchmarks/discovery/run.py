"""Discovery at scale: ``icpml discover`` on 10k, 100k and 1M customers x 30 columns.

Usage::

    python benchmarks/discovery/run.py --quick   # 10,000 and 100,000 customers, ~5 min
    python benchmarks/discovery/run.py           # and 1,000,000, ~25 min
    python benchmarks/discovery/run.py --quick --compare /tmp/main-src   # + the icpml of that
        # source folder (e.g. ``git archive main src | tar -x -C /tmp/main-src --strip-components 1``)
        # at each size, in the same run: before / after under the same load

What it measures, for each size:

* **icpml discover, end to end**, as a user runs it: ``icpml discover --config config.yaml``
  in a fresh subprocess and project folder (process start, load of a Parquet table of
  30 columns: the demo's 22 and 8 more, noise, 4 numbers and 4 categories), cohorts,
  screening, both models, SHAP, criteria, scoring, stability, MLflow tracking and model
  registration, the report. Seconds of each stage from its log lines (a non-terminal
  run logs ``stage=<name> seconds=<s>``), whole wall time, and peak RSS of the process
  tree (the command and its stability worker processes, polled every 0.1 s).
* **pysubgroup**, the peer baseline, in the same run on the same rows: its beam search
  for the best cohort and for the worst, on the rows icpml's models learn from (best and
  worst cohort accounts that are not held out), the same 27 targetable columns. Only the
  two searches are timed (no process start, no file read). Two configurations: the one
  of ``benchmarks/criteria/peers.py`` (``BeamSearch()``, i.e. width 20, with
  ``SubgroupDiscoveryTask``'s defaults depth 3, WRAcc, 10 results; selectors from
  ``create_selectors(nbins=10, intervals_only=False)``, finer than the default), and
  pysubgroup's own defaults throughout (``create_selectors(data)``: 5 bins, intervals
  only), which has fewer selectors and is faster: the ratio is given against both.
* **quality**: the ICP / anti-ICP criteria icpml reports (``criteria.json``) at each
  size, their stability shares, and whether they are the planted ones.

The source folders are byte-compiled first (as ``pip install`` does; with
``PYTHONDONTWRITEBYTECODE`` set every run and worker would compile icpml again).
The growth curve is printed (seconds per 1,000 customers at each size). Writes
``benchmarks/discovery/results/{quick,latest}.{md,json}``. Needs the peers:
``pip install --no-deps -r benchmarks/criteria/requirements.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
EXTRA_NUMERIC = ["web_visits_90d", "job_postings", "g2_reviews", "it_spend_pct"]
EXTRA_CATEGORICAL = ["country", "erp", "billing_model", "data_warehouse"]
CHOICES = {"country": ["US", "DE", "UK", "FR", "NL", "SE", "BR", "IN", "JP", "AU"],
           "erp": ["SAP", "Oracle", "NetSuite", "Dynamics", "None"],
           "billing_model": ["seat", "usage", "flat"],
           "data_warehouse": ["Snowflake", "BigQuery", "Redshift", "Databricks", "None"]}


def accounts(n: int, seed: int = 0) -> pd.DataFrame:
    """``make_accounts(n, seed)`` (22 columns) and 8 noise columns: 30 columns."""
    from icpml import make_accounts

    df = make_accounts(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for i, c in enumerate(EXTRA_NUMERIC):
        v = rng.lognormal(2 + i % 3, 1.0, n).round(1)
        v[rng.random(n) < 0.05] = np.nan
        df[c] = v
    for c in EXTRA_CATEGORICAL:
        df[c] = pd.array(rng.choice(CHOICES[c], n), dtype="string")
    return df


def _raw_config() -> dict:
    import yaml

    raw = yaml.safe_load((REPO / "src/icpml/configs/demo.yaml").read_text())
    raw["name"] = "bench-discovery"
    raw["columns"]["features"]["intent"] += EXTRA_NUMERIC
    raw["columns"]["features"]["technographic"] += EXTRA_CATEGORICAL
    raw["data"] = {"path": "accounts.parquet"}
    raw["tracking"] = {"experiment": "bench-discovery"}
    return raw


def prepare(n: int) -> Path:
    """A fresh project folder with the table (cached) and the config."""
    import yaml

    folder = CACHE / f"n{n}"
    table = CACHE / f"accounts_{n}.parquet"
    CACHE.mkdir(exist_ok=True)
    if not table.exists():
        accounts(n).to_parquet(table, index=False)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    (folder / ".icpml").write_text("")
    os.link(table, folder / "accounts.parquet")
    (folder / "config.yaml").write_text(yaml.safe_dump(_raw_config()))
    return folder


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def compile_source(src: Path) -> None:
    """Byte-compile ``src`` once, as ``pip install`` does: otherwise, with
    ``PYTHONDONTWRITEBYTECODE`` set, every run (and every worker process) compiles icpml again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True,
                   stdout=subprocess.DEVNULL)


def run_icpml(folder: Path, src: Path = REPO / "src") -> dict:
    """``icpml discover`` in ``folder`` with the icpml of ``src``: wall seconds, stage seconds,
    peak RSS, criteria."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-m", "icpml", "discover", "--config", "config.yaml"]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            stop.wait(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    stop.set()
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"icpml discover failed in {folder} ({proc.returncode}):\n{err[-3000:]}")
    stages = {m.group(1): float(m.group(2))
              for m in re.finditer(r"stage=(.+?) seconds=([0-9.]+)$", err, re.M)}
    heartbeats = len(re.findall(r"stage=\S+ running", err))
    crit = json.loads(next((folder / "reports").glob("*/criteria.json")).read_text())
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 1), "stages": stages, "peak_rss_mb": round(peak[0] / 2**20),
            "heartbeat_lines": heartbeats, "criteria": _criteria_summary(crit)}


def _criteria_summary(crit: dict) -> dict:
    from icpml.criteria import CriteriaSet

    cs = CriteriaSet.from_dict(crit)
    stab = cs.meta.get("stability") or {}
    return {"icp": sorted(c.describe() for c in cs.icp),
            "anti_icp": sorted(c.describe() for c in cs.anti_icp),
            "icp_found": cs.verdict.get("icp_found"), "tentative": cs.verdict.get("tentative"),
            "stability": {k: stab.get(k) for k in ("n_resamples", "max_resamples", "rows_per_refit",
                                                   "per_criterion")},
            "shap_rows": cs.meta.get("shap_rows")}


def run_pysubgroup(folder: Path) -> dict:
    """pysubgroup's two beam searches on icpml's model rows (see the module docstring)."""
    sys.path.insert(0, str(REPO / "benchmarks" / "criteria"))
    from peers import run_pysubgroup as peer

    from icpml.cohorts import BEST, MIDDLE, label_cohorts, value_score
    from icpml.config import load_config
    from icpml.data import feature_kinds, validate_accounts
    from icpml.pipeline import _split

    cfg = load_config(folder / "config.yaml")
    df = validate_accounts(pd.read_parquet(folder / "accounts.parquet"), cfg)
    kinds = feature_kinds(df, cfg)
    cohorts = label_cohorts(value_score(df, cfg.columns.outcomes), cfg.cohorts.best_quantile,
                            cfg.cohorts.worst_quantile)
    split = _split(cohorts, cfg)
    rows = ((split != "holdout") & (cohorts != MIDDLE)).to_numpy()
    train, y = df[rows].reset_index(drop=True), (cohorts[rows] == BEST).to_numpy()
    t0, c0 = time.perf_counter(), time.process_time()
    out = peer(train, y, kinds, seed=0)
    res = {"seconds": round(time.perf_counter() - t0, 2),
           "cpu_seconds": round(time.process_time() - c0, 1), "rows": int(rows.sum()),
           "columns": len(kinds), "icp": out.icp.text if out.icp else None,
           "anti": out.anti.text if out.anti else None}
    t0, c0 = time.perf_counter(), time.process_time()
    icp = _pysubgroup_defaults(train, y, kinds)
    res["defaults"] = {"seconds": round(time.perf_counter() - t0, 2),
                       "cpu_seconds": round(time.process_time() - c0, 1), "icp": icp}
    return res


def _pysubgroup_defaults(train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str]) -> str | None:
    """pysubgroup with its own defaults (selectors, beam search, task), best then worst."""
    import pysubgroup as ps
    from peers import _pysubgroup_frame

    data = _pysubgroup_frame(train, kinds)
    found = []
    for target in (y, ~y):
        d = data.copy()
        d["__target"] = target
        task = ps.SubgroupDiscoveryTask(d, ps.BinaryTarget("__target", True),
                                        ps.create_selectors(d, ignore=["__target"]), qf=ps.WRAccQF())
        result = ps.BeamSearch().execute(task)
        found.append(str(max(result.results, key=lambda t: t[0])[1]) if result.results else None)
    return found[0]


def markdown(res: dict) -> str:
    lines = [f"# Discovery at scale ({res['when']}, {res['machine']})", "",
             "`icpml discover` end to end (tracking, registration, report) on make_accounts(n) "
             "+ 8 noise columns (30 columns, 27 targetable); pysubgroup beam search on the same "
             "model rows in the same run.", "",
             "CPU seconds (user + system, the command and its worker processes) are the "
             "figure a busy shared machine does not inflate.", "",
             "| customers | icpml s | icpml CPU s | s per 1k | peak RSS MB | pysubgroup s "
             "| pysubgroup CPU s | icpml / pysubgroup (wall) | pysubgroup defaults s (CPU s) "
             "| icpml / defaults (wall) | slowest stages |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in res["runs"]:
        st = sorted(r["icpml"]["stages"].items(), key=lambda kv: -kv[1])[:4]
        sec = r["icpml"]["seconds"]
        ps = (r.get("pysubgroup") or {}).get("seconds")
        pc = (r.get("pysubgroup") or {}).get("cpu_seconds")
        peer = f"{ps:.1f} | {pc} | {sec / ps:.2f}x" if ps else "n/a | n/a | n/a"
        dflt = (r.get("pysubgroup") or {}).get("defaults")
        peer += (f" | {dflt['seconds']:.1f} ({dflt['cpu_seconds']}) | {sec / dflt['seconds']:.2f}x"
                 if dflt else " | n/a | n/a")
        lines.append(f"| {r['n']:,} | {sec:.1f} | {r['icpml']['cpu_seconds']} | {1000 * sec / r['n']:.3f} | "
                     f"{r['icpml']['peak_rss_mb']} | {peer} | "
                     + ", ".join(f"{k} {v:.1f} s" for k, v in st) + " |")
    lines += ["", "Stages (seconds):", ""]
    names = list(dict.fromkeys(k for r in res["runs"] for k in r["icpml"]["stages"]))
    lines.append("| customers | " + " | ".join(names) + " |")
    lines.append("| ---: |" + " ---: |" * len(names))
    for r in res["runs"]:
        lines.append(f"| {r['n']:,} | " + " | ".join(
            f"{r['icpml']['stages'].get(k, float('nan')):.1f}" for k in names) + " |")
    if any("compare" in r for r in res["runs"]):
        lines += ["", "Same-run before / after (icpml from the `--compare` source, then this tree's; "
                  "ratios to pysubgroup's CPU seconds in the same run):", "",
                  "| customers | before s | before CPU s | before / pysubgroup (CPU) | after s "
                  "| after CPU s | after / pysubgroup (CPU) | after / before (CPU) |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in res["runs"]:
            if "compare" not in r:
                continue
            b, a = r["compare"], r["icpml"]
            pc = (r.get("pysubgroup") or {}).get("cpu_seconds")
            rb = f"{b['cpu_seconds'] / pc:.2f}x" if pc else "n/a"
            ra = f"{a['cpu_seconds'] / pc:.2f}x" if pc else "n/a"
            lines.append(f"| {r['n']:,} | {b['seconds']:.1f} | {b['cpu_seconds']} | {rb} | "
                         f"{a['seconds']:.1f} | {a['cpu_seconds']} | {ra} | "
                         f"{a['cpu_seconds'] / b['cpu_seconds']:.2f} |")
        lines += ["", "Criteria before (`--compare` source):", ""]
        for r in res["runs"]:
            if "compare" in r:
                c = r["compare"]["criteria"]
                lines.append(f"- {r['n']:,}: ICP {c['icp']}; anti-ICP {c['anti_icp']}; icp_found "
                             f"{c['icp_found']}, tentative {c['tentative']}; shares "
                             f"{c['stability'].get('per_criterion')}")
    lines += ["", "Criteria found:", ""]
    for r in res["runs"]:
        c = r["icpml"]["criteria"]
        s = c["stability"]
        lines.append(f"- {r['n']:,}: ICP {c['icp']}; anti-ICP {c['anti_icp']}; icp_found "
                     f"{c['icp_found']}, tentative {c['tentative']}; stability {s.get('n_resamples')}"
                     f"/{s.get('max_resamples')} refits of {s.get('rows_per_refit')} rows, shares "
                     f"{s.get('per_criterion')}; SHAP rows {c['shap_rows']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k and 100k customers only")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None,
                    help="comma-separated customer counts (overrides --quick)")
    ap.add_argument("--no-peer", action="store_true", help="skip pysubgroup")
    ap.add_argument("--compare", type=Path, default=None, metavar="SRC",
                    help="also run icpml from this source folder (e.g. an export of main's src) "
                         "at each size, right before this tree's: a same-load before / after")
    args = ap.parse_args()
    compile_source(REPO / "src")
    if args.compare:
        compile_source(args.compare)
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    runs = []
    for n in sizes:
        folder = prepare(n)
        row = {"n": n}
        if args.compare:
            print(f"{n:,} customers: icpml discover from {args.compare} ...", flush=True)
            row["compare"] = {"src": str(args.compare), **run_icpml(folder, args.compare)}
            c = row["compare"]
            print(f"  {c['seconds']:.1f} s ({c['cpu_seconds']} s CPU), peak {c['peak_rss_mb']} MB, "
                  f"stages {c['stages']}", flush=True)
            folder = prepare(n)
        print(f"{n:,} customers: icpml discover ...", flush=True)
        row["icpml"] = run_icpml(folder)
        print(f"  {row['icpml']['seconds']:.1f} s ({row['icpml']['cpu_seconds']} s CPU), peak {row['icpml']['peak_rss_mb']} MB, "
              f"stages {row['icpml']['stages']}", flush=True)
        if not args.no_peer:
            row["pysubgroup"] = run_pysubgroup(folder)
            print(f"  pysubgroup {row['pysubgroup']['seconds']:.1f} s "
                  f"({row['pysubgroup']['cpu_seconds']} s CPU) on "
                  f"{row['pysubgroup']['rows']:,} rows; with its defaults "
                  f"{row['pysubgroup']['defaults']['seconds']:.1f} s", flush=True)
        runs.append(row)
    base = runs[0]
    print("\ngrowth curve (icpml seconds; x = against the smallest size):")
    for r in runs:
        s = r["icpml"]["seconds"]
        peer = r.get("pysubgroup", {}).get("seconds")
        pc = r.get("pysubgroup", {}).get("cpu_seconds")
        print(f"  {r['n']:>9,}  {s:7.1f} s  x{s / base['icpml']['seconds']:5.1f} time for "
              f"x{r['n'] / base['n']:g} rows" + (f"  pysubgroup {peer:.1f} s, ratio {s / peer:.2f}"
                                                 if peer else "")
              + (f"; CPU {r['icpml']['cpu_seconds']} s vs pysubgroup {pc} s, ratio "
                 f"{r['icpml']['cpu_seconds'] / pc:.2f}" if pc else "")
              + (f"; before (--compare) CPU {r['compare']['cpu_seconds']} s"
                 if "compare" in r else ""))
    res = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": f"{os.cpu_count()} CPUs, {platform.python_version()}, load "
                      f"{os.getloadavg()[0]:.1f} at the end",
           "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    stem = "quick" if args.quick and not args.sizes else ("latest" if not args.sizes else "custom")
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(res))
    print(f"\nwrote {RESULTS / stem}.md")


if __name__ == "__main__":
    main()
