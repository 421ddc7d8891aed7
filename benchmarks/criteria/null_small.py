"""Null scan at small sizes: does icpml claim anything on null tables of 200-1,500 accounts?

The procedural runner draws null sizes from 200 to 10,000, so only a few of its 20 null
draws take the cross-fitted route (below 1,500 accounts). This scan draws many small null
tables straight from the generator (family ``null``, development seeds only), each at a
size drawn log-uniformly from 200-1,500 accounts by its own seed, runs ``discover()``
without the stability refits (they do not change the criteria), and counts the draws
that claim an ICP or an exclusion. Per draw it also writes the smallest q-value of any
final candidate criterion (how close the draw came to a claim).

    PYTHONPATH=src .venv/bin/python benchmarks/criteria/null_small.py --seeds 0 100 --out /tmp/null.jsonl

About 10-20 s of CPU per draw. Output: one JSON line per draw, then a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from generator import draw_spec, sample  # noqa: E402

from icpml import discover  # noqa: E402

#: The development seeds end here (see README.md); the scan refuses reporting seeds.
DEV_SEED_END = 1000


def null_size(seed: int) -> int:
    """The scan's table size for ``seed``: log-uniform in 200-1,500 (own random stream)."""
    r = np.random.default_rng([9, seed, 77])
    return int(np.exp(r.uniform(np.log(200), np.log(1500))))


def run(seed: int) -> dict:
    """One null draw: size, seconds, the criteria claimed and the smallest q-value."""
    spec = draw_spec("null", seed)
    n = null_size(seed)
    df = sample(spec, n).accounts[""]
    cfg = spec.config()
    cfg = cfg.model_copy(update={"criteria": cfg.criteria.model_copy(update={"stability_resamples": 0})})
    t0 = time.perf_counter()
    cs = discover(cfg, df).criteria
    qs = [c.evidence.get("q_value") for c in cs.icp + cs.anti_icp + cs.unconfirmed]
    return {"seed": seed, "n": n, "seconds": round(time.perf_counter() - t0, 1),
            "method": cs.meta.get("evidence", {}).get("method"),
            "claims": [c.describe() for c in cs.icp] + [f"NOT {c.describe()}" for c in cs.anti_icp],
            "min_q": min((q for q in qs if q is not None), default=None)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs=2, default=(0, 100), metavar=("FROM", "TO"),
                    help="development seeds FROM..TO-1 (default 0 100)")
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, one per draw")
    args = ap.parse_args(argv)
    lo, hi = args.seeds
    if not 0 <= lo < hi <= DEV_SEED_END:
        ap.error(f"--seeds must lie within the development seeds 0-{DEV_SEED_END - 1}")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rows = []
    with args.out.open("w") as f:
        for seed in range(lo, hi):
            r = run(seed)
            rows.append(r)
            print(json.dumps(r), file=f, flush=True)
            print(f"seed {seed} n={r['n']}: {r['seconds']:.0f}s claims {r['claims']} "
                  f"min q {r['min_q']}", file=sys.stderr, flush=True)
    claimed = [r["seed"] for r in rows if r["claims"]]
    near = [r["seed"] for r in rows if r["min_q"] is not None and r["min_q"] < 0.1]
    print(f"{len(claimed)} of {len(rows)} null draws claimed something {claimed}; "
          f"{len(near)} had a candidate at q < 0.1 {near}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
