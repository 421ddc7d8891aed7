"""Case slow-stability-45k: discovery on the 45,211-row UCI Bank Marketing table.

Before: the stability stage refitted 8 bootstraps of the whole table (284 s of 356 s) and a
run outside a terminal printed nothing for ~5 minutes. Now each refit draws 5,000 accounts
(cost independent of the table's size), the refits stop once the stable / unstable calls
are settled, the share says what it measures, and a non-terminal run logs a line at least
every 30 s. The same kind on generated data: tests/unit/test_stability_scale.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

_REPO = Path(__file__).resolve().parents[2]
#: ../shared next to the repository (a git worktree one folder deeper: ../../shared)
SHARED = next((p for p in (_REPO / ".." / "shared", _REPO / ".." / ".." / "shared")
               if (p / "cases").is_dir()), _REPO / ".." / "shared")
CASE = SHARED / "cases" / "slow-stability-45k"
BANK = SHARED / "data" / "uci_bank_marketing" / "bank-full.csv"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.slow
def test_bank_45k_stability_is_capped_settled_and_never_quiet(tmp_path):
    if not CASE.is_dir() or not BANK.is_file():
        pytest.skip("the shared case folder or the Bank Marketing file is absent")
    work = tmp_path / "case"
    shutil.copytree(CASE, work)
    d = pd.read_csv(BANK, sep=";")
    d.insert(0, "id", range(1, len(d) + 1))
    d.to_csv(work / "bank-full-id.csv", index=False)  # what make_data.sh does
    env = {**os.environ, "PYTHONPATH": str(SRC), "ICPML_PROJECT_ROOT": str(work)}
    proc = subprocess.run([sys.executable, "-m", "icpml", "--verbose", "discover", "--config",
                           "bank.yaml", "--no-track"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = proc.stderr
    # never quiet for long: the timestamped log lines are at most ~30 s apart
    stamps = [datetime.strptime(m, "%H:%M:%S")
              for m in re.findall(r"^(\d\d:\d\d:\d\d) ", err, re.M)]
    gaps = [(b - a).total_seconds() % 86400 for a, b in zip(stamps, stamps[1:], strict=False)]
    assert stamps and max(gaps) <= 40, (max(gaps), err[-3000:])
    assert "stage=stability seconds=" in err
    crit = json.loads(next((work / "reports").glob("*/criteria.json")).read_text())
    stab = crit["meta"]["stability"]
    n_pool = crit["meta"]["n_train"] + crit["meta"]["n_selection"]
    assert stab["rows_per_refit"] == 5000 and stab["max_resamples"] == 8
    assert 1 <= stab["n_resamples"] <= 8
    assert stab["measures"] == (f"share of {stab['n_resamples']} refits, each on 5000 accounts "
                                f"drawn with replacement from the {n_pool} non-held-out accounts "
                                "(candidates proposed from SHAP values on at most 1000 of them), "
                                "in which the criterion reappeared")
    assert set(stab["per_criterion"]) == {c["text"] for c in crit["icp"]["criteria"]
                                          + crit["anti_icp"]["criteria"]}
    # the held-out SHAP for the report is a 2,500-account sample of the 13,563 held out
    assert crit["meta"]["shap_rows"]["holdout"] == 2500
    assert crit["meta"]["shap_rows"]["holdout_total"] == crit["meta"]["n_holdout"]
